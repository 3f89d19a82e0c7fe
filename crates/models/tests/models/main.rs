//! The model families' integration tests, one module per concern, in one test binary.
//!
//! One binary because each test binary compiles and links the model stack for the test
//! backend for itself.

mod cooadtr_reference;
mod properties;
mod resample_reference;
mod silero_vad_reference;
mod skeleton_reference;
mod stgcn_properties;
mod x3d_properties;
