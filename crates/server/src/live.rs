//! The streams open on this server right now: admission against `max_streams`, and what
//! `GET /v1/streams` shows while they run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use costream_engine::StreamHandle;
use serde::Serialize;

use crate::store::StoredCounts;
use crate::wire;

/// Counts the server adds to the engine's: frames refused or dropped before the engine saw
/// them, and the counts of the stream's earlier connections (after a resume).
#[derive(Debug, Default)]
pub struct ServerCounts {
    /// Frames refused by the server (limits, sequence numbers, malformed payloads).
    pub rejected: AtomicU64,
    /// Frames dropped by the `drop_oldest` queue policy.
    pub dropped: AtomicU64,
    /// Counts of the stream before it was resumed on this connection.
    pub base: Mutex<StoredCounts>,
}

impl ServerCounts {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The stream's counts: the engine's, the server's, and the earlier connections'.
    pub fn total(&self, engine: Option<&StreamHandle>) -> StoredCounts {
        let mut c = engine.map(|h| wire::counts(h.counts())).unwrap_or_default();
        let base = *self
            .base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.frames_in += base.frames_in;
        c.predicted += base.predicted;
        c.filling += base.filling;
        c.skipped += base.skipped;
        c.dropped += base.dropped + self.dropped.load(Ordering::Relaxed);
        c.rejected += base.rejected + self.rejected.load(Ordering::Relaxed);
        c
    }
}

/// Where a stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for a state slot.
    Waiting = 0,
    /// Stepped on the device.
    Active = 1,
}

/// One open stream.
#[derive(Debug)]
struct Entry {
    owner: String,
    model: String,
    started_ms: i64,
    phase: Arc<AtomicU8>,
    handle: Weak<StreamHandle>,
    counts: Arc<ServerCounts>,
}

/// A stream as `GET /v1/streams` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LiveView {
    /// The stream's id.
    pub stream_id: String,
    /// Its model.
    pub model: String,
    /// When it started (or resumed), in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// `waiting` or `active`.
    pub phase: Phase,
    /// Its counts so far.
    pub counts: StoredCounts,
}

/// The open streams and the admission count.
#[derive(Debug)]
pub struct Live {
    streams: Mutex<HashMap<String, Entry>>,
    admitted: AtomicUsize,
    max_streams: usize,
    /// Places taken per API key name.
    per_owner: Mutex<HashMap<String, usize>>,
}

/// A place among `max_streams`, held while a connection opens or runs a stream; dropping
/// it frees the place and unlists the stream.
#[derive(Debug)]
pub struct Admission {
    live: Arc<Live>,
    owner: String,
    listed: Option<String>,
}

impl Live {
    /// No streams, admitting up to `max_streams`.
    pub fn new(max_streams: usize) -> Live {
        Live {
            streams: Mutex::new(HashMap::new()),
            admitted: AtomicUsize::new(0),
            max_streams,
            per_owner: Mutex::new(HashMap::new()),
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.streams
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a place for a stream of `owner` (an API key's name, or empty), or says which
    /// limit is reached: the server's `max_streams` or the key's `quota`.
    ///
    /// # Errors
    /// `(quota, message)`: whether the key's quota (not the server's limit) refused, and a
    /// message naming the limit and its value.
    pub fn admit(
        self: &Arc<Self>,
        owner: &str,
        quota: Option<usize>,
    ) -> Result<Admission, (bool, String)> {
        let mut per_owner = self
            .per_owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = per_owner.get(owner).copied().unwrap_or(0);
        if let Some(quota) = quota.filter(|&q| mine >= q) {
            return Err((
                true,
                format!(
                    "API key `{owner}` has {mine} streams open, its quota max_streams = {quota}"
                ),
            ));
        }
        let taken = self
            .admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max_streams).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                *per_owner.entry(owner.to_string()).or_default() += 1;
                Ok(Admission {
                    live: self.clone(),
                    owner: owner.to_string(),
                    listed: None,
                })
            }
            Err(n) => Err((
                false,
                format!(
                    "max_streams = {} reached ({n} streams open); try again later",
                    self.max_streams
                ),
            )),
        }
    }

    /// Streams open now.
    pub fn len(&self) -> usize {
        self.streams().len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every open stream, by id.
    pub fn list(&self) -> Vec<LiveView> {
        self.list_where(|_| true)
    }

    /// The open streams of `owner`, by id.
    pub fn list_owned(&self, owner: &str) -> Vec<LiveView> {
        self.list_where(|e| e.owner == owner)
    }

    fn list_where(&self, keep: impl Fn(&Entry) -> bool) -> Vec<LiveView> {
        let mut views: Vec<LiveView> = self
            .streams()
            .iter()
            .filter(|(_, e)| keep(e))
            .map(|(id, e)| view(id, e))
            .collect();
        views.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        views
    }

    /// One open stream.
    pub fn get(&self, stream_id: &str) -> Option<LiveView> {
        self.streams().get(stream_id).map(|e| view(stream_id, e))
    }

    /// One open stream of `owner`.
    pub fn get_owned(&self, stream_id: &str, owner: &str) -> Option<LiveView> {
        self.streams()
            .get(stream_id)
            .filter(|e| e.owner == owner)
            .map(|e| view(stream_id, e))
    }
}

fn view(id: &str, e: &Entry) -> LiveView {
    let phase = if e.phase.load(Ordering::Relaxed) == Phase::Active as u8 {
        Phase::Active
    } else {
        Phase::Waiting
    };
    LiveView {
        stream_id: id.to_string(),
        model: e.model.clone(),
        started_ms: e.started_ms,
        phase,
        counts: e.counts.total(e.handle.upgrade().as_deref()),
    }
}

impl Admission {
    /// Lists the stream under its id; returns the cell its phase is kept in.
    pub fn list(
        &mut self,
        handle: &Arc<StreamHandle>,
        started_ms: i64,
        counts: Arc<ServerCounts>,
    ) -> Arc<AtomicU8> {
        let phase = Arc::new(AtomicU8::new(Phase::Waiting as u8));
        let id = handle.id().to_string();
        self.live.streams().insert(
            id.clone(),
            Entry {
                owner: self.owner.clone(),
                model: handle.model().name.clone(),
                started_ms,
                phase: phase.clone(),
                handle: Arc::downgrade(handle),
                counts,
            },
        );
        self.listed = Some(id);
        phase
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(id) = self.listed.take() {
            self.live.streams().remove(&id);
        }
        self.live.admitted.fetch_sub(1, Ordering::SeqCst);
        let mut per_owner = self
            .live
            .per_owner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = per_owner.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                per_owner.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_stops_at_the_limit_and_frees_on_drop() {
        let live = Arc::new(Live::new(3));
        let a = live.admit("", None).unwrap();
        let _b = live.admit("k", Some(1)).unwrap();
        let (quota, refused) = live.admit("k", Some(1)).unwrap_err();
        assert!(
            quota && refused.contains("quota max_streams = 1"),
            "{refused}"
        );
        let _c = live.admit("", None).unwrap();
        let (quota, refused) = live.admit("", None).unwrap_err();
        assert!(!quota && refused.contains("max_streams = 3"), "{refused}");
        drop(a);
        assert!(live.admit("", None).is_ok());
    }
}
