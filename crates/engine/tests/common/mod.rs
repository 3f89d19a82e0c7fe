//! Shared by the engine suites: a small CoX3D served by an engine, the same network stepped
//! directly as the reference, and deterministic frames.
#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use burn::prelude::*;
use costream_backend::Cpu;
use costream_continual::{CoModule, Sequential, State, TemporalFill};
use costream_engine::{
    Clock, Engine, EngineConfig, Family, FramePayload, ModelConfig, StreamEvent, StreamHandle,
    WeightsSource,
};
use costream_models::x3d::X3dConfig;

/// Seed of the tiny model's weights in every suite.
pub const SEED: u64 = 5;

/// Backend RNG seeding is global: building two networks at once would mix their weights.
fn build_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The tiny CoX3D (32×32, 5 classes) with random weights, served on the CPU.
pub fn tiny_model(name: &str) -> ModelConfig {
    let mut config = ModelConfig::new(
        name,
        Family::X3d,
        "tiny",
        WeightsSource::Random { seed: SEED },
    );
    config.slots.capacity = 4;
    config.slots.backlog = 2;
    config.slots.max_pending_frames = 64;
    config.batch.max_batch = 4;
    config.batch.max_wait = Duration::from_millis(20);
    config
}

/// Starts an engine serving `models` (under the build lock).
pub fn start(models: Vec<ModelConfig>, clock: Option<Arc<dyn Clock>>) -> Engine {
    let _guard = build_lock();
    let config = EngineConfig { models };
    match clock {
        Some(clock) => Engine::start_with_clock(&config, clock),
        None => Engine::start(&config),
    }
    .expect("engine starts")
}

/// The served network, built directly on the engine's backend from the same seed: the
/// reference a stream must match when stepped alone.
pub struct Reference<B: Backend = Cpu> {
    pub network: Sequential<B>,
    pub device: Device<B>,
}

impl Reference<Cpu> {
    pub fn new() -> Reference<Cpu> {
        Reference::on(Default::default())
    }
}

impl<B: Backend> Reference<B> {
    pub fn on(device: Device<B>) -> Reference<B> {
        let _guard = build_lock();
        B::seed(&device, SEED);
        let network = X3dConfig::tiny().build::<B>(&device).expect("tiny builds");
        Reference { network, device }
    }

    /// A one-stream state.
    pub fn state(&self, fill: TemporalFill) -> State<B> {
        self.network.init_state(1, fill, &self.device)
    }

    /// Steps one frame of one stream: its scores, or `None` while filling.
    pub fn step(&self, frame: &[f32], state: &mut State<B>) -> Option<Vec<f32>> {
        let input = Tensor::<B, 4>::from_data(
            TensorData::new(frame.to_vec(), [1, 3, 32, 32]),
            &self.device,
        );
        self.network.forward_step(input, state).map(|out| {
            out.into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("f32 output")
        })
    }
}

/// A deterministic input frame `[3, 32, 32]` for stream `stream`, frame `t`: a pseudo-random
/// pattern, scaled and shifted per stream so that different streams predict clearly
/// different scores (a row routed to the wrong stream must show).
pub fn frame(stream: u64, t: u64) -> Vec<f32> {
    let (scale, shift) = (1.0 + stream as f32, 0.5 * stream as f32);
    (0..3 * 32 * 32)
        .map(|i| {
            let x = (i as u64).wrapping_mul(2654435761)
                ^ stream.wrapping_mul(40503)
                ^ t.wrapping_mul(97);
            ((x % 2001) as f32 / 1000.0 - 1.0) * scale + shift
        })
        .collect()
}

/// The frame as a payload.
pub fn tensor(stream: u64, t: u64) -> FramePayload {
    FramePayload::Tensor {
        shape: vec![3, 32, 32],
        data: frame(stream, t),
    }
}

/// The next event, failing the test after a while.
pub fn next(stream: &StreamHandle) -> StreamEvent {
    stream
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("stream {} sent no event within 60 s", stream.id()))
}

/// The events up to and including the answer to frame `seq`.
pub fn until_seq(stream: &StreamHandle, seq: u64) -> Vec<StreamEvent> {
    let mut events = vec![];
    loop {
        let event = next(stream);
        let done = match &event {
            StreamEvent::Prediction(p) => p.seq == seq,
            StreamEvent::Filling { seq: s } | StreamEvent::Skipped { seq: s } => *s == seq,
            _ => false,
        };
        events.push(event);
        if done {
            return events;
        }
    }
}

/// The per-frame answer of an event: `Some(Some(scores))`, `Some(None)` for filling, `None`
/// for other events.
pub fn answer(event: &StreamEvent) -> Option<(u64, Option<Vec<f32>>)> {
    match event {
        StreamEvent::Prediction(p) => Some((p.seq, Some(p.scores.clone()))),
        StreamEvent::Filling { seq } => Some((*seq, None)),
        _ => None,
    }
}

/// Asserts two score vectors agree within `1e-5` (batched and single steps may sum in
/// another order).
pub fn assert_scores_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    let diff = costream_testkit::max_abs_diff(actual, expected);
    assert!(diff <= 1e-5, "{what}: max abs diff {diff}");
}

/// Asserts that the engine's answer to a frame (`None`: filling) is the reference's.
pub fn assert_same_answer(actual: Option<&[f32]>, expected: Option<&[f32]>, what: &str) {
    match (actual, expected) {
        (Some(a), Some(e)) => assert_scores_close(a, e, what),
        (None, None) => {}
        (a, e) => panic!(
            "{what}: engine predicted {}, the reference {}",
            a.is_some(),
            e.is_some()
        ),
    }
}
