//! Online action detection with continual transformers: CoOadTR (Hedegaard et al.,
//! "Continual Transformers", ICLR 2023), OadTR's encoder re-expressed so that each new frame
//! costs one continual step.
//!
//! A frame is one feature vector of `D_in` values (for THUMOS'14, TSN features of a video's
//! frames at 4 fps), laid out `[D_in, 1, 1]`. Each step maps it to a token
//! (`Linear(D_in → d)`), adds a recycling positional embedding, steps the encoder (one
//! single-output layer for b1; a retroactive layer, then a single-output one, for b2) over the
//! window of the last `n` tokens, and gives the newest frame's class logits (background
//! included) after a LayerNorm and a linear classifier. The first answer comes once the
//! window is full.
//!
//! - [`config`]: every dimension, the paper's THUMOS'14 and TVSeries presets.
//! - [`build`]: the network from a configuration.
//! - [`load`]: checkpoints of CoOadTR's training code, of the reference library and
//!   costream's own.
//! - [`named`]: the variants a server names, with their datasets' class names.

pub mod build;
pub mod config;
pub mod load;
pub mod named;

pub use build::build_co_oadtr;
pub use config::{CoOadTrConfig, OadTrDataset};
pub use load::{load_co_oadtr, load_co_oadtr_weights, OadTrLayout};
pub use named::NamedOadTr;
