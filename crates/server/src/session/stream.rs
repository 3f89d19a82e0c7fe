//! The stream a connection runs: its engine handle, the queue of frames and commands not yet
//! handed to the engine, and the forwarder task that answers the client (and stores every
//! prediction) in frame order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use costream_engine::{
    PreparedFrame, StreamEvent, StreamHandle, StreamSnapshot, StreamSummary, SubmitError,
};
use costream_proto::v1::{self, server_message::Msg, ErrorCode};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::audio::AudioFront;
use super::intake::Intake;
use super::outbox::Outbox;
use super::voice::Voice;
use crate::config::QueuePolicy;
use crate::error::{submit_error, ProtocolError};
use crate::live::{Admission, Phase, ServerCounts};
use crate::metrics::ModelMetrics;
use crate::store::{now_ms, Store, StoredPrediction};
use crate::wire::{self, message, EffectiveOptions};

/// Something the client sent that the engine has not taken yet.
#[derive(Debug)]
pub(super) enum Queued {
    /// A decoded frame, its timestamp, and when its message arrived.
    Frame(PreparedFrame, i64, Instant),
    /// `flush`.
    Flush,
    /// `reset`.
    Reset,
    /// `end`.
    End,
}

/// How the engine ended a stream, as its forwarder saw it.
#[derive(Debug)]
pub(super) struct Ended {
    /// The engine's summary.
    pub(super) summary: StreamSummary,
    /// What failed, when the engine ended it on a failure.
    pub(super) failure: Option<Failure>,
}

/// An engine failure that ended a stream.
#[derive(Debug)]
pub(super) struct Failure {
    /// What failed.
    pub(super) message: String,
    /// The stream's last good state, to save for `resume`.
    pub(super) snapshot: Option<StreamSnapshot>,
}

/// Sequence numbers, timestamps and arrival times of the frames handed to the engine, in
/// order; the forwarder pops one per answered frame.
pub(super) type Timestamps = Arc<Mutex<VecDeque<(u64, i64, Instant)>>>;

/// The stream a connection runs.
#[derive(Debug)]
pub(super) struct OpenStream {
    /// The engine's handle.
    pub(super) handle: Arc<StreamHandle>,
    /// The options in effect.
    pub(super) options: EffectiveOptions,
    /// Sequence and rate checks.
    pub(super) intake: Intake,
    /// Counts the server adds to the engine's.
    pub(super) counts: Arc<ServerCounts>,
    /// When `max_stream_duration` ends it, if it is limited.
    pub(super) deadline: Option<Instant>,
    /// Whether `end` was sent (nothing more is accepted).
    pub(super) ending: bool,
    /// Signalled each time the engine answers an item (a place frees).
    pub(super) answered: Arc<Notify>,
    /// The model's metrics.
    pub(super) metrics: ModelMetrics,
    /// Voice activity (voice activity models), fed by the forwarder.
    pub(super) voice: Voice,
    /// Audio at another rate than the model's, resampled (audio models).
    pub(super) audio: AudioFront,
    queue: VecDeque<Queued>,
    timestamps: Timestamps,
    policy: QueuePolicy,
    max_queued: usize,
    /// Holds the stream's place among `max_streams` and its listing.
    _admission: Admission,
}

/// What [`OpenStream::new`] needs besides the handle.
#[derive(Debug)]
pub(super) struct StreamSetup {
    pub(super) options: EffectiveOptions,
    pub(super) voice: Voice,
    pub(super) audio: AudioFront,
    pub(super) intake: Intake,
    pub(super) counts: Arc<ServerCounts>,
    pub(super) deadline: Option<Instant>,
    pub(super) policy: QueuePolicy,
    pub(super) max_queued: usize,
    pub(super) admission: Admission,
    pub(super) metrics: ModelMetrics,
}

impl OpenStream {
    /// Lists the stream and starts its forwarder; returns the stream and the forwarder's
    /// task, which ends with the stream's summary.
    pub(super) fn start(
        handle: StreamHandle,
        setup: StreamSetup,
        store: Store,
        out: Outbox,
    ) -> (OpenStream, JoinHandle<Option<Ended>>) {
        let handle = Arc::new(handle);
        let mut admission = setup.admission;
        let phase = admission.list(&handle, now_ms(), setup.counts.clone());
        let timestamps = Timestamps::default();
        let answered = Arc::new(Notify::new());
        let forwarder = Forwarder {
            handle: handle.clone(),
            options: setup.options,
            store,
            out,
            timestamps: timestamps.clone(),
            answered: answered.clone(),
            phase,
            metrics: setup.metrics.clone(),
            voice: setup.voice.clone(),
        };
        let task = tokio::spawn(forwarder.run());
        let stream = OpenStream {
            handle,
            options: setup.options,
            intake: setup.intake,
            counts: setup.counts,
            deadline: setup.deadline,
            ending: false,
            answered,
            metrics: setup.metrics,
            voice: setup.voice,
            audio: setup.audio,
            queue: VecDeque::new(),
            timestamps,
            policy: setup.policy,
            max_queued: setup.max_queued,
            _admission: admission,
        };
        (stream, task)
    }

    /// The stream's id.
    pub(super) fn id(&self) -> &str {
        self.handle.id()
    }

    /// Whether the connection may read the next message: under `block`, not while a frame
    /// waits for a place.
    pub(super) fn can_read(&self) -> bool {
        self.policy == QueuePolicy::DropOldest || self.queue.is_empty()
    }

    /// Whether anything waits for the engine to take it.
    pub(super) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Queues a frame or command behind the ones already waiting and hands as many as fit
    /// to the engine; returns the errors to send (frames dropped or refused).
    pub(super) fn enqueue(&mut self, item: Queued) -> Vec<ProtocolError> {
        let mut errors = Vec::new();
        if matches!(item, Queued::Frame(..)) && self.policy == QueuePolicy::DropOldest {
            let frames = self
                .queue
                .iter()
                .filter(|q| matches!(q, Queued::Frame(..)))
                .count();
            if frames >= self.max_queued {
                if let Some(at) = self
                    .queue
                    .iter()
                    .position(|q| matches!(q, Queued::Frame(..)))
                {
                    if let Some(Queued::Frame(dropped, ..)) = self.queue.remove(at) {
                        ServerCounts::bump(&self.counts.dropped);
                        self.metrics.dropped();
                        errors.push(ProtocolError::frame(
                            ErrorCode::QueueFull,
                            dropped.seq,
                            format!(
                                "frame {} dropped: max_queued_frames = {} frames were waiting \
                                 (queue policy drop_oldest)",
                                dropped.seq, self.max_queued
                            ),
                        ));
                    }
                }
            }
        }
        self.queue.push_back(item);
        errors.extend(self.pump());
        errors
    }

    /// Hands waiting items to the engine, in order, while it has room.
    pub(super) fn pump(&mut self) -> Vec<ProtocolError> {
        let mut errors = Vec::new();
        while let Some(front) = self.queue.front() {
            let sent = match front {
                Queued::Frame(..) if !self.handle.has_room() => break,
                Queued::Frame(..) => {
                    let Some(Queued::Frame(frame, pts, received)) = self.queue.pop_front() else {
                        unreachable!("the front was a frame");
                    };
                    let seq = frame.seq;
                    self.timestamps().push_back((seq, pts, received));
                    let result = self.handle.submit_prepared(frame);
                    if let Err(e) = &result {
                        self.timestamps().pop_back();
                        self.metrics.rejected();
                        errors.push(submit_error(seq, e));
                    }
                    continue;
                }
                Queued::Flush => self.handle.flush(),
                Queued::Reset => self.handle.reset(),
                Queued::End => self.handle.end(),
            };
            match sent {
                Err(SubmitError::Backpressure { .. }) => break,
                Err(e) => {
                    errors.push(ProtocolError::new(
                        ErrorCode::UnexpectedMessage,
                        format!("the stream did not take the command: {e}"),
                    ));
                    self.queue.pop_front();
                }
                Ok(()) => {
                    self.queue.pop_front();
                }
            }
        }
        errors
    }

    fn timestamps(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, i64, Instant)>> {
        self.timestamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the stream as soon as what was handed to the engine is answered; items still
    /// waiting in the server are dropped (the client was told nothing about them).
    pub(super) fn end_now(&mut self) {
        self.queue.clear();
        if !self.ending {
            self.ending = true;
            let _ = self.handle.end();
        }
    }
}

/// Forwards a stream's events to its client in order, storing each prediction first.
struct Forwarder {
    handle: Arc<StreamHandle>,
    options: EffectiveOptions,
    store: Store,
    out: Outbox,
    timestamps: Timestamps,
    answered: Arc<Notify>,
    phase: Arc<AtomicU8>,
    metrics: ModelMetrics,
    voice: Voice,
}

impl Forwarder {
    /// Runs until the stream's `Ended` event; returns how it ended (`None` if the engine
    /// stopped without a summary).
    async fn run(self) -> Option<Ended> {
        let mut failure = None;
        while let Some(event) = self.handle.recv_async().await {
            // Sent right after the answer it names.
            let mut not_stored = None;
            tracing::trace!(stream = self.handle.id(), ?event, "engine event");
            let reply = match event {
                StreamEvent::Waiting { position } => Msg::Waiting(v1::Waiting {
                    position: u32::try_from(position).unwrap_or(u32::MAX),
                }),
                StreamEvent::Active => {
                    self.phase.store(Phase::Active as u8, Ordering::Relaxed);
                    Msg::Active(v1::Active {})
                }
                StreamEvent::Prediction(p) => {
                    let (pts, received) = self.arrival_of(p.seq);
                    self.metrics.predicted(p.queued, p.compute, p.batch_size);
                    self.metrics.answered(received.elapsed());
                    let top_k = wire::top_k(self.handle.model(), &p.scores, self.options.top_k);
                    let stored = StoredPrediction {
                        seq: p.seq,
                        pts,
                        top_k,
                        queue_us: wire::micros(p.queued),
                        compute_us: wire::micros(p.compute),
                        batch_size: u32::try_from(p.batch_size).unwrap_or(u32::MAX),
                        created_ms: now_ms(),
                    };
                    let voice = self.voice.push(&p.scores);
                    let prediction = Msg::Prediction(v1::Prediction {
                        seq: p.seq,
                        pts,
                        top_k: wire::labels(&stored.top_k),
                        scores: if self.options.all_scores {
                            p.scores
                        } else {
                            Vec::new()
                        },
                        queue_us: stored.queue_us,
                        compute_us: stored.compute_us,
                        batch_size: stored.batch_size,
                        voice,
                    });
                    // Stored before it is sent: a client never holds a prediction the store
                    // does not, unless told so right after it.
                    let seq = stored.seq;
                    if let Err(e) = self.store.prediction(self.handle.id(), stored).await {
                        tracing::error!(stream = self.handle.id(), seq, error = %e, "prediction not stored");
                        self.metrics.not_stored();
                        not_stored = Some(ProtocolError::frame(
                            ErrorCode::NotStored,
                            seq,
                            format!("the prediction for frame {seq} was not stored: {e}"),
                        ));
                    }
                    prediction
                }
                StreamEvent::Filling { seq } => {
                    let (pts, received) = self.arrival_of(seq);
                    self.metrics.filling();
                    self.metrics.answered(received.elapsed());
                    Msg::Filling(v1::Filling { seq, pts })
                }
                StreamEvent::Skipped { seq } => {
                    let (pts, received) = self.arrival_of(seq);
                    self.metrics.skipped();
                    self.metrics.answered(received.elapsed());
                    Msg::Skipped(v1::Skipped { seq, pts })
                }
                StreamEvent::Flushed { predictions } => {
                    self.voice.reset();
                    Msg::Flushed(v1::Flushed {
                        predictions: predictions
                            .into_iter()
                            .map(|scores| v1::FlushedPrediction {
                                top_k: wire::labels(&wire::top_k(
                                    self.handle.model(),
                                    &scores,
                                    self.options.top_k,
                                )),
                                scores: if self.options.all_scores {
                                    scores
                                } else {
                                    Vec::new()
                                },
                            })
                            .collect(),
                    })
                }
                StreamEvent::Reset => {
                    self.voice.reset();
                    Msg::Reset(v1::ResetDone {})
                }
                StreamEvent::Failed { message, snapshot } => {
                    failure = Some(Failure { message, snapshot });
                    continue;
                }
                StreamEvent::Ended(summary) => {
                    self.answered.notify_one();
                    return Some(Ended { summary, failure });
                }
            };
            self.answered.notify_one();
            // A client that went away still gets its predictions stored.
            let _ = self.out.send(&message(reply)).await;
            if let Some(error) = not_stored {
                let _ = self.out.send(&error.to_message()).await;
            }
        }
        None
    }

    /// The timestamp and arrival time of answered frame `seq` (frames are answered in the
    /// order handed over).
    fn arrival_of(&self, seq: u64) -> (i64, Instant) {
        let mut timestamps = self
            .timestamps
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some((front, pts, received)) = timestamps.pop_front() {
            if front == seq {
                return (pts, received);
            }
            tracing::error!(
                expected = front,
                answered = seq,
                "frames answered out of order; this is a bug"
            );
        }
        (0, Instant::now())
    }
}
