//! costream against the PyTorch reference library (`continual-inference`): the harnesses
//! behind the `conformance` test binary's two reports, `golden` (`../shared/golden`, small
//! modules) and `interop` (`../shared/interop`, full-size checkpoints in the zoo formats).
//!
//! - [`fixture`]: reading a reference file's tensors, weights and metadata.
//! - [`expr`]: a parser for the Python builder expressions in the golden metadata.
//! - [`builder`]: the Rust module each builder expression describes.
//! - [`stgcn`]: the golden set's ST-GCN block and network.
#![allow(clippy::unwrap_used)]

pub mod builder;
pub mod expr;
pub mod fixture;
pub mod stgcn;
