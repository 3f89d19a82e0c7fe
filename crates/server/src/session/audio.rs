//! Audio frames at another rate than the model's. A stream whose first audio frame comes at
//! another rate keeps a resampler for its life (torchaudio's default `Resample`, as
//! silero-vad's `read_audio` applies it to recordings), and each of its frames — one chunk's
//! duration at the stream's rate, e.g. 1,536 samples at 48 kHz for 512 at 16 kHz — becomes
//! one chunk at the model's rate, so that every frame still gets its own answer.
//!
//! The resampler's filter looks ahead (19 input samples at 48 kHz), so a frame's samples are
//! not all resampled when it arrives: the stream's resampled audio starts with that many
//! output samples of silence (`latency`: 7 at 16 kHz from 48 kHz, 14 from 8 kHz) and its last
//! `latency` samples are never stepped. The probabilities are those of the recording delayed
//! by `latency` samples; positions count the resampled audio.

use std::collections::VecDeque;
use std::sync::Arc;

use costream_engine::{AudioSamples, FramePayload, ModelInfo};
use costream_models::resample::{ResampleState, ResampleStream, Resampler};
use serde::{Deserialize, Serialize};

/// A stream's audio intake: nothing for models that take no audio.
#[derive(Debug)]
pub(super) struct AudioFront {
    /// The model's rate and chunk, for audio models.
    target: Option<(u32, usize)>,
    resampling: Option<Resampling>,
}

/// A stream at another rate than the model's.
#[derive(Debug)]
struct Resampling {
    /// The stream's rate.
    rate: u32,
    stream: ResampleStream,
    /// Resampled samples not yet sent to the model.
    ready: VecDeque<f32>,
}

/// Where a resampling stream stands, as the parked stream saves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SavedResampling {
    rate: u32,
    pending: Vec<f32>,
    received: u64,
    emitted: u64,
    ready: Vec<f32>,
}

impl AudioFront {
    /// The intake of a stream of `model`, continuing from `saved`.
    pub(super) fn new(model: &ModelInfo, saved: Option<SavedResampling>) -> AudioFront {
        let target = model.input.audio();
        let resampling = target
            .zip(saved)
            .and_then(|((to, _), saved)| Resampling::restore(to, saved));
        AudioFront { target, resampling }
    }

    /// The payload the engine gets for `payload`: audio at another rate than the model's
    /// resampled to one chunk at its rate, anything else as it is.
    ///
    /// # Errors
    /// A message naming what is wrong with an audio frame at another rate: a rate that
    /// changed within the stream, a chunk that is no whole number of samples at that rate, a
    /// frame of another length, a value that is not finite.
    pub(super) fn convert(&mut self, payload: FramePayload) -> Result<FramePayload, String> {
        let (
            Some((to, chunk)),
            FramePayload::Audio {
                sample_rate,
                samples,
            },
        ) = (self.target, &payload)
        else {
            return Ok(payload);
        };
        let rate = *sample_rate;
        match &self.resampling {
            Some(r) if r.rate != rate => {
                return Err(format!(
                    "audio at {rate} Hz: this stream's audio is at {} Hz (a stream keeps its \
                     rate until a reset)",
                    r.rate
                ))
            }
            None if rate == to => return Ok(payload),
            _ => {}
        }
        let frame = frame_samples(rate, to, chunk)?;
        if samples.len() != frame {
            return Err(format!(
                "{} samples at {rate} Hz: a frame is one chunk, {frame} samples at this rate \
                 ({chunk} at {to} Hz)",
                samples.len()
            ));
        }
        let values = samples.to_finite_f32().map_err(|e| e.to_string())?;
        let r = match &mut self.resampling {
            Some(r) => r,
            None => self
                .resampling
                .insert(Resampling::start(rate, to, chunk, frame)?),
        };
        let mut out = Vec::with_capacity(chunk + 1);
        r.stream.push(&values, &mut out);
        r.ready.extend(out);
        let chunk: Vec<f32> = r.ready.drain(..chunk.min(r.ready.len())).collect();
        Ok(FramePayload::Audio {
            sample_rate: to,
            samples: AudioSamples::Float(chunk),
        })
    }

    /// Forgets the stream's rate and resampler (a `reset` or `flush` starts it afresh).
    pub(super) fn reset(&mut self) {
        self.resampling = None;
    }

    /// Where the resampler stands, to save with the stream's state; `None` when the stream
    /// is not resampled.
    pub(super) fn saved(&self) -> Option<SavedResampling> {
        let r = self.resampling.as_ref()?;
        let state = r.stream.state();
        Some(SavedResampling {
            rate: r.rate,
            pending: state.pending,
            received: state.received,
            emitted: state.emitted,
            ready: r.ready.iter().copied().collect(),
        })
    }
}

impl Resampling {
    /// A resampler from `rate` to `to` for frames of `frame` samples, primed with the silence
    /// that its look-ahead needs for every frame to complete a chunk of `chunk`.
    fn start(rate: u32, to: u32, chunk: usize, frame: usize) -> Result<Resampling, String> {
        let resampler = Resampler::new(rate, to).map_err(|e| e.to_string())?;
        // The shortfall repeats with the filter's period; a few dozen frames cover it.
        let latency = (1..=64usize)
            .map(|k| (k * chunk).saturating_sub(resampler.streamed_len(k * frame)))
            .max()
            .unwrap_or(0);
        Ok(Resampling {
            rate,
            stream: ResampleStream::new(Arc::new(resampler)),
            ready: std::iter::repeat_n(0.0, latency).collect(),
        })
    }

    /// The resampler to `to` that `saved` describes; `None` for a rate no resampler takes.
    fn restore(to: u32, saved: SavedResampling) -> Option<Resampling> {
        let resampler = Arc::new(Resampler::new(saved.rate, to).ok()?);
        let state = ResampleState {
            pending: saved.pending,
            received: saved.received,
            emitted: saved.emitted,
        };
        Some(Resampling {
            rate: saved.rate,
            stream: ResampleStream::restore(resampler, state),
            ready: saved.ready.into(),
        })
    }
}

/// Samples of one chunk's duration at `rate`.
fn frame_samples(rate: u32, to: u32, chunk: usize) -> Result<usize, String> {
    let scaled = chunk as u64 * u64::from(rate);
    if rate == 0 || !scaled.is_multiple_of(u64::from(to)) {
        return Err(format!(
            "audio at {rate} Hz: a frame is one chunk ({chunk} samples at {to} Hz), which is no \
             whole number of samples at this rate; resample to {to} Hz on the client"
        ));
    }
    Ok((scaled / u64::from(to)) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front() -> AudioFront {
        AudioFront {
            target: Some((16_000, 512)),
            resampling: None,
        }
    }

    fn audio(rate: u32, samples: Vec<f32>) -> FramePayload {
        FramePayload::Audio {
            sample_rate: rate,
            samples: AudioSamples::Float(samples),
        }
    }

    fn chunk(payload: FramePayload) -> Vec<f32> {
        match payload {
            FramePayload::Audio {
                sample_rate: 16_000,
                samples: AudioSamples::Float(s),
            } => s,
            other => panic!("not a 16 kHz chunk: {other:?}"),
        }
    }

    #[test]
    fn frames_at_another_rate_become_the_recording_resampled_and_delayed() {
        let signal: Vec<f32> = (0..1536 * 6)
            .map(|i| (i as f32 * 0.013).sin() * 0.4)
            .collect();
        let whole = Resampler::new(48_000, 16_000).unwrap().resample(&signal);
        let mut front = front();
        let mut got = Vec::new();
        for (k, frame) in signal.chunks(1536).enumerate() {
            let out = chunk(front.convert(audio(48_000, frame.to_vec())).unwrap());
            assert_eq!(out.len(), 512, "frame {k}");
            got.extend(out);
            if k == 2 {
                // Saved and restored mid-stream, it goes on exactly.
                front = AudioFront {
                    target: Some((16_000, 512)),
                    resampling: Resampling::restore(16_000, front.saved().unwrap()),
                };
            }
        }
        let latency = got.iter().take_while(|v| **v == 0.0).count();
        assert_eq!(latency, 7, "48 kHz → 16 kHz looks 7 output samples ahead");
        assert_eq!(got[latency..], whole[..got.len() - latency]);
    }

    #[test]
    fn audio_that_cannot_be_cut_into_chunks_is_refused_by_name() {
        let mut front = front();
        let at_44k = front.convert(audio(44_100, vec![0.0; 1411])).unwrap_err();
        assert!(at_44k.contains("no whole number of samples"), "{at_44k}");
        let short = front.convert(audio(48_000, vec![0.0; 1000])).unwrap_err();
        assert!(short.contains("1536 samples at this rate"), "{short}");
        let nan = front
            .convert(audio(48_000, {
                let mut v = vec![0.0; 1536];
                v[3] = f32::NAN;
                v
            }))
            .unwrap_err();
        assert!(nan.contains("value 3 is NaN"), "{nan}");
        front.convert(audio(8_000, vec![0.0; 256])).unwrap();
        let switched = front.convert(audio(48_000, vec![0.0; 1536])).unwrap_err();
        assert!(
            switched.contains("this stream's audio is at 8000 Hz"),
            "{switched}"
        );
        front.reset();
        front.convert(audio(48_000, vec![0.0; 1536])).unwrap();
        // At the model's rate, frames pass as they are (the engine checks them).
        let mut fresh = self::front();
        let same = audio(16_000, vec![0.5; 100]);
        assert_eq!(fresh.convert(same.clone()).unwrap(), same);
    }
}
