//! A voice activity stream's speech starts and ends: silero-vad's `VADIterator` over the
//! speech probability of each chunk the engine answers, shared between the stream's
//! forwarder (which feeds it) and the connection (which saves where it stands with the
//! stream's state, so that `resume` continues it exactly).

use std::sync::{Arc, Mutex, PoisonError};

use costream_engine::ModelInfo;
use costream_models::vad::{DetectorState, SpeechDetector, SpeechEvent};
use costream_proto::v1;
use serde::{Deserialize, Serialize};

use crate::wire::EffectiveOptions;

/// The detector of one stream; `None` inside for models other than voice activity ones.
#[derive(Debug, Clone)]
pub(super) struct Voice(Option<Arc<Mutex<Detector>>>);

#[derive(Debug)]
struct Detector {
    detector: SpeechDetector,
    chunk: usize,
}

/// Where a stream's detector stands, as the parked stream saves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SavedVoice {
    in_speech: bool,
    silence_since: u64,
    position: u64,
}

impl Voice {
    /// The detector a stream of `model` with `options` runs, continuing from `saved`.
    pub(super) fn new(
        model: &ModelInfo,
        options: &EffectiveOptions,
        saved: Option<SavedVoice>,
    ) -> Voice {
        let (Some((sample_rate, chunk)), Some(voice)) = (model.input.audio(), options.voice) else {
            return Voice(None);
        };
        let state = saved.map_or_else(DetectorState::default, |s| DetectorState {
            in_speech: s.in_speech,
            silence_since: s.silence_since,
            position: s.position,
        });
        Voice(Some(Arc::new(Mutex::new(Detector {
            detector: SpeechDetector::restore(voice.params(), sample_rate, state),
            chunk,
        }))))
    }

    /// Takes the next chunk's speech probability (the first of `scores`); the voice activity
    /// after it, or `None` for other models.
    pub(super) fn push(&self, scores: &[f32]) -> Option<v1::VoiceActivity> {
        let mut d = self
            .0
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let chunk = d.chunk;
        let event = d
            .detector
            .push(scores.first().copied().unwrap_or(0.0), chunk);
        Some(v1::VoiceActivity {
            in_speech: d.detector.in_speech(),
            speech_start: match event {
                Some(SpeechEvent::Start(at)) => Some(at),
                _ => None,
            },
            speech_end: match event {
                Some(SpeechEvent::End(at)) => Some(at),
                _ => None,
            },
        })
    }

    /// Starts again at sample 0 (the stream was reset or flushed).
    pub(super) fn reset(&self) {
        if let Some(d) = &self.0 {
            d.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .detector
                .reset();
        }
    }

    /// Where the detector stands, to save with the stream's state.
    pub(super) fn saved(&self) -> Option<SavedVoice> {
        let d = self
            .0
            .as_ref()?
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let state = d.detector.state();
        Some(SavedVoice {
            in_speech: state.in_speech,
            silence_since: state.silence_since,
            position: state.position,
        })
    }
}
