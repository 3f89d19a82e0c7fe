//! One stream as its caller sees it: options at open, the handle that sends frames and
//! commands, the events that answer them in order, counters, and snapshots for resuming.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use costream_continual::TemporalFill;

use crate::error::{EngineError, SubmitError};
use crate::input::{FramePayload, PreparedFrame};
use crate::model::ModelInfo;
use crate::worker::{Command, Item};

/// How a stream starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpenOptions {
    /// The stream's id; `None` for a generated one.
    pub stream_id: Option<String>,
    /// How the first frames are padded: zeros (as the offline network) or the first frame
    /// repeated (CoX3D's evaluation).
    pub fill: TemporalFill,
    /// Keep every n-th submitted frame (the others are answered as skipped); 0 or 1 keeps
    /// all. Use the model's `frame_stride` for a camera at the training frame rate times n.
    pub sample_stride: usize,
    /// Continue from a snapshot instead of a fresh state.
    pub resume: Option<StreamSnapshot>,
}

/// The answer to one frame that produced an output.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// The frame's sequence number.
    pub seq: u64,
    /// One score per class (the model's output: softmax probabilities for X3D).
    pub scores: Vec<f32>,
    /// Time from acceptance to the start of its batch.
    pub queued: Duration,
    /// Time of the batch step, read-back included.
    pub compute: Duration,
    /// Streams stepped in the same batch.
    pub batch_size: usize,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client ended it.
    Client,
    /// It sent no frame for the model's idle timeout.
    Idle,
    /// The engine shut down.
    Shutdown,
    /// Its handle was dropped without ending it.
    Abandoned,
    /// The engine failed while serving it (told by [`StreamEvent::Failed`] just before).
    Fault,
}

/// Frame counts of a stream. Every accepted frame is eventually exactly one of predicted,
/// filling, skipped or dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCounts {
    /// Frames accepted.
    pub frames_in: u64,
    /// Frames answered with a prediction.
    pub predicted: u64,
    /// Frames consumed while the network filled (no prediction yet).
    pub filling: u64,
    /// Frames left out by the sampling stride.
    pub skipped: u64,
    /// Frames accepted but never stepped (the stream ended first).
    pub dropped: u64,
    /// Frames refused as malformed (not accepted).
    pub rejected: u64,
}

/// The final account of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSummary {
    /// Why it ended.
    pub reason: EndReason,
    /// Its frame counts.
    pub counts: StreamCounts,
}

/// What the engine tells a stream, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Every slot is taken: the stream waits at this place of the backlog (frames sent
    /// meanwhile are kept, up to the pending limit).
    Waiting {
        /// 1 for the next stream to get a slot.
        position: usize,
    },
    /// The stream has a slot; its frames are stepped from now on.
    Active,
    /// A frame's prediction.
    Prediction(Prediction),
    /// A frame was consumed while the network fills; no prediction yet.
    Filling {
        /// The frame's sequence number.
        seq: u64,
    },
    /// A frame was left out by the sampling stride.
    Skipped {
        /// The frame's sequence number.
        seq: u64,
    },
    /// The answer to a flush: the predictions of the offline network's end padding, in
    /// order; the stream then starts afresh.
    Flushed {
        /// One score vector per padded output frame.
        predictions: Vec<Vec<f32>>,
    },
    /// The answer to a reset: the stream starts afresh.
    Reset,
    /// The engine failed on this stream (a step, or moving its state); [`StreamEvent::Ended`]
    /// follows. Frames taken but not answered are counted dropped.
    Failed {
        /// What failed.
        message: String,
        /// The stream's last good state, to resume from, when it could be read.
        snapshot: Option<StreamSnapshot>,
    },
    /// The last event of a stream.
    Ended(StreamSummary),
}

impl StreamEvent {
    /// Whether this event answers one item the caller sent (so frees a pending place).
    fn answers_item(&self) -> bool {
        !matches!(
            self,
            StreamEvent::Waiting { .. } | StreamEvent::Active | StreamEvent::Failed { .. }
        )
    }
}

/// Counters shared by a stream's handle and the device thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) predicted: AtomicU64,
    pub(crate) filling: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn read(&self) -> StreamCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StreamCounts {
            frames_in: get(&self.frames_in),
            predicted: get(&self.predicted),
            filling: get(&self.filling),
            skipped: get(&self.skipped),
            dropped: get(&self.dropped),
            rejected: get(&self.rejected),
        }
    }
}

/// A stream's state at a frame boundary, to resume it later or on another engine serving
/// the same model.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSnapshot {
    /// The model it belongs to.
    pub model: String,
    /// The sequence number of the last frame consumed, if any.
    pub last_seq: Option<u64>,
    /// Frames submitted so far (fixes the sampling phase).
    pub source_frames: u64,
    /// The continual state (`costream_continual::State::snapshot` bytes).
    pub state: Vec<u8>,
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"COSNAP\0\0";
const SNAPSHOT_VERSION: u16 = 1;

impl StreamSnapshot {
    /// Serialises the snapshot: magic, version, model name, last sequence number, frame
    /// count, then the state bytes (little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.model.len() + self.state.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.model.len() as u32).to_le_bytes());
        out.extend_from_slice(self.model.as_bytes());
        out.push(u8::from(self.last_seq.is_some()));
        out.extend_from_slice(&self.last_seq.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.source_frames.to_le_bytes());
        out.extend_from_slice(&self.state);
        out
    }

    /// Parses [`StreamSnapshot::to_bytes`] output.
    ///
    /// # Errors
    /// [`EngineError::Snapshot`] for another format, version, or truncated bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<StreamSnapshot, EngineError> {
        let bad = |what: &str| EngineError::Snapshot(what.to_string());
        let mut rest = bytes
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or_else(|| bad("not a costream stream snapshot"))?;
        let mut take = |n: usize| -> Result<&[u8], EngineError> {
            if rest.len() < n {
                return Err(bad("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let version = u16::from_le_bytes([take(1)?[0], take(1)?[0]]);
        if version != SNAPSHOT_VERSION {
            return Err(EngineError::Snapshot(format!(
                "version {version}, this engine reads version {SNAPSHOT_VERSION}"
            )));
        }
        let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let name_len = u32::from_le_bytes(take(4)?.try_into().unwrap_or([0; 4])) as usize;
        let model = String::from_utf8(take(name_len)?.to_vec())
            .map_err(|_| bad("the model name is not UTF-8"))?;
        let has_seq = take(1)?[0] != 0;
        let seq = u64_of(take(8)?);
        let source_frames = u64_of(take(8)?);
        Ok(StreamSnapshot {
            model,
            last_seq: has_seq.then_some(seq),
            source_frames,
            state: rest.to_vec(),
        })
    }
}

/// The caller's end of a stream: send frames and commands, receive events in order. Sending
/// never blocks; decoding happens on the calling thread. Dropping the handle ends the stream.
#[derive(Debug)]
pub struct StreamHandle {
    pub(crate) id: String,
    pub(crate) key: u64,
    pub(crate) model_index: usize,
    pub(crate) info: Arc<ModelInfo>,
    pub(crate) commands: flume::Sender<Command>,
    pub(crate) events: flume::Receiver<StreamEvent>,
    pub(crate) pending: Arc<AtomicUsize>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) ended: AtomicBool,
}

impl StreamHandle {
    /// The stream's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The model it runs.
    pub fn model(&self) -> &ModelInfo {
        &self.info
    }

    /// Its frame counts so far.
    pub fn counts(&self) -> StreamCounts {
        self.counters.read()
    }

    /// Whether a frame submitted now would be accepted without back-pressure (fewer than the
    /// model's `max_pending_frames` frames queued or unanswered). Only the submitting side
    /// raises the count, so a `true` stays true until it submits.
    pub fn has_room(&self) -> bool {
        self.pending.load(Ordering::SeqCst) < self.info.slots.max_pending_frames
    }

    /// Validates and preprocesses a frame for this stream's model (the expensive part of
    /// [`StreamHandle::submit`], to run where it suits the caller).
    ///
    /// # Errors
    /// [`SubmitError::Frame`] naming what is wrong; the stream is unaffected.
    pub fn prepare(&self, seq: u64, payload: &FramePayload) -> Result<PreparedFrame, SubmitError> {
        match self.info.input.prepare(payload, self.info.max_image_pixels) {
            Ok(values) => Ok(PreparedFrame {
                seq,
                values,
                accepted: Instant::now(),
            }),
            Err(e) => {
                Counters::add(&self.counters.rejected, 1);
                Err(e.into())
            }
        }
    }

    /// Queues a prepared frame.
    ///
    /// # Errors
    /// [`SubmitError::Backpressure`] with too many frames pending, [`SubmitError::Ended`],
    /// [`SubmitError::Busy`] when the engine's queue is full.
    pub fn submit_prepared(&self, frame: PreparedFrame) -> Result<(), SubmitError> {
        // Counted before it is sent: the device thread may answer it, or end the stream and
        // read the counts for its summary, before `send` returns.
        Counters::add(&self.counters.frames_in, 1);
        self.send(Item::Frame(frame)).inspect_err(|_| {
            self.counters.frames_in.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Validates, preprocesses and queues one frame.
    ///
    /// # Errors
    /// As [`StreamHandle::prepare`] and [`StreamHandle::submit_prepared`].
    pub fn submit(&self, seq: u64, payload: &FramePayload) -> Result<(), SubmitError> {
        let frame = self.prepare(seq, payload)?;
        self.submit_prepared(frame)
    }

    /// Asks for the outputs of the end padding (answered by [`StreamEvent::Flushed`]); the
    /// stream then starts afresh.
    ///
    /// # Errors
    /// As [`StreamHandle::submit_prepared`].
    pub fn flush(&self) -> Result<(), SubmitError> {
        self.send(Item::Flush)
    }

    /// Forgets every frame seen (answered by [`StreamEvent::Reset`]).
    ///
    /// # Errors
    /// As [`StreamHandle::submit_prepared`].
    pub fn reset(&self) -> Result<(), SubmitError> {
        self.send(Item::Reset)
    }

    /// Ends the stream after its queued frames (answered by [`StreamEvent::Ended`]).
    ///
    /// # Errors
    /// [`SubmitError::Ended`] if it has ended already.
    pub fn end(&self) -> Result<(), SubmitError> {
        self.send(Item::End)?;
        self.ended.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// The stream's state after its queued frames, for [`OpenOptions::resume`].
    ///
    /// # Errors
    /// [`EngineError::Stopped`] if the stream or engine has ended.
    pub fn snapshot(&self) -> Result<StreamSnapshot, EngineError> {
        let (reply, answer) = flume::bounded(1);
        self.send_snapshot(reply)?;
        let result = answer.recv().map_err(|_| EngineError::Stopped)?;
        self.pending.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// [`StreamHandle::snapshot`] for async callers.
    ///
    /// # Errors
    /// As [`StreamHandle::snapshot`].
    pub async fn snapshot_async(&self) -> Result<StreamSnapshot, EngineError> {
        let (reply, answer) = flume::bounded(1);
        self.send_snapshot(reply)?;
        let result = answer
            .recv_async()
            .await
            .map_err(|_| EngineError::Stopped)?;
        self.pending.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn send_snapshot(
        &self,
        reply: flume::Sender<Result<StreamSnapshot, EngineError>>,
    ) -> Result<(), EngineError> {
        self.send(Item::Snapshot(reply)).map_err(|e| match e {
            SubmitError::Ended => EngineError::Stopped,
            other => EngineError::Snapshot(other.to_string()),
        })
    }

    /// The next event, waiting for it; `None` once the stream has ended and every event was
    /// read.
    pub fn recv(&self) -> Option<StreamEvent> {
        self.events.recv().ok().map(|e| self.received(e))
    }

    /// The next event if it arrives within `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<StreamEvent> {
        self.events
            .recv_timeout(timeout)
            .ok()
            .map(|e| self.received(e))
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Option<StreamEvent> {
        self.events.try_recv().ok().map(|e| self.received(e))
    }

    /// [`StreamHandle::recv`] for async callers.
    pub async fn recv_async(&self) -> Option<StreamEvent> {
        self.events
            .recv_async()
            .await
            .ok()
            .map(|e| self.received(e))
    }

    fn received(&self, event: StreamEvent) -> StreamEvent {
        if event.answers_item() {
            // Saturating: an idle or shutdown end answers nothing the caller sent.
            let _ = self
                .pending
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1));
        }
        if matches!(event, StreamEvent::Ended(_)) {
            self.ended.store(true, Ordering::SeqCst);
        }
        event
    }

    fn send(&self, item: Item) -> Result<(), SubmitError> {
        if self.ended.load(Ordering::SeqCst) {
            return Err(SubmitError::Ended);
        }
        let limit = self.info.slots.max_pending_frames;
        let pending = self.pending.fetch_add(1, Ordering::SeqCst);
        // Commands other than frames may use a few places beyond the frame limit, so that a
        // client with a full queue can still flush, reset or end.
        let allowed = if matches!(item, Item::Frame(_)) {
            limit
        } else {
            limit + 4
        };
        if pending >= allowed {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Backpressure { pending, limit });
        }
        let command = Command::Item {
            model: self.model_index,
            stream: self.key,
            item,
        };
        self.commands.try_send(command).map_err(|e| {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            match e {
                flume::TrySendError::Full(_) => SubmitError::Busy,
                flume::TrySendError::Disconnected(_) => SubmitError::Ended,
            }
        })
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if !self.ended.load(Ordering::SeqCst) {
            // Best effort: if the queue is full or the engine gone, idle reaping ends it.
            let _ = self.commands.try_send(Command::Abandon {
                model: self.model_index,
                stream: self.key,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let snap = StreamSnapshot {
            model: "cox3d-s".into(),
            last_seq: Some(41),
            source_frames: 42,
            state: vec![1, 2, 3],
        };
        let bytes = snap.to_bytes();
        assert_eq!(StreamSnapshot::from_bytes(&bytes).unwrap(), snap);
        let none = StreamSnapshot {
            last_seq: None,
            ..snap.clone()
        };
        assert_eq!(StreamSnapshot::from_bytes(&none.to_bytes()).unwrap(), none);
        assert!(StreamSnapshot::from_bytes(&bytes[..12])
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(StreamSnapshot::from_bytes(b"COSTATE\0....")
            .unwrap_err()
            .to_string()
            .contains("not a costream"));
        let mut future = bytes.clone();
        future[8] = 9;
        assert!(StreamSnapshot::from_bytes(&future)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
    }
}
