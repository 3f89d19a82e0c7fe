//! Skeleton models: CoST-GCN, CoAGCN and CoS-TR (and their every-frame `*` forms) on
//! skeleton graphs, loading continual-skeletons checkpoints.
//!
//! A clip is `[N, C, T, V, P]`: `C` values per joint (x, y and confidence or z), `V` joints,
//! `P` persons (2; absent ones are zeros). The network is continual-skeletons' `CoStGcn`:
//! `data_bn` over every value of a frame, ten spatio-temporal blocks (a spatial unit over the
//! skeleton — graph convolution, AGCN's adaptive graph or S-TR's self-attention, see
//! [`SkeletonArchitecture`] — temporal convolution, residual), a mean over joints and persons, a temporal
//! average pool sized to the training clips, and a linear classifier giving logits.
//!
//! - [`graph`]: the NTU RGB+D, OpenPose (Kinetics-Skeleton) and COCO skeletons, custom edge
//!   lists, and the spatial-configuration partition.
//! - [`config`]: the network's shape (variants, datasets).
//! - [`build`]: the network from a configuration.
//! - [`load`]: checkpoints, with the key map.
//! - [`named`]: the variants a server names (`ntu60`, `str-ntu60-mod`, …).

pub mod build;
pub mod config;
pub mod graph;
pub mod load;
pub mod named;

pub use build::{build_stgcn, clip_logits, temporal_conv};
pub use config::{BlockShape, GraphUnit, SkeletonArchitecture, StGcnConfig, StGcnVariant};
pub use graph::SkeletonGraph;
pub use load::{continual_key, load_stgcn, load_stgcn_weights, LoadedStGcn};
pub use named::NamedStGcn;
