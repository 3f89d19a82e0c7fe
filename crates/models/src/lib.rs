//! Model families on the continual core, with what serving them needs: checkpoint import from
//! the files users download, class labels, and each model's input preprocessing.
//!
//! - [`builtin`]: the model compiled into the binary (trained on synthetic actions).
//! - [`x3d`]: X3D / CoX3D video models (XS, S, M, L) from PyTorchVideo or PySlowFast files.
//! - [`stgcn`]: CoST-GCN skeleton models from continual-skeletons checkpoints.
//! - [`oadtr`]: CoOadTR online action detection on per-frame feature vectors.
//! - [`vad`]: Silero VAD (voice activity on 16 kHz audio) with its pretrained weights.
//! - [`checkpoint`]: PyTorch pickles and safetensors read into key-named weights.
//! - [`labels`]: class names (Kinetics-400 and NTU RGB+D 60 shipped) and top-k answers.
//! - [`preprocess`]: how frames are prepared for a video model.
//! - [`resample`]: audio brought to a model's sample rate as torchaudio's `Resample` does.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod builtin;
pub mod checkpoint;
pub mod error;
pub mod labels;
pub mod oadtr;
pub mod preprocess;
pub mod resample;
pub mod stgcn;
pub mod vad;
pub mod x3d;

pub use error::LoadError;
pub use labels::{kinetics400, ntu60, thumos14, tvseries, Labels, Ranked};
pub use preprocess::{RgbImage, VideoPreprocess};
