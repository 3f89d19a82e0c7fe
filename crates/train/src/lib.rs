//! Training costream's built-in model: an offline X3D (the same modules the server steps as
//! CoX3D) trained with burn's autodiff on synthetic action clips, on the CPU, in minutes.
//!
//! `cargo run --release -p costream-train` reproduces `crates/models/weights/` from scratch.
//!
//! # Layout
//! - [`data`]: batches of synthetic clips, preprocessed as the engine does.
//! - [`init`]: the initialisation training starts from.
//! - [`adam`]: the optimiser.
//! - [`train`]: the loop and its loss.
//! - [`evaluate`]: accuracy of the network stepped continually.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adam;
pub mod data;
pub mod evaluate;
pub mod init;
pub mod train;
