//! The continual crate's integration tests, one module per concern, in one test binary.
//!
//! One binary because each test binary compiles and links burn's backend code for itself:
//! on wgpu, the nine that CI ran took 28 minutes to build. The one test that needs the
//! process-wide RNG to itself lives in `tests/seeded_layers.rs`.

mod batch_norm_training;
mod fold_into_convs;
mod graph_conv;
mod overlap;
mod per_frame;
mod properties;
mod save_weights;
mod sequence_reference;
mod skeleton_units_reference;
mod state_errors;
mod transformer_properties;
mod unit_dim_frames;
