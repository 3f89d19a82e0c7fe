//! Continual Inference Network building blocks on burn tensors.
//!
//! A Co module runs the offline network over a clip ([`CoModule::forward`]) or one frame at a
//! time ([`CoModule::forward_step`]) with a per-stream [`State`] kept apart from its weights,
//! and gives the same numbers both ways (DESIGN.md §2). No I/O, no async.
//!
//! # Layout
//! - [`timing`]: receptive field, padding, stride and delay, and how they compose.
//! - [`state`], [`snapshot`]: per-stream state; take and put batch rows; byte snapshots.
//! - [`module`]: the [`CoModule`] trait and clip/frame helpers. Layouts: clip `[B, C, T, H,
//!   W]`, frame `[B, C, H, W]`.
//! - [`conv`], [`pool`], [`delay`], [`overlap`]: the temporal primitives.
//! - [`sequential`], [`broadcast`], [`layer`]: containers and the [`CoLayer`] enum.
//! - [`per_frame`], [`norm`], [`flat_norm`], [`graph`], [`graph_unit`], [`adaptive_graph`],
//!   [`spatial_attention`]: per-frame modules (linear, activations, norms, closures, skeleton
//!   graph convolution: ST-GCN's, AGCN's adaptive graph, S-TR's spatial self-attention).
//! - [`transformer`], [`positional`], [`recurrent`]: continual transformer encoders
//!   (single-output, retroactive, any depth), recycling positional encodings, RNN/GRU/LSTM.
//! - [`weights`]: checkpoints by PyTorch key names.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adaptive_graph;
pub mod broadcast;
pub mod conv;
pub mod delay;
pub mod error;
pub mod fill;
pub mod flat_norm;
mod flex_kernel;
pub mod graph;
pub mod graph_unit;
pub mod layer;
pub mod module;
pub mod norm;
pub mod overlap;
pub mod per_frame;
pub mod pool;
pub mod positional;
pub mod recurrent;
pub mod sequential;
pub mod snapshot;
pub mod spatial_attention;
pub mod state;
pub mod timing;
pub mod transformer;
pub mod weights;

pub use adaptive_graph::{AdaptiveGcnUnit, AdaptiveGcnUnitConfig};
pub use broadcast::{residual, BroadcastReduce, Reduce, ResidualShrink};
pub use conv::{CoConv, CoConvConfig};
pub use delay::Delay;
pub use error::{ConfigError, StateError, WeightError};
pub use fill::TemporalFill;
pub use flat_norm::FlatBatchNorm;
pub use graph::{GraphConv, GraphConvConfig, GraphConvLayout};
pub use graph_unit::{GcnUnit, GcnUnitConfig, Pointwise, Shortcut};
pub use layer::CoLayer;
pub use module::{
    clip_frames, load_checkpoint, map_frames, save_checkpoint, stack_frames, CoModule,
};
pub use norm::{BatchNorm, BatchNormConfig, GroupNorm, LayerNorm, NormConfig};
pub use overlap::Overlap;
pub use per_frame::{Activation, ActivationKind, FrameOp, Lambda, Linear, LinearConfig};
pub use pool::{CoPool, CoPoolConfig, PoolKind};
pub use positional::{PositionalTable, RecyclingPositionalEncoding};
pub use recurrent::{Recurrent, RecurrentConfig, RecurrentKind};
pub use sequential::Sequential;
pub use spatial_attention::{AttentionGcnUnit, AttentionGcnUnitConfig};
pub use state::State;
pub use timing::Timing;
pub use transformer::{
    EncoderLayerConfig, EncoderOutput, TransformerEncoder, TransformerEncoderConfig,
};
pub use weights::{WeightTensor, Weights};
