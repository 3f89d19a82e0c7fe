//! The device thread: owns the models of one device and every stream's state, receives
//! commands over a bounded channel, and steps ready frames in batches.
//!
//! Each loop turn takes the commands that have arrived, answers the commands at the head of
//! every stream's queue (flush, reset, snapshot, end, frames the sampling stride skips), then
//! for each model decides whether to step: as soon as every active stream (or `max_batch`)
//! has a frame ready, or when the oldest ready frame has waited `max_wait`. A step takes at
//! most one frame per stream; streams are grouped by timing phase (rows of one batch must be
//! in phase) and stepped `max_batch` at a time. Outputs go back to each stream in frame order.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::prelude::*;
use costream_continual::{State, TemporalFill};

use crate::batch::{BatchState, RowsFault};
use crate::clock::Clock;
use crate::engine::panic_message;
use crate::error::{EngineError, OpenError};
use crate::fault::{FaultPoint, Faults};
use crate::input::PreparedFrame;
use crate::model::LoadedModel;
use crate::slots::{Admission, Slots};
use crate::stream::{
    Counters, EndReason, OpenOptions, Prediction, StreamEvent, StreamSnapshot, StreamSummary,
};

/// How often the thread wakes without commands, to reap idle streams.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Commands taken per loop turn at most, so that a flood cannot starve stepping.
const COMMANDS_PER_TURN: usize = 4096;
/// Events a stream's channel holds beyond its pending limit (waiting, active, ended, and the
/// answers to the commands allowed beyond the frame limit).
const EXTRA_EVENTS: usize = 8;

/// A request to the device thread.
pub(crate) enum Command {
    /// Open a stream of model `model`.
    Open {
        model: usize,
        options: OpenOptions,
        reply: flume::Sender<Result<Opened, OpenError>>,
    },
    /// Queue an item on a stream.
    Item {
        model: usize,
        stream: u64,
        item: Item,
    },
    /// The stream's handle was dropped without ending it.
    Abandon { model: usize, stream: u64 },
    /// Reap idle streams now; answers the ids ended.
    Maintain { reply: flume::Sender<Vec<String>> },
    /// End every stream and stop.
    Shutdown,
}

/// What a stream queues, answered in order.
pub(crate) enum Item {
    Frame(PreparedFrame),
    Flush,
    Reset,
    Snapshot(flume::Sender<Result<StreamSnapshot, EngineError>>),
    End,
}

/// The device side's answer to an open: what the handle needs.
pub(crate) struct Opened {
    pub(crate) key: u64,
    pub(crate) id: String,
    pub(crate) events: flume::Receiver<StreamEvent>,
    pub(crate) pending: Arc<AtomicUsize>,
    pub(crate) counters: Arc<Counters>,
}

/// Stream ids open anywhere in the engine (ids are unique across devices).
pub(crate) type OpenIds = Arc<Mutex<HashSet<String>>>;

/// The device thread's models and streams.
pub(crate) struct Worker<B: Backend> {
    device: B::Device,
    models: Vec<ModelRuntime<B>>,
    clock: Arc<dyn Clock>,
    ids: OpenIds,
    faults: Arc<Faults>,
    next_key: u64,
}

/// One model with its slots, batched state and streams.
struct ModelRuntime<B: Backend> {
    model: LoadedModel<B>,
    slots: Slots<u64>,
    batch: BatchState<B>,
    streams: HashMap<u64, StreamEntry<B>>,
}

/// A stream on the device thread.
struct StreamEntry<B: Backend> {
    id: String,
    queue: VecDeque<Item>,
    events: flume::Sender<StreamEvent>,
    counters: Arc<Counters>,
    fill: TemporalFill,
    sample_stride: u64,
    /// Frames taken from the queue (stepped or skipped) since the last reset.
    source_frames: u64,
    last_seq: Option<u64>,
    last_activity: Duration,
    /// The state of a waiting stream that resumed from a snapshot.
    parked: Option<State<B>>,
}

impl<B: Backend> Worker<B> {
    /// A worker for loaded (and warmed-up) models.
    pub(crate) fn new(
        device: B::Device,
        models: Vec<LoadedModel<B>>,
        clock: Arc<dyn Clock>,
        ids: OpenIds,
        faults: Arc<Faults>,
    ) -> Self {
        let models = models
            .into_iter()
            .map(|model| ModelRuntime {
                slots: Slots::new(model.info.slots.capacity, model.info.slots.backlog),
                batch: BatchState::new(),
                streams: HashMap::new(),
                model,
            })
            .collect();
        Worker {
            device,
            models,
            clock,
            ids,
            faults,
            next_key: 0,
        }
    }

    /// Serves commands until shutdown or until every sender is gone; then ends every stream.
    pub(crate) fn run(mut self, commands: flume::Receiver<Command>) {
        'serve: loop {
            let wait = self.next_wakeup();
            match commands.recv_timeout(wait) {
                Ok(command) => {
                    if !self.handle(command) {
                        break 'serve;
                    }
                    for command in commands.try_iter().take(COMMANDS_PER_TURN) {
                        if !self.handle(command) {
                            break 'serve;
                        }
                    }
                }
                Err(flume::RecvTimeoutError::Timeout) => {}
                Err(flume::RecvTimeoutError::Disconnected) => break 'serve,
            }
            for m in 0..self.models.len() {
                self.answer_commands(m);
                if self.due(m) == Some(Duration::ZERO) {
                    self.step_ready(m);
                }
            }
            self.reap_idle();
        }
        for m in 0..self.models.len() {
            let keys: Vec<u64> = self.models[m].streams.keys().copied().collect();
            for key in keys {
                self.remove_stream(m, key, EndReason::Shutdown);
            }
        }
    }

    /// Handles one command; `false` to stop.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Open {
                model,
                options,
                reply,
            } => {
                // An opener that stopped waiting (a cancelled async open) gets no handle: its
                // stream must not hold a slot until it idles out.
                if let Err(flume::SendError(Ok(opened))) = reply.send(self.open(model, options)) {
                    self.remove_stream(model, opened.key, EndReason::Abandoned);
                }
            }
            Command::Item {
                model,
                stream,
                item,
            } => {
                let now = self.clock.now();
                match self.models[model].streams.get_mut(&stream) {
                    Some(entry) => {
                        entry.last_activity = now;
                        entry.queue.push_back(item);
                    }
                    None => refuse(item),
                }
            }
            Command::Abandon { model, stream } => {
                self.remove_stream(model, stream, EndReason::Abandoned);
            }
            Command::Maintain { reply } => {
                let _ = reply.send(self.reap_idle());
            }
            Command::Shutdown => return false,
        }
        true
    }

    fn open(&mut self, m: usize, options: OpenOptions) -> Result<Opened, OpenError> {
        let rt = &mut self.models[m];
        let info = &rt.model.info;
        let id = match options.stream_id {
            Some(id) => validate_id(id)?,
            None => generate_id(self.next_key),
        };
        let parked = match &options.resume {
            Some(snapshot) if snapshot.model != info.name => {
                return Err(EngineError::Snapshot(format!(
                    "it belongs to model `{}`, not `{}`",
                    snapshot.model, info.name
                ))
                .into())
            }
            Some(snapshot) => {
                let mut state = rt.model.init_state(1, options.fill, &self.device);
                state
                    .restore(&snapshot.state)
                    .map_err(|e| OpenError::Snapshot(e.into()))?;
                Some(state)
            }
            None => None,
        };
        if !lock(&self.ids).insert(id.clone()) {
            return Err(OpenError::DuplicateId(id));
        }
        let key = self.next_key;
        let Some(admission) = rt.slots.admit(key) else {
            lock(&self.ids).remove(&id);
            return Err(OpenError::Full {
                model: info.name.clone(),
                capacity: info.slots.capacity,
                backlog: info.slots.backlog,
            });
        };
        self.next_key += 1;
        let (events, receiver) = flume::bounded(info.slots.max_pending_frames + EXTRA_EVENTS);
        let counters = Arc::new(Counters::default());
        let resume = options.resume.as_ref();
        rt.streams.insert(
            key,
            StreamEntry {
                id: id.clone(),
                queue: VecDeque::new(),
                events,
                counters: counters.clone(),
                fill: options.fill,
                sample_stride: options.sample_stride.max(1) as u64,
                source_frames: resume.map_or(0, |s| s.source_frames),
                last_seq: resume.and_then(|s| s.last_seq),
                last_activity: self.clock.now(),
                parked,
            },
        );
        match admission {
            Admission::Active { .. } => self.activate(m, key),
            Admission::Waiting { position } => {
                self.emit(m, key, StreamEvent::Waiting { position });
            }
        }
        Ok(Opened {
            key,
            id,
            events: receiver,
            pending: Arc::new(AtomicUsize::new(0)),
            counters,
        })
    }

    /// Gives a stream that just got a slot its state as the batch's last row.
    fn activate(&mut self, m: usize, key: u64) {
        let rt = &mut self.models[m];
        let Some(entry) = rt.streams.get_mut(&key) else {
            return;
        };
        let state = entry
            .parked
            .take()
            .unwrap_or_else(|| rt.model.init_state(1, entry.fill, &self.device));
        let pushed = if self.faults.fires(FaultPoint::Push) {
            Err("injected fault: appending the state fails".to_string())
        } else {
            rt.batch.push(state.clone()).map_err(|e| e.to_string())
        };
        match pushed {
            Ok(()) => self.emit(m, key, StreamEvent::Active),
            // The stream has a slot but no row: it ends without touching the batch.
            Err(e) => {
                let snapshot = self.snapshot_of(m, key, &state);
                let message = format!("the stream's state could not join its batch: {e}");
                self.fail_stream(m, key, message, snapshot, false);
            }
        }
    }

    /// Answers the commands at the head of every stream's queue, up to its next frame to
    /// step.
    fn answer_commands(&mut self, m: usize) {
        let keys: Vec<u64> = self.models[m].streams.keys().copied().collect();
        for key in keys {
            while self.answer_head(m, key) {}
        }
    }

    /// Answers the head of a stream's queue if it is not a frame to step; `true` if it did.
    fn answer_head(&mut self, m: usize, key: u64) -> bool {
        let rt = &mut self.models[m];
        let Some(entry) = rt.streams.get_mut(&key) else {
            return false;
        };
        let item = match entry.queue.front() {
            None => return false,
            Some(Item::Frame(_)) if entry.source_frames % entry.sample_stride == 0 => return false,
            Some(_) => entry.queue.pop_front(),
        };
        let row = rt.slots.row_of(&key);
        match item {
            Some(Item::Frame(frame)) => {
                entry.source_frames += 1;
                Counters::add(&entry.counters.skipped, 1);
                self.emit(m, key, StreamEvent::Skipped { seq: frame.seq });
            }
            Some(Item::Flush) => {
                // The stream's own state: its row, or the snapshot it waits with.
                let state = match row {
                    Some(row) => rt.batch.take(row).ok(),
                    None => entry.parked.take(),
                };
                let predictions = state
                    .and_then(|mut state| rt.model.flush(&mut state).pop())
                    .unwrap_or_default();
                self.restart(m, key);
                self.emit(m, key, StreamEvent::Flushed { predictions });
            }
            Some(Item::Reset) => {
                self.restart(m, key);
                self.emit(m, key, StreamEvent::Reset);
            }
            Some(Item::Snapshot(reply)) => {
                let _ = reply.send(self.snapshot(m, key));
            }
            Some(Item::End) => {
                self.remove_stream(m, key, EndReason::Client);
                return false;
            }
            None => return false,
        }
        true
    }

    /// Starts a stream afresh: a new state in its row (or none parked), sampling from its
    /// next frame.
    fn restart(&mut self, m: usize, key: u64) {
        let rt = &mut self.models[m];
        let Some(entry) = rt.streams.get_mut(&key) else {
            return;
        };
        entry.source_frames = 0;
        entry.last_seq = None;
        entry.parked = None;
        if let Some(row) = rt.slots.row_of(&key) {
            let fresh = rt.model.init_state(1, entry.fill, &self.device);
            if let Err(e) = rt.batch.replace(row, fresh) {
                tracing::error!(stream = %entry.id, error = %e, "cannot reset the stream's row");
            }
        }
    }

    fn snapshot(&self, m: usize, key: u64) -> Result<StreamSnapshot, EngineError> {
        let rt = &self.models[m];
        let entry = rt.streams.get(&key).ok_or(EngineError::Stopped)?;
        let taken;
        let state = match (rt.slots.row_of(&key), &entry.parked) {
            (Some(row), _) => {
                taken = rt.batch.take(row)?;
                &taken
            }
            (None, Some(parked)) => parked,
            (None, None) => {
                taken = rt.model.init_state(1, entry.fill, &self.device);
                &taken
            }
        };
        self.snapshot_of(m, key, state).ok_or(EngineError::Stopped)
    }

    /// Rows of model `m` whose stream has a frame to step at the head of its queue, with
    /// when the oldest of those frames was accepted.
    fn ready_rows(&self, m: usize) -> (Vec<usize>, Option<Instant>) {
        let rt = &self.models[m];
        let mut oldest: Option<Instant> = None;
        let rows = rt
            .slots
            .active()
            .iter()
            .enumerate()
            .filter_map(|(row, key)| match rt.streams.get(key)?.queue.front()? {
                Item::Frame(frame) => {
                    oldest = Some(oldest.map_or(frame.accepted, |o| o.min(frame.accepted)));
                    Some(row)
                }
                _ => None,
            })
            .collect();
        (rows, oldest)
    }

    /// How long until model `m` should step: `None` with nothing ready, zero when its batch
    /// is complete or its oldest ready frame has waited `max_wait`.
    fn due(&self, m: usize) -> Option<Duration> {
        let (rows, oldest) = self.ready_rows(m);
        let policy = self.models[m].model.info.batch;
        let complete = policy.max_batch.min(self.models[m].slots.active().len());
        let waited = oldest?.elapsed();
        if rows.len() >= complete || waited >= policy.max_wait {
            Some(Duration::ZERO)
        } else {
            Some(policy.max_wait - waited)
        }
    }

    /// How long the loop may sleep: until the next model is due, else the idle poll.
    fn next_wakeup(&self) -> Duration {
        (0..self.models.len())
            .filter_map(|m| self.due(m))
            .min()
            .unwrap_or(IDLE_POLL)
            .min(IDLE_POLL)
    }

    /// Steps one frame of every ready stream of model `m`: grouped by phase, `max_batch`
    /// streams at a time. Streams are named by key: answering one batch can end a stream
    /// (its handle gone), which moves the rows after it.
    fn step_ready(&mut self, m: usize) {
        let (rows, _) = self.ready_rows(m);
        let rt = &self.models[m];
        let mut groups: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for row in rows {
            let phase = rt.model.info.timing.phase_key(rt.batch.steps(row));
            groups
                .entry(phase)
                .or_default()
                .push(rt.slots.active()[row]);
        }
        let max_batch = rt.model.info.batch.max_batch;
        for keys in groups.values() {
            for chunk in keys.chunks(max_batch) {
                self.step_streams(m, chunk);
            }
        }
    }

    /// Steps the head frame of the streams `keys` (those still active) as one batch and
    /// answers each.
    fn step_streams(&mut self, m: usize, keys: &[u64]) {
        let rt = &mut self.models[m];
        let mut rows = Vec::with_capacity(keys.len());
        let mut frames = Vec::with_capacity(keys.len());
        let mut stepped = Vec::with_capacity(keys.len());
        for &key in keys {
            let (Some(row), Some(entry)) = (rt.slots.row_of(&key), rt.streams.get_mut(&key)) else {
                continue;
            };
            if let Some(Item::Frame(_)) = entry.queue.front() {
                if let Some(Item::Frame(frame)) = entry.queue.pop_front() {
                    rows.push(row);
                    frames.push(frame);
                    stepped.push(key);
                }
            }
        }
        if rows.is_empty() {
            return;
        }
        let [c, h, w] = rt.model.info.input.frame_shape();
        let values: Vec<f32> = frames
            .iter()
            .flat_map(|f| f.values.iter().copied())
            .collect();
        let input = Tensor::<B, 4>::from_data(
            TensorData::new(values, [frames.len(), c, h, w]),
            &self.device,
        );
        let start = Instant::now();
        let model = &rt.model;
        let fail_step = self.faults.fires(FaultPoint::Step);
        // A backend reports a device failure by panicking: it ends this batch's streams, not
        // the device thread.
        let stepped_rows = rt.batch.with_rows(&rows, &self.faults, |state| {
            catch_unwind(AssertUnwindSafe(|| {
                assert!(!fail_step, "injected fault: the step panics");
                model.step(input, state)
            }))
            .map_err(|panic| format!("the step failed: {}", panic_message(&panic)))
        });
        let outputs = match stepped_rows {
            Ok(outputs) => outputs,
            Err(fault) => {
                self.fail_batch(m, &stepped, fault);
                return;
            }
        };
        let compute = start.elapsed();
        let mut outputs = outputs.map(Vec::into_iter);
        let mut answers = Vec::with_capacity(stepped.len());
        for (key, frame) in stepped.into_iter().zip(frames) {
            let Some(entry) = rt.streams.get_mut(&key) else {
                continue;
            };
            entry.source_frames += 1;
            entry.last_seq = Some(frame.seq);
            let event = match outputs.as_mut().and_then(Iterator::next) {
                Some(scores) => {
                    Counters::add(&entry.counters.predicted, 1);
                    StreamEvent::Prediction(Prediction {
                        seq: frame.seq,
                        scores,
                        queued: start.saturating_duration_since(frame.accepted),
                        compute,
                        batch_size: rows.len(),
                    })
                }
                None => {
                    Counters::add(&entry.counters.filling, 1);
                    StreamEvent::Filling { seq: frame.seq }
                }
            };
            answers.push((key, event));
        }
        for (key, event) in answers {
            self.emit(m, key, event);
        }
    }

    /// Ends the streams idle longer than their model's timeout (with nothing queued); returns
    /// their ids.
    fn reap_idle(&mut self) -> Vec<String> {
        let now = self.clock.now();
        let mut reaped = vec![];
        for m in 0..self.models.len() {
            let timeout = self.models[m].model.info.slots.idle_timeout;
            let idle: Vec<u64> = self.models[m]
                .streams
                .iter()
                .filter(|(_, e)| {
                    e.queue.is_empty() && now.saturating_sub(e.last_activity) > timeout
                })
                .map(|(&key, _)| key)
                .collect();
            for key in idle {
                if let Some(id) = self.remove_stream(m, key, EndReason::Idle) {
                    reaped.push(id);
                }
            }
        }
        reaped
    }

    /// Removes a stream: frees its row (promoting the first waiting stream), counts its
    /// queued frames as dropped, and sends its summary. Returns its id.
    fn remove_stream(&mut self, m: usize, key: u64, reason: EndReason) -> Option<String> {
        self.end_stream(m, key, reason, true)
    }

    /// [`Worker::remove_stream`]; `in_batch` says whether its slot's row is in the batch (not
    /// for a stream whose state failed to join it). A row that cannot be removed is cut out
    /// by copying the others one by one; if even that fails, every other active stream of
    /// the model fails too (the batch no longer matches the slots).
    fn end_stream(
        &mut self,
        m: usize,
        key: u64,
        reason: EndReason,
        in_batch: bool,
    ) -> Option<String> {
        let rt = &mut self.models[m];
        let entry = rt.streams.remove(&key)?;
        let removal = rt.slots.remove(&key);
        let mut broken = None;
        if let Some(row) = removal.as_ref().and_then(|r| r.row).filter(|_| in_batch) {
            if let Err(e) = rt.batch.remove(row, &self.faults) {
                tracing::error!(model = %rt.model.info.name, stream = %entry.id, error = %e,
                    "removing the stream's row failed; copying the other rows one by one");
                if let Err(e) = rt.batch.rebuild_without(row) {
                    broken = Some((row, e));
                }
            }
        }
        let mut dropped = 0;
        for item in entry.queue {
            match item {
                Item::Frame(_) => dropped += 1,
                other => refuse(other),
            }
        }
        Counters::add(&entry.counters.dropped, dropped);
        lock(&self.ids).remove(&entry.id);
        let summary = StreamSummary {
            reason,
            counts: entry.counters.read(),
        };
        let _ = entry.events.try_send(StreamEvent::Ended(summary));
        let promoted = removal.and_then(|r| r.promoted);
        if let Some((row, e)) = broken {
            let message = format!("the model's batch could not be rearranged: {e}");
            self.fail_active_streams(m, row, &message, promoted);
        }
        if let Some(next) = promoted {
            self.activate(m, next);
        }
        Some(entry.id)
    }

    /// Ends the streams of a batch whose step failed: each frame taken is counted dropped;
    /// each stream's state before the step is kept for resume when the batch's rows are
    /// intact (the failure happened on a gathered copy). A failure in place concerns every
    /// active stream of the model (`keys`).
    fn fail_batch(&mut self, m: usize, keys: &[u64], fault: RowsFault) {
        tracing::error!(model = %self.models[m].model.info.name, streams = keys.len(),
            intact = fault.intact, error = %fault.message, "a batch failed");
        // A step that failed in place stepped every active row: the whole state is suspect
        // (a backend may have stopped half-way), so it is dropped rather than rearranged.
        if !fault.intact {
            self.models[m].batch.clear();
        }
        for &key in keys {
            let rt = &self.models[m];
            let Some(entry) = rt.streams.get(&key) else {
                continue;
            };
            Counters::add(&entry.counters.dropped, 1);
            let snapshot = if fault.intact {
                self.snapshot(m, key).ok()
            } else {
                None
            };
            self.fail_stream(m, key, fault.message.clone(), snapshot, fault.intact);
        }
    }

    /// Ends every active stream of model `m` but `spare` after its batch stopped matching its
    /// slots (`removed_row` is still in the batch): each keeps the state its row holds when
    /// it can be read; the batch starts empty.
    fn fail_active_streams(
        &mut self,
        m: usize,
        removed_row: usize,
        message: &str,
        spare: Option<u64>,
    ) {
        let active: Vec<u64> = self.models[m]
            .slots
            .active()
            .iter()
            .copied()
            .filter(|&key| Some(key) != spare)
            .collect();
        let mut snapshots = Vec::with_capacity(active.len());
        for &key in &active {
            let rt = &self.models[m];
            let state = rt
                .slots
                .row_of(&key)
                .map(|row| if row >= removed_row { row + 1 } else { row })
                .and_then(|row| rt.batch.take(row).ok());
            snapshots.push(state.and_then(|state| self.snapshot_of(m, key, &state)));
        }
        self.models[m].batch.clear();
        for (key, snapshot) in active.into_iter().zip(snapshots) {
            self.fail_stream(m, key, message.to_string(), snapshot, false);
        }
    }

    /// Tells a stream the engine failed on it and ends it (reason [`EndReason::Fault`]).
    fn fail_stream(
        &mut self,
        m: usize,
        key: u64,
        message: String,
        snapshot: Option<StreamSnapshot>,
        in_batch: bool,
    ) {
        // Sent directly: a handle already gone must not end the stream as abandoned, which
        // would remove a row it may not have.
        if let Some(entry) = self.models[m].streams.get(&key) {
            tracing::error!(stream = %entry.id, error = %message, resumable = snapshot.is_some(),
                "the stream ends on an engine failure");
            let _ = entry
                .events
                .try_send(StreamEvent::Failed { message, snapshot });
        }
        self.end_stream(m, key, EndReason::Fault, in_batch);
    }

    /// A snapshot of a stream with `state` as its state.
    fn snapshot_of(&self, m: usize, key: u64, state: &State<B>) -> Option<StreamSnapshot> {
        let rt = &self.models[m];
        let entry = rt.streams.get(&key)?;
        Some(StreamSnapshot {
            model: rt.model.info.name.clone(),
            last_seq: entry.last_seq,
            source_frames: entry.source_frames,
            state: state.snapshot(),
        })
    }

    /// Sends an event to a stream; a stream whose handle is gone is ended.
    fn emit(&mut self, m: usize, key: u64, event: StreamEvent) {
        let Some(entry) = self.models[m].streams.get(&key) else {
            return;
        };
        match entry.events.try_send(event) {
            Ok(()) => {}
            Err(flume::TrySendError::Disconnected(_)) => {
                self.remove_stream(m, key, EndReason::Abandoned);
            }
            Err(flume::TrySendError::Full(_)) => {
                // The pending limit keeps the channel from filling; reaching this is a bug.
                tracing::error!(stream = %entry.id, "event channel full; event dropped");
            }
        }
    }
}

/// Answers an item of a stream that no longer exists.
fn refuse(item: Item) {
    if let Item::Snapshot(reply) = item {
        let _ = reply.send(Err(EngineError::Stopped));
    }
}

fn lock(ids: &OpenIds) -> std::sync::MutexGuard<'_, HashSet<String>> {
    ids.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A client-chosen id: 1 to 128 characters from `A-Z a-z 0-9 . _ : -`.
fn validate_id(id: String) -> Result<String, OpenError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(id)
    } else {
        Err(OpenError::InvalidId(format!(
            "`{}`: use 1 to 128 characters from A-Z, a-z, 0-9, '.', '_', ':', '-'",
            id.chars().take(140).collect::<String>()
        )))
    }
}

/// A random id (unique across engines with overwhelming probability).
fn generate_id(key: u64) -> String {
    let random = std::collections::hash_map::RandomState::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:016x}{:016x}",
        random.hash_one((key, nanos)),
        random.hash_one((nanos, key))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_generated_ids_differ() {
        assert!(validate_id("cam-7.front:2".into()).is_ok());
        for bad in ["", "a b", "ünï", &"x".repeat(129)] {
            assert!(
                matches!(validate_id(bad.into()), Err(OpenError::InvalidId(_))),
                "{bad}"
            );
        }
        let a = generate_id(1);
        assert_eq!(a.len(), 32);
        assert_ne!(a, generate_id(1));
    }
}
