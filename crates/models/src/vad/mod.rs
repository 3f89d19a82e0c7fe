//! Voice activity detection: Silero VAD as a continual network, with the pretrained weights
//! compiled in.
//!
//! A frame is one chunk of 16 kHz mono audio (512 samples, 32 ms) laid out `[1, samples, 1]`
//! (channels, height, width: the samples run along height, as skeleton joints do). Each step
//! puts the previous chunk's last 64 samples in front ([`costream_continual::Overlap`]),
//! takes the STFT magnitude (a strided convolution with the Fourier basis), runs four
//! convolutions with ReLU over its four columns down to one vector, steps an LSTM cell (the
//! state every stream carries), and gives the chunk's speech probability: a step outputs
//! `[rows, 1, 1, 1]`.
//!
//! - [`config`]: the network's shape ([`SileroVadConfig::sixteen_khz`]).
//! - [`build`]: the network from a configuration.
//! - [`load`]: the package's safetensors layout (`tinygrad_model.py`'s names).
//! - [`builtin`]: the weights users get from the package (`silero_vad.jit`, exported by
//!   `tools/reference/silero_vad_reference.py`), MIT, compiled in.
//! - [`segments`]: speech start and end events from the probabilities, as the package's
//!   `VADIterator` gives them while streaming and `get_speech_timestamps` after the fact.

pub mod build;
pub mod builtin;
pub mod config;
pub mod load;
pub mod segments;

pub use build::build_silero_vad;
pub use config::SileroVadConfig;
pub use load::{load_silero_vad, load_silero_vad_weights};
pub use segments::{
    speech_segments, DetectorParams, DetectorState, Segment, SegmentParams, SpeechDetector,
    SpeechEvent,
};
