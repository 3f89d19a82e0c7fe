//! A closed-loop load generator: N concurrent streams, each sending its next frame as soon as
//! the previous one is answered (a client that keeps one frame in flight), for measuring
//! frames per second and per-frame latency of an engine.

use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{OpenError, SubmitError};
use crate::input::FramePayload;
use crate::stream::{OpenOptions, StreamEvent, StreamHandle};

/// What one load run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Concurrent streams.
    pub streams: usize,
    /// Frames answered in the measured part (after each stream's fill).
    pub frames: usize,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Frames answered per second, over all streams.
    pub frames_per_second: f64,
    /// Median time from submitting a frame to receiving its prediction.
    pub latency_p50: Duration,
    /// 99th percentile of that time.
    pub latency_p99: Duration,
    /// Mean number of streams per batch step.
    pub mean_batch: f64,
    /// Device memory of one stream's state.
    pub state_bytes_per_stream: usize,
}

/// Why a load run failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A stream could not be opened (e.g. more streams than the model's capacity).
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A frame was refused.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// A stream ended or answered out of order.
    #[error("stream {stream}: {message}")]
    Stream {
        /// The stream's index.
        stream: usize,
        /// What happened.
        message: String,
    },
}

/// Open streams driven in lock-step rounds: in a round every stream submits one frame and
/// waits for its answer (each stream on its own thread).
#[derive(Debug)]
pub struct Load {
    streams: Vec<StreamHandle>,
    payloads: Vec<FramePayload>,
    next_seq: u64,
    state_bytes_per_stream: usize,
}

/// What some rounds measured.
#[derive(Debug, Clone, Default)]
pub struct Rounds {
    /// Submit-to-answer time of every frame.
    pub latencies: Vec<Duration>,
    /// Sum over frames of the size of the batch that stepped it.
    pub batch_sizes: usize,
    /// Wall time from the first submit to the last answer.
    pub elapsed: Duration,
}

impl Load {
    /// Opens `streams` streams of `model`, each with its own deterministic frame.
    ///
    /// # Errors
    /// [`LoadError::Open`] for an unknown model or too many streams.
    pub fn open(engine: &Engine, model: &str, streams: usize) -> Result<Load, LoadError> {
        let info = engine.model(model).ok_or_else(|| OpenError::UnknownModel {
            model: model.to_string(),
            served: engine.models().map(|m| m.name.clone()).collect(),
        })?;
        let shape = info.input.frame_shape();
        let values = shape.iter().product::<usize>();
        let payloads = (0..streams)
            .map(|index| FramePayload::Tensor {
                shape: shape.to_vec(),
                data: pattern(index, values),
            })
            .collect();
        let state_bytes_per_stream = info.state_bytes_per_stream;
        let streams = (0..streams)
            .map(|_| engine.open(model, OpenOptions::default()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Load {
            streams,
            payloads,
            next_seq: 0,
            state_bytes_per_stream,
        })
    }

    /// Runs `count` rounds.
    ///
    /// # Errors
    /// [`LoadError`] if a frame is refused or a stream ends.
    pub fn rounds(&mut self, count: usize) -> Result<Rounds, LoadError> {
        let first = self.next_seq;
        self.next_seq += count as u64;
        let start = Instant::now();
        let runs: Vec<Result<Rounds, LoadError>> = std::thread::scope(|scope| {
            let threads: Vec<_> = self
                .streams
                .iter()
                .zip(&self.payloads)
                .enumerate()
                .map(|(index, (stream, payload))| {
                    scope.spawn(move || {
                        let mut run = Rounds::default();
                        for seq in first..first + count as u64 {
                            let sent = Instant::now();
                            stream.submit(seq, payload)?;
                            let batch =
                                answer_of(stream, seq).map_err(|message| LoadError::Stream {
                                    stream: index,
                                    message,
                                })?;
                            run.latencies.push(sent.elapsed());
                            run.batch_sizes += batch;
                        }
                        Ok(run)
                    })
                })
                .collect();
            threads
                .into_iter()
                .enumerate()
                .map(|(stream, t)| {
                    t.join().unwrap_or_else(|_| {
                        Err(LoadError::Stream {
                            stream,
                            message: "its thread panicked".into(),
                        })
                    })
                })
                .collect()
        });
        let mut total = Rounds {
            elapsed: start.elapsed(),
            ..Rounds::default()
        };
        for run in runs {
            let run = run?;
            total.latencies.extend(run.latencies);
            total.batch_sizes += run.batch_sizes;
        }
        Ok(total)
    }
}

/// Runs `streams` concurrent streams of `model` for `warmup` unmeasured rounds (the fill),
/// then `frames` measured rounds.
///
/// # Errors
/// [`LoadError`] if a stream cannot be opened or a frame is refused.
pub fn run_load(
    engine: &Engine,
    model: &str,
    streams: usize,
    warmup: usize,
    frames: usize,
) -> Result<LoadReport, LoadError> {
    let mut load = Load::open(engine, model, streams)?;
    load.rounds(warmup)?;
    let mut measured = load.rounds(frames)?;
    measured.latencies.sort();
    let answered = measured.latencies.len();
    let percentile = |p: f64| {
        let rank = ((answered as f64 * p).ceil() as usize).clamp(1, answered.max(1));
        measured
            .latencies
            .get(rank - 1)
            .copied()
            .unwrap_or_default()
    };
    Ok(LoadReport {
        streams,
        frames: answered,
        elapsed: measured.elapsed,
        frames_per_second: answered as f64 / measured.elapsed.as_secs_f64().max(1e-9),
        latency_p50: percentile(0.50),
        latency_p99: percentile(0.99),
        mean_batch: measured.batch_sizes as f64 / answered.max(1) as f64,
        state_bytes_per_stream: load.state_bytes_per_stream,
    })
}

/// Waits for the answer to frame `seq`; the size of its batch (1 for a filling frame).
fn answer_of(stream: &StreamHandle, seq: u64) -> Result<usize, String> {
    loop {
        match stream.recv() {
            Some(StreamEvent::Prediction(p)) if p.seq == seq => return Ok(p.batch_size),
            Some(StreamEvent::Filling { seq: s }) if s == seq => return Ok(1),
            Some(StreamEvent::Active | StreamEvent::Waiting { .. }) => {}
            Some(other) => return Err(format!("unexpected event {other:?} for frame {seq}")),
            None => return Err("the stream ended".into()),
        }
    }
}

/// Deterministic frame values in [-1, 1) for stream `index`.
fn pattern(index: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + index * 104_729) % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}
