//! The device side of costream: loaded models, per-stream state slots, and a scheduler that
//! steps every ready stream of a model as one batch on a thread that owns the device.
//!
//! Synchronous core with a channel API: [`Engine::start`] loads and warms up the models of an
//! [`EngineConfig`], then [`Engine::open`] gives a [`StreamHandle`] whose frames are decoded
//! and preprocessed on the caller's thread ([`input`]), stepped in batches on the device
//! thread, and answered in order as [`StreamEvent`]s (blocking or `async` receive).
//!
//! # Layout
//! - [`config`], [`device`]: what to serve where (TOML file or code), and its limits.
//! - [`model`]: a model family loaded for serving, with its input spec and labels.
//! - [`input`], [`image`]: frame payloads, decoding, validation and preprocessing.
//! - [`slots`]: per-model stream slots: capacity, backlog, idle reaping.
//! - [`batch`]: the state of every active stream of a model as one batch on the device.
//! - [`stream`]: stream options, events, counters, snapshots, and the caller's handle.
//! - [`worker`]: the device thread: commands, ticks, batching policy.
//! - [`engine`]: start-up, warm-up, opening streams, shutdown.
//! - [`fault`]: failure injection for tests (feature `fault-injection`).
//! - [`loadgen`]: N concurrent closed-loop streams, for benchmarks.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod batch;
pub mod clock;
pub mod config;
pub mod device;
pub mod engine;
pub mod error;
pub mod fault;
pub mod image;
pub mod input;
pub mod loadgen;
pub mod model;
pub mod slots;
pub mod stream;
mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BatchPolicy, EngineConfig, ModelConfig, SlotPolicy, Warmup, WeightsSource,
    DEFAULT_MAX_IMAGE_PIXELS,
};
pub use costream_continual::TemporalFill;
pub use device::DeviceSpec;
pub use engine::Engine;
pub use error::{EngineError, FrameError, OpenError, SubmitError};
pub use fault::FaultPoint;
pub use input::{AudioSamples, FramePayload, InputSpec, PixelFormat, PreparedFrame};
pub use model::{Family, ModelInfo};
pub use stream::{
    EndReason, OpenOptions, Prediction, StreamCounts, StreamEvent, StreamHandle, StreamSnapshot,
    StreamSummary,
};
