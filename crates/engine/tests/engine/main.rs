//! The engine's integration tests, one module per concern, in one test binary (each test
//! binary compiles the model stack for itself). The batching test is its own binary,
//! `tests/batching.rs`, so that CI can run it alone on wgpu.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod frames;
mod lifecycle;
mod startup;
