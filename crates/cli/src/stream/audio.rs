//! `.wav` input for audio models: a recording read as silero-vad's `read_audio` reads it
//! (integer PCM scaled to [-1, 1) — 16-bit samples divided by 32768 —, float samples as they
//! are, channels averaged), brought to the model's rate by torchaudio's default `Resample`
//! (costream-models' resampler), and cut into the model's chunks, the last one zero-padded
//! as `get_speech_timestamps` pads it. Each chunk is one frame, sent as float samples.

use std::path::Path;

use costream_models::resample::Resampler;
use costream_proto::v1::{frame::Payload, Audio, AudioInput};

/// A recording at the model's rate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recording {
    /// Mono samples at `rate`.
    pub(crate) samples: Vec<f32>,
    /// Samples per second.
    pub(crate) rate: u32,
}

impl Recording {
    /// Reads `path` and resamples it to `rate`.
    ///
    /// # Errors
    /// A message when the file is not a WAV file hound reads, or holds no samples.
    pub(crate) fn read(path: &Path, rate: u32) -> Result<Recording, String> {
        let named = |e: String| format!("{}: {e}", path.display());
        let mut reader = hound::WavReader::open(path).map_err(|e| named(e.to_string()))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(|e| named(e.to_string()))?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / f64::from(1u32 << (spec.bits_per_sample.clamp(1, 32) - 1));
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|s| (f64::from(s) * scale) as f32))
                    .collect::<Result<_, _>>()
                    .map_err(|e| named(e.to_string()))?
            }
        };
        let mono: Vec<f32> = interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() / channels as f32)
            .collect();
        if mono.is_empty() {
            return Err(named("the recording holds no samples".into()));
        }
        let resampler = Resampler::new(spec.sample_rate, rate).map_err(|e| named(e.to_string()))?;
        Ok(Recording {
            samples: resampler.resample(&mono),
            rate,
        })
    }

    /// The recording as frames of `input.chunk_samples` samples.
    pub(crate) fn frames(&self, input: &AudioInput) -> Vec<Payload> {
        let chunk = (input.chunk_samples as usize).max(1);
        self.samples
            .chunks(chunk)
            .map(|part| {
                let mut samples = part.to_vec();
                samples.resize(chunk, 0.0);
                Payload::Audio(Audio {
                    sample_rate: input.sample_rate,
                    pcm16: Vec::new(),
                    samples,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for &s in samples {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
    }

    #[test]
    fn stereo_pcm_is_averaged_scaled_and_cut_in_padded_chunks() {
        let dir = std::env::temp_dir().join(format!("costream-wav-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stereo.wav");
        // 600 stereo frames at 16 kHz: left 16384, right -8192 → (0.5 − 0.25) / 2.
        let samples: Vec<i16> = (0..600).flat_map(|_| [16_384, -8_192]).collect();
        write_wav(&path, 16_000, 2, &samples);
        let recording = Recording::read(&path, 16_000).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(recording.samples.len(), 600);
        assert!(recording.samples.iter().all(|&s| s == 0.125));
        let input = AudioInput {
            sample_rate: 16_000,
            chunk_samples: 512,
        };
        let frames = recording.frames(&input);
        assert_eq!(frames.len(), 2);
        let Payload::Audio(last) = &frames[1] else {
            panic!("an audio frame")
        };
        assert_eq!(last.samples.len(), 512);
        assert_eq!(last.samples[87], 0.125);
        assert_eq!(last.samples[88], 0.0);
    }

    #[test]
    fn a_file_that_is_not_wav_is_named() {
        let path = std::env::temp_dir().join(format!("costream-not-wav-{}", std::process::id()));
        std::fs::write(&path, b"not a riff file").unwrap();
        let err = Recording::read(&path, 16_000).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }
}
