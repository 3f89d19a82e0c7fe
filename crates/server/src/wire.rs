//! Conversions between the wire messages (`costream_proto::v1`) and the engine's types:
//! frame payloads in, predictions and summaries out.

use costream_engine::{
    AudioSamples, FramePayload, ModelInfo, PixelFormat, StreamCounts, TemporalFill,
};
use costream_models::vad::DetectorParams;
use costream_proto::v1::{
    self, frame, server_message, Fill, LabelScore, ServerMessage, StreamOptions,
};
use serde::{Deserialize, Serialize};

use crate::store::{StoredCounts, StoredLabel};

/// A stream's options once defaults are applied and checked.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EffectiveOptions {
    /// Labels per prediction.
    pub top_k: u32,
    /// Replicate the first frame instead of zero padding.
    pub replicate: bool,
    /// Keep every n-th frame.
    pub sample_stride: u32,
    /// Send every class's score.
    pub all_scores: bool,
    /// Voice activity detection (voice activity models only).
    #[serde(default)]
    pub voice: Option<VoiceOptions>,
}

/// When a voice activity stream's speech starts and ends (silero-vad's `VADIterator`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VoiceOptions {
    /// Probability at which speech starts.
    pub threshold: f32,
    /// Silence that ends speech, in milliseconds.
    pub min_silence_ms: u32,
    /// Padding added to starts and ends, in milliseconds.
    pub speech_pad_ms: u32,
}

impl VoiceOptions {
    /// The detector's parameters.
    pub fn params(&self) -> DetectorParams {
        DetectorParams {
            threshold: f64::from(self.threshold),
            min_silence_ms: self.min_silence_ms,
            speech_pad_ms: self.speech_pad_ms,
        }
    }

    /// The client's `vad_*` options with the package's defaults for those unset.
    fn resolve(options: &StreamOptions) -> Result<VoiceOptions, String> {
        let defaults = DetectorParams::default();
        let threshold = options.vad_threshold.unwrap_or(defaults.threshold as f32);
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(format!(
                "options.vad_threshold = {threshold}: use a probability between 0 and 1"
            ));
        }
        const MAX_MS: u32 = 60_000;
        let min_silence_ms = options
            .vad_min_silence_ms
            .unwrap_or(defaults.min_silence_ms);
        let speech_pad_ms = options.vad_speech_pad_ms.unwrap_or(defaults.speech_pad_ms);
        for (name, value) in [
            ("vad_min_silence_ms", min_silence_ms),
            ("vad_speech_pad_ms", speech_pad_ms),
        ] {
            if value > MAX_MS {
                return Err(format!("options.{name} = {value} exceeds {MAX_MS}"));
            }
        }
        Ok(VoiceOptions {
            threshold,
            min_silence_ms,
            speech_pad_ms,
        })
    }
}

impl EffectiveOptions {
    /// Applies defaults to a client's options and checks them against the model.
    ///
    /// # Errors
    /// A message naming the option and the value when one is out of range.
    pub fn resolve(
        options: Option<&StreamOptions>,
        model: &ModelInfo,
        default_top_k: u32,
    ) -> Result<EffectiveOptions, String> {
        let default = StreamOptions::default();
        let options = options.unwrap_or(&default);
        let classes = u32::try_from(model.labels.len()).unwrap_or(u32::MAX);
        let top_k = if options.top_k == 0 {
            default_top_k.min(classes)
        } else {
            options.top_k
        };
        if top_k > classes {
            return Err(format!(
                "options.top_k = {top_k} exceeds the {classes} classes of model `{}`",
                model.name
            ));
        }
        const MAX_STRIDE: u32 = 1000;
        if options.sample_stride > MAX_STRIDE {
            return Err(format!(
                "options.sample_stride = {} exceeds {MAX_STRIDE}",
                options.sample_stride
            ));
        }
        let replicate = match Fill::try_from(options.fill) {
            Ok(Fill::Unspecified | Fill::Zeros) => false,
            Ok(Fill::Replicate) => true,
            Err(_) => return Err(format!("options.fill = {} is not a Fill", options.fill)),
        };
        let voice = match model.input.audio() {
            Some(_) => Some(VoiceOptions::resolve(options)?),
            None => {
                let set = [
                    ("vad_threshold", options.vad_threshold.is_some()),
                    ("vad_min_silence_ms", options.vad_min_silence_ms.is_some()),
                    ("vad_speech_pad_ms", options.vad_speech_pad_ms.is_some()),
                ];
                if let Some((name, _)) = set.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "options.{name} applies to voice activity models; `{}` is not one",
                        model.name
                    ));
                }
                None
            }
        };
        Ok(EffectiveOptions {
            top_k,
            replicate,
            sample_stride: options.sample_stride.max(1),
            all_scores: options.all_scores,
            voice,
        })
    }

    /// The engine's temporal fill.
    pub fn fill(&self) -> TemporalFill {
        if self.replicate {
            TemporalFill::Replicate
        } else {
            TemporalFill::Zeros
        }
    }

    /// The options as the wire shows them.
    pub fn to_wire(self) -> StreamOptions {
        StreamOptions {
            top_k: self.top_k,
            fill: if self.replicate {
                Fill::Replicate
            } else {
                Fill::Zeros
            } as i32,
            sample_stride: self.sample_stride,
            all_scores: self.all_scores,
            vad_threshold: self.voice.map(|v| v.threshold),
            vad_min_silence_ms: self.voice.map(|v| v.min_silence_ms),
            vad_speech_pad_ms: self.voice.map(|v| v.speech_pad_ms),
        }
    }
}

/// The engine's payload for a frame's wire payload.
///
/// # Errors
/// A message naming the field when the payload is missing or its pixel format unknown.
pub fn payload(payload: Option<frame::Payload>) -> Result<FramePayload, String> {
    let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
    match payload {
        None => Err(
            "the frame has no payload: set encoded, raw, tensor, skeleton, features or audio"
                .into(),
        ),
        Some(frame::Payload::Encoded(bytes)) => Ok(FramePayload::Encoded(bytes)),
        Some(frame::Payload::Raw(raw)) => {
            let format = match v1::PixelFormat::try_from(raw.format) {
                Ok(v1::PixelFormat::Rgb8) => PixelFormat::Rgb8,
                Ok(v1::PixelFormat::Rgba8) => PixelFormat::Rgba8,
                Ok(v1::PixelFormat::Gray8) => PixelFormat::Gray8,
                Ok(v1::PixelFormat::Graya8) => PixelFormat::GrayAlpha8,
                _ => {
                    return Err(format!(
                        "raw.format = {} is not a pixel format (RGB8, RGBA8, GRAY8, GRAYA8)",
                        raw.format
                    ))
                }
            };
            Ok(FramePayload::Raw {
                format,
                width: to_usize(raw.width),
                height: to_usize(raw.height),
                data: raw.data,
            })
        }
        Some(frame::Payload::Tensor(t)) => Ok(FramePayload::Tensor {
            shape: t.shape.into_iter().map(to_usize).collect(),
            data: t.data,
        }),
        Some(frame::Payload::Skeleton(s)) => Ok(FramePayload::Skeleton {
            persons: to_usize(s.persons),
            joints: to_usize(s.joints),
            data: s.data,
        }),
        Some(frame::Payload::Features(f)) => Ok(FramePayload::Features(f.values)),
        Some(frame::Payload::Audio(audio)) => audio_payload(audio),
    }
}

/// The engine's audio payload: exactly one of `pcm16` (whole little-endian samples) and
/// `samples`.
fn audio_payload(audio: v1::Audio) -> Result<FramePayload, String> {
    let samples = match (audio.pcm16.is_empty(), audio.samples.is_empty()) {
        (false, false) => return Err("audio: set pcm16 or samples, not both".into()),
        (true, true) => return Err("audio: no samples (set pcm16 or samples)".into()),
        (false, true) if !audio.pcm16.len().is_multiple_of(2) => {
            return Err(format!(
                "audio.pcm16 has {} bytes: 16-bit samples take two bytes each",
                audio.pcm16.len()
            ))
        }
        (false, true) => AudioSamples::Pcm16(
            audio
                .pcm16
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect(),
        ),
        (true, false) => AudioSamples::Float(audio.samples),
    };
    Ok(FramePayload::Audio {
        sample_rate: audio.sample_rate,
        samples,
    })
}

/// The best `k` classes of `scores`, best first.
pub fn top_k(model: &ModelInfo, scores: &[f32], k: u32) -> Vec<StoredLabel> {
    model
        .labels
        .top_k(scores, usize::try_from(k).unwrap_or(usize::MAX))
        .into_iter()
        .map(|r| StoredLabel {
            index: u32::try_from(r.index).unwrap_or(u32::MAX),
            label: r.label.to_string(),
            score: r.score,
        })
        .collect()
}

/// Stored labels as wire labels.
pub fn labels(top: &[StoredLabel]) -> Vec<LabelScore> {
    top.iter()
        .map(|l| LabelScore {
            index: l.index,
            label: l.label.clone(),
            score: l.score,
        })
        .collect()
}

/// Engine counts as stored counts.
pub fn counts(c: StreamCounts) -> StoredCounts {
    StoredCounts {
        frames_in: c.frames_in,
        predicted: c.predicted,
        filling: c.filling,
        skipped: c.skipped,
        dropped: c.dropped,
        rejected: c.rejected,
    }
}

/// Wraps one server message kind.
pub fn message(msg: server_message::Msg) -> ServerMessage {
    ServerMessage { msg: Some(msg) }
}

/// Microseconds of a duration, saturating.
pub fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
