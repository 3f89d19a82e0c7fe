//! The model families' integration tests, one module per concern, in one test binary.
//!
//! One binary because each test binary compiles the whole model stack for the test backend
//! (several minutes each on 2 cores).

mod batch_rows;
mod skeleton_reference;
mod stgcn_properties;
mod x3d_properties;
