//! Frame payloads as clients send them, what each model takes, and the validation and
//! preprocessing between the two. Runs on the caller's thread, so that decoding never holds
//! up the device.

use std::time::Instant;

use costream_models::VideoPreprocess;

use crate::error::FrameError;
use crate::image::{decode, from_raw};

/// Layouts of raw 8-bit pixel buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Red, green, blue.
    Rgb8,
    /// Red, green, blue, alpha (dropped).
    Rgba8,
    /// One gray value.
    Gray8,
    /// Gray and alpha (dropped).
    GrayAlpha8,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub fn channels(self) -> usize {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
            PixelFormat::Gray8 => 1,
            PixelFormat::GrayAlpha8 => 2,
        }
    }

    /// The format's name in messages (`rgb8`, `rgba8`, `gray8`, `graya8`).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::GrayAlpha8 => "graya8",
        }
    }
}

/// One frame as a client sends it.
#[derive(Debug, Clone, PartialEq)]
pub enum FramePayload {
    /// A JPEG or PNG file's bytes.
    Encoded(Vec<u8>),
    /// Raw pixels, rows top to bottom without padding.
    Raw {
        /// The pixel layout.
        format: PixelFormat,
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// `width × height × channels` bytes.
        data: Vec<u8>,
    },
    /// The network's input frame itself, already preprocessed: `[C, H, W]` values.
    Tensor {
        /// The shape, `[C, H, W]`.
        shape: Vec<usize>,
        /// The values, row-major.
        data: Vec<f32>,
    },
    /// Skeleton joints: `[persons, joints, 3]` values (x, y, confidence).
    Skeleton {
        /// Persons in the frame.
        persons: usize,
        /// Joints per person.
        joints: usize,
        /// `persons × joints × 3` values.
        data: Vec<f32>,
    },
    /// A feature vector.
    Features(Vec<f32>),
    /// One chunk of mono audio.
    Audio {
        /// Samples per second.
        sample_rate: u32,
        /// The samples.
        samples: AudioSamples,
    },
}

/// Mono audio samples as clients send them.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSamples {
    /// 16-bit signed PCM; a sample `s` is `s / 32768` (as torchaudio and soundfile read WAVs).
    Pcm16(Vec<i16>),
    /// Floats, nominally in [-1, 1] (not clipped; they must be finite).
    Float(Vec<f32>),
}

impl AudioSamples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            AudioSamples::Pcm16(s) => s.len(),
            AudioSamples::Float(s) => s.len(),
        }
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples as floats, each checked to be finite.
    ///
    /// # Errors
    /// [`FrameError::NonFinite`] naming the first NaN or infinite sample.
    pub fn to_finite_f32(&self) -> Result<Vec<f32>, FrameError> {
        let values = match self {
            AudioSamples::Pcm16(s) => s.iter().map(|&v| f32::from(v) / 32768.0).collect(),
            AudioSamples::Float(s) => s.clone(),
        };
        check_finite(&values)?;
        Ok(values)
    }
}

impl FramePayload {
    /// The payload kind in messages.
    pub fn kind(&self) -> &'static str {
        match self {
            FramePayload::Encoded(_) => "an encoded image",
            FramePayload::Raw { .. } => "raw pixels",
            FramePayload::Tensor { .. } => "a tensor",
            FramePayload::Skeleton { .. } => "skeleton joints",
            FramePayload::Features(_) => "a feature vector",
            FramePayload::Audio { .. } => "audio",
        }
    }
}

/// What a model takes per frame (or, for every kind, a tensor of the network's frame shape).
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// Video frames: images (encoded or raw) preprocessed as the spec says, or tensors of
    /// the network's input shape `[3, crop, crop]`.
    Video(VideoPreprocess),
    /// Skeleton joints: `[persons, joints, channels]` values (up to `persons`; absent persons
    /// are zeros), or tensors of the network's input shape `[channels, joints, persons]`.
    Skeleton {
        /// Values per joint (x, y, confidence).
        channels: usize,
        /// Joints per person.
        joints: usize,
        /// Persons per frame.
        persons: usize,
    },
    /// Feature vectors (one per frame, from a backbone such as TSN or X3D), as network
    /// frames `[features, 1, 1]`.
    Features {
        /// Values per frame.
        features: usize,
    },
    /// Mono audio, one chunk per frame, as network frames `[1, chunk, 1]`.
    Audio {
        /// Samples per second.
        sample_rate: u32,
        /// Samples per frame.
        chunk: usize,
    },
}

impl InputSpec {
    /// The network's input frame shape `[C, H, W]`.
    pub fn frame_shape(&self) -> [usize; 3] {
        match self {
            InputSpec::Video(spec) => [3, spec.crop, spec.crop],
            InputSpec::Skeleton {
                channels,
                joints,
                persons,
            } => [*channels, *joints, *persons],
            InputSpec::Features { features } => [*features, 1, 1],
            InputSpec::Audio { chunk, .. } => [1, *chunk, 1],
        }
    }

    /// An audio model's `(sample rate, samples per chunk)`; `None` for other inputs.
    pub fn audio(&self) -> Option<(u32, usize)> {
        match self {
            InputSpec::Audio { sample_rate, chunk } => Some((*sample_rate, *chunk)),
            _ => None,
        }
    }

    /// What the model takes, in messages.
    pub fn describe(&self) -> &'static str {
        match self {
            InputSpec::Video(_) => "video frames (JPEG, PNG, raw pixels or [3, H, W] tensors)",
            InputSpec::Skeleton { .. } => {
                "skeleton joints ([persons, joints, 3] values or [3, joints, persons] tensors)"
            }
            InputSpec::Features { .. } => {
                "feature vectors (one vector of values per frame, or [features, 1, 1] tensors)"
            }
            InputSpec::Audio { .. } => "audio (one chunk of mono samples per frame)",
        }
    }

    /// Validates and preprocesses one frame into the network's input.
    ///
    /// # Shapes
    /// - output: [`InputSpec::frame_shape`] values, row-major
    ///
    /// # Errors
    /// [`FrameError`] naming what is wrong: the payload kind, the encoding, the size, the
    /// shape, an image of more than `max_image_pixels`, or a non-finite value.
    pub fn prepare(
        &self,
        payload: &FramePayload,
        max_image_pixels: usize,
    ) -> Result<Vec<f32>, FrameError> {
        match (self, payload) {
            (InputSpec::Video(spec), FramePayload::Encoded(bytes)) => {
                Ok(spec.apply(&decode(bytes, max_image_pixels)?))
            }
            (
                InputSpec::Video(spec),
                FramePayload::Raw {
                    format,
                    width,
                    height,
                    data,
                },
            ) => Ok(spec.apply(&from_raw(*format, *width, *height, data, max_image_pixels)?)),
            (
                InputSpec::Video(_)
                | InputSpec::Skeleton { .. }
                | InputSpec::Features { .. }
                | InputSpec::Audio { .. },
                FramePayload::Tensor { shape, data },
            ) => {
                check_values(shape, data, &self.frame_shape())?;
                Ok(data.clone())
            }
            (
                InputSpec::Skeleton {
                    channels,
                    joints,
                    persons,
                },
                FramePayload::Skeleton {
                    persons: sent,
                    joints: sent_joints,
                    data,
                },
            ) => {
                check_length(&[*sent, *sent_joints, *channels], data)?;
                check_finite(data)?;
                if sent > persons {
                    return Err(FrameError::Persons {
                        max: *persons,
                        found: *sent,
                    });
                }
                if sent_joints != joints {
                    return Err(FrameError::Joints {
                        expected: *joints,
                        found: *sent_joints,
                    });
                }
                Ok(skeleton_input(data, [*channels, *joints, *persons], *sent))
            }
            (InputSpec::Features { features }, FramePayload::Features(values)) => {
                if values.len() != *features {
                    return Err(FrameError::Features {
                        expected: *features,
                        found: values.len(),
                    });
                }
                check_finite(values)?;
                Ok(values.clone())
            }
            (
                InputSpec::Audio { sample_rate, chunk },
                FramePayload::Audio {
                    sample_rate: sent_rate,
                    samples,
                },
            ) => {
                if sent_rate != sample_rate {
                    return Err(FrameError::SampleRate {
                        expected: *sample_rate,
                        found: *sent_rate,
                    });
                }
                if samples.len() != *chunk {
                    return Err(FrameError::Samples {
                        expected: *chunk,
                        found: samples.len(),
                    });
                }
                samples.to_finite_f32()
            }
            (_, other) => Err(FrameError::WrongKind {
                expected: self.describe(),
                found: other.kind(),
            }),
        }
    }
}

/// Joints `[sent, V, C]` as the network's frame `[C, V, P]`, persons beyond `sent` zero.
fn skeleton_input(data: &[f32], [c, v, p]: [usize; 3], sent: usize) -> Vec<f32> {
    let mut frame = vec![0.0; c * v * p];
    for person in 0..sent.min(p) {
        for joint in 0..v {
            for channel in 0..c {
                frame[(channel * v + joint) * p + person] =
                    data[(person * v + joint) * c + channel];
            }
        }
    }
    frame
}

/// Checks a declared shape against the values sent and the shape wanted, and that every value
/// is finite.
fn check_values(shape: &[usize], data: &[f32], wanted: &[usize]) -> Result<(), FrameError> {
    check_length(shape, data)?;
    if shape != wanted {
        return Err(FrameError::Shape {
            expected: wanted.to_vec(),
            found: shape.to_vec(),
        });
    }
    check_finite(data)
}

/// Checks that `data` holds exactly the values of the declared `shape`.
fn check_length(shape: &[usize], data: &[f32]) -> Result<(), FrameError> {
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(FrameError::Length {
            shape: shape.to_vec(),
            expected: expected.unwrap_or(usize::MAX),
            found: data.len(),
        });
    }
    Ok(())
}

/// Checks that every value is finite.
fn check_finite(data: &[f32]) -> Result<(), FrameError> {
    match data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((index, &value)) => Err(FrameError::NonFinite { index, value }),
        None => Ok(()),
    }
}

/// A frame ready for the network: its sequence number, values, and when it was accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedFrame {
    /// The client's sequence number.
    pub seq: u64,
    /// [`InputSpec::frame_shape`] values.
    pub values: Vec<f32>,
    /// When the engine accepted it (for queue-time accounting).
    pub accepted: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_IMAGE_PIXELS;

    fn video() -> InputSpec {
        InputSpec::Video(VideoPreprocess::kinetics(4, 1))
    }

    #[test]
    fn audio_is_one_chunk_at_the_models_rate_pcm_scaled_by_32768() {
        let spec = InputSpec::Audio {
            sample_rate: 16_000,
            chunk: 4,
        };
        let audio = |sample_rate, samples| FramePayload::Audio {
            sample_rate,
            samples,
        };
        let pcm = audio(16_000, AudioSamples::Pcm16(vec![-32768, 0, 16384, 32767]));
        assert_eq!(
            spec.prepare(&pcm, DEFAULT_MAX_IMAGE_PIXELS).unwrap(),
            [-1.0, 0.0, 0.5, 32767.0 / 32768.0]
        );
        let floats = audio(16_000, AudioSamples::Float(vec![0.25; 4]));
        assert_eq!(
            spec.prepare(&floats, DEFAULT_MAX_IMAGE_PIXELS).unwrap(),
            [0.25; 4]
        );
        let tensor = FramePayload::Tensor {
            shape: vec![1, 4, 1],
            data: vec![0.5; 4],
        };
        assert_eq!(
            spec.prepare(&tensor, DEFAULT_MAX_IMAGE_PIXELS).unwrap(),
            [0.5; 4]
        );
        let cases = [
            (
                audio(8_000, AudioSamples::Float(vec![0.0; 4])),
                "audio at 8000 Hz",
            ),
            (audio(16_000, AudioSamples::Pcm16(vec![0; 5])), "5 samples"),
            (
                audio(
                    16_000,
                    AudioSamples::Float(vec![0.0, f32::INFINITY, 0.0, 0.0]),
                ),
                "value 1 is inf",
            ),
            (
                FramePayload::Features(vec![0.0; 4]),
                "this model takes audio",
            ),
        ];
        for (payload, message) in cases {
            let err = spec
                .prepare(&payload, DEFAULT_MAX_IMAGE_PIXELS)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{err}");
        }
    }

    #[test]
    fn feature_vectors_are_one_frame_of_the_models_length() {
        let spec = InputSpec::Features { features: 6 };
        assert_eq!(spec.frame_shape(), [6, 1, 1]);
        let values: Vec<f32> = (0..6).map(|i| i as f32 - 2.5).collect();
        let prepared = spec
            .prepare(
                &FramePayload::Features(values.clone()),
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap();
        assert_eq!(prepared, values);
        let tensor = FramePayload::Tensor {
            shape: vec![6, 1, 1],
            data: values.clone(),
        };
        assert_eq!(
            spec.prepare(&tensor, DEFAULT_MAX_IMAGE_PIXELS).unwrap(),
            values
        );
        let err = spec
            .prepare(
                &FramePayload::Features(vec![0.0; 5]),
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Features {
                    expected: 6,
                    found: 5
                }
            ),
            "{err}"
        );
        let mut infinite = values;
        infinite[4] = f32::INFINITY;
        let err = spec
            .prepare(&FramePayload::Features(infinite), DEFAULT_MAX_IMAGE_PIXELS)
            .unwrap_err();
        assert!(
            matches!(err, FrameError::NonFinite { index: 4, .. }),
            "{err}"
        );
        let err = spec
            .prepare(&FramePayload::Encoded(vec![0xff]), DEFAULT_MAX_IMAGE_PIXELS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("this model takes feature vectors"), "{err}");
    }

    #[test]
    fn tensors_must_have_the_input_shape_and_finite_values() {
        let spec = video();
        let ok = FramePayload::Tensor {
            shape: vec![3, 4, 4],
            data: vec![0.5; 48],
        };
        assert_eq!(
            spec.prepare(&ok, DEFAULT_MAX_IMAGE_PIXELS).unwrap().len(),
            48
        );
        let cases = [
            (vec![3, 4, 4], vec![0.5; 47], "holds 48 values, got 47"),
            (vec![3, 8, 2], vec![0.5; 48], "expected shape [3, 4, 4]"),
            (vec![usize::MAX, 2], vec![], "holds"),
        ];
        for (shape, data, message) in cases {
            let err = spec
                .prepare(
                    &FramePayload::Tensor { shape, data },
                    DEFAULT_MAX_IMAGE_PIXELS,
                )
                .unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
        let mut data = vec![0.5; 48];
        data[17] = f32::NAN;
        let err = spec
            .prepare(
                &FramePayload::Tensor {
                    shape: vec![3, 4, 4],
                    data,
                },
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap_err();
        assert!(
            matches!(err, FrameError::NonFinite { index: 17, .. }),
            "{err}"
        );
    }

    #[test]
    fn other_kinds_are_refused_by_name() {
        let err = video()
            .prepare(
                &FramePayload::Features(vec![1.0; 4]),
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this model takes video frames (JPEG, PNG, raw pixels or [3, H, W] tensors), not a \
             feature vector"
        );
        let err = video()
            .prepare(
                &FramePayload::Skeleton {
                    persons: 1,
                    joints: 25,
                    data: vec![0.0; 75],
                },
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap_err();
        assert!(matches!(
            err,
            FrameError::WrongKind {
                found: "skeleton joints",
                ..
            }
        ));
    }

    fn skeleton() -> InputSpec {
        InputSpec::Skeleton {
            channels: 3,
            joints: 4,
            persons: 2,
        }
    }

    #[test]
    fn skeleton_joints_become_channels_by_joints_by_persons_with_absent_persons_zero() {
        // One person of 4 joints, (x, y, c) = (10j, 10j + 1, 10j + 2).
        let data: Vec<f32> = (0..4)
            .flat_map(|j| {
                [
                    10.0 * j as f32,
                    10.0 * j as f32 + 1.0,
                    10.0 * j as f32 + 2.0,
                ]
            })
            .collect();
        let frame = skeleton()
            .prepare(
                &FramePayload::Skeleton {
                    persons: 1,
                    joints: 4,
                    data,
                },
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap();
        assert_eq!(frame.len(), 3 * 4 * 2);
        // [c][v][p]: channel 1 of joint 2 of person 0, and person 1 all zero.
        assert_eq!(frame[(4 + 2) * 2], 21.0);
        assert!((0..12).all(|i| frame[2 * i + 1] == 0.0));
    }

    #[test]
    fn skeleton_frames_are_checked() {
        let spec = skeleton();
        let prepare = |persons, joints, data: Vec<f32>| {
            spec.prepare(
                &FramePayload::Skeleton {
                    persons,
                    joints,
                    data,
                },
                DEFAULT_MAX_IMAGE_PIXELS,
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            prepare(3, 4, vec![0.0; 36]),
            "the frame has 3 persons; this model takes at most 2 (send the main ones)"
        );
        assert_eq!(
            prepare(1, 5, vec![0.0; 15]),
            "the frame has 5 joints per person; this model's skeleton has 4"
        );
        assert!(prepare(1, 4, vec![0.0; 11]).contains("holds 12 values, got 11"));
        let mut bad = vec![0.0; 12];
        bad[5] = f32::INFINITY;
        assert!(prepare(1, 4, bad).contains("value 5 is inf"));
        assert!(spec
            .prepare(
                &FramePayload::Encoded(vec![0xFF, 0xD8]),
                DEFAULT_MAX_IMAGE_PIXELS
            )
            .unwrap_err()
            .to_string()
            .starts_with("this model takes skeleton joints"));
    }
}
