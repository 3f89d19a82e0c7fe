//! The prediction store: every prediction a stream produced, each stream's record, and the
//! saved state of disconnected streams (for `resume`). Writes are queued to a store thread
//! and committed in batches; a prediction or a record is confirmed only once committed
//! (the server sends nothing that claims a write before that), and reads wait for earlier
//! writes. While writes fail the store is unhealthy (readiness fails); [`Store::probe`]
//! tells when the database takes writes again (reconnecting to PostgreSQL if needed).
//!
//! # Layout
//! - this file: the records and the [`Store`] handle (a queue of requests).
//! - `backend`: what a database does, and the store thread's batching loop.
//! - `sqlite`: the embedded backend (one SQLite file, or memory), the default.
//! - `postgres`: the shared backend, for servers that hand streams to each other.
//! - `sql`: the statements both backends run.

mod backend;
mod postgres;
mod sql;
mod sqlite;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use self::backend::{Answer, Write};

/// Requests waiting for the store thread; writers wait when it falls this far behind.
const QUEUE: usize = 65_536;

/// One class of a stored prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredLabel {
    /// The class index.
    pub index: u32,
    /// The class name.
    pub label: String,
    /// Its score.
    pub score: f32,
}

/// A stored prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredPrediction {
    /// The frame's sequence number.
    pub seq: u64,
    /// The client's timestamp of the frame.
    pub pts: i64,
    /// The best classes, best first.
    pub top_k: Vec<StoredLabel>,
    /// Time from receipt to the start of its step, in microseconds.
    pub queue_us: u64,
    /// Time of its step, in microseconds.
    pub compute_us: u64,
    /// Streams stepped together with it.
    pub batch_size: u32,
    /// When it was computed, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A stream's frame counts, as stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredCounts {
    /// Frames accepted.
    pub frames_in: u64,
    /// Frames answered with a prediction.
    pub predicted: u64,
    /// Frames consumed while the network filled.
    pub filling: u64,
    /// Frames left out by the sampling stride.
    pub skipped: u64,
    /// Frames dropped by the queue policy.
    pub dropped: u64,
    /// Frames refused.
    pub rejected: u64,
}

/// A stream's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamRecord {
    /// The stream's id.
    pub stream_id: String,
    /// The API key that started it (empty on an open server).
    pub owner: String,
    /// Its model.
    pub model: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// When it ended or disconnected, if it has.
    pub ended_ms: Option<i64>,
    /// Why it ended (`client`, `idle`, `max_duration`, `shutdown`, `abandoned`, `fault`, or
    /// `disconnected` while its state waits for a resume).
    pub end_reason: Option<String>,
    /// Its frame counts when it ended or disconnected.
    pub counts: StoredCounts,
}

/// A disconnected stream's saved state.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkedStream {
    /// The stream's id.
    pub stream_id: String,
    /// Its model.
    pub model: String,
    /// Its options, as JSON (the server's own format).
    pub options: String,
    /// The engine's snapshot bytes.
    pub snapshot: Vec<u8>,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub parked_ms: i64,
}

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not one the server knows.
    #[error("unsupported database URL `{0}`: use sqlite://PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB")]
    Url(String),
    /// The database refused an operation.
    #[error("database: {0}")]
    Database(String),
    /// The store thread has stopped.
    #[error("the prediction store has stopped")]
    Stopped,
}

/// What the store thread is asked to do, in order.
#[derive(Debug)]
enum Request {
    /// A write, answered (if asked) once its transaction commits or fails.
    Write(Write, Answer),
    /// Removes and returns a saved state, if saved at or after `not_before_ms`.
    TakeParked {
        stream_id: String,
        not_before_ms: i64,
        reply: oneshot::Sender<Result<Option<ParkedStream>, StoreError>>,
    },
    /// One stream's record.
    Stream(
        String,
        oneshot::Sender<Result<Option<StreamRecord>, StoreError>>,
    ),
    /// A stream's predictions with `from <= seq <= to`, at most `limit`.
    Predictions {
        stream_id: String,
        from: u64,
        to: u64,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<StoredPrediction>, StoreError>>,
    },
    /// Deletes predictions older than `predictions_before_ms` and saved states older than
    /// `parked_before_ms`; answers how many of each.
    Purge {
        predictions_before_ms: i64,
        parked_before_ms: i64,
        reply: oneshot::Sender<Result<(usize, usize), StoreError>>,
    },
    /// Answers once every earlier request is committed.
    Sync(oneshot::Sender<()>),
    /// Runs a statement outside any transaction (tests: `PRAGMA max_page_count` makes a
    /// SQLite database full, as a full disk does).
    #[cfg(test)]
    Execute(String, oneshot::Sender<Result<(), StoreError>>),
}

/// The handle to the store thread. Cloning it is cheap; the thread stops when every handle
/// is gone, after committing what was queued.
#[derive(Debug, Clone)]
pub struct Store {
    requests: mpsc::Sender<Request>,
    description: String,
    healthy: Arc<AtomicBool>,
}

impl Store {
    /// Opens the store `url` names: `sqlite://PATH` (created if missing),
    /// `sqlite::memory:`, or `postgres://…` (a server's database; tables created if missing).
    /// Call it outside an async runtime's worker threads (it connects synchronously).
    ///
    /// # Errors
    /// [`StoreError::Url`] for another scheme, [`StoreError::Database`] when the database
    /// cannot be opened or its tables created.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        let (requests, queue) = mpsc::channel(QUEUE);
        let healthy = Arc::new(AtomicBool::new(true));
        let description = if postgres::handles(url) {
            postgres::start(url, queue, healthy.clone())?
        } else {
            sqlite::start(url, queue, healthy.clone())?
        };
        Ok(Store {
            requests,
            description,
            healthy,
        })
    }

    /// Whether the last transaction committed (the database takes writes).
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Writes a row of the store's own to learn whether the database takes writes again
    /// (reconnecting first if the connection was lost); updates [`Store::healthy`].
    ///
    /// # Errors
    /// [`StoreError`] when the write fails.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.write(Write::Probe(now_ms())).await.map(drop)
    }

    /// Queues a write and waits until its transaction has committed.
    async fn write(&self, write: Write) -> Result<bool, StoreError> {
        self.ask(|reply| Request::Write(write, Some(reply))).await
    }

    /// Queues a write without waiting (its failure is logged and makes the store unhealthy).
    async fn write_later(&self, write: Write) -> Result<(), StoreError> {
        self.send(Request::Write(write, None)).await
    }

    /// What the store is (for `/info` and logs), without credentials.
    pub fn describe(&self) -> &str {
        &self.description
    }

    async fn send(&self, request: Request) -> Result<(), StoreError> {
        self.requests
            .send(request)
            .await
            .map_err(|_| StoreError::Stopped)
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(request(reply)).await?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Creates a stream's record and waits until it is committed. `Ok(false)` when a stream
    /// with this id exists or existed (ids are never reused, so stored predictions stay
    /// unambiguous).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails: the record does not exist.
    pub async fn claim(&self, record: StreamRecord) -> Result<bool, StoreError> {
        self.write(Write::Claim(record)).await
    }

    /// Marks a resumed stream live again.
    ///
    /// # Errors
    /// [`StoreError::Stopped`].
    pub async fn reopen(&self, stream_id: &str) -> Result<(), StoreError> {
        self.write_later(Write::Reopen(stream_id.to_string())).await
    }

    /// Records how a stream ended (or that it disconnected).
    ///
    /// # Errors
    /// [`StoreError::Stopped`].
    pub async fn end(
        &self,
        stream_id: &str,
        ended_ms: i64,
        reason: &str,
        counts: StoredCounts,
    ) -> Result<(), StoreError> {
        self.write_later(Write::End {
            stream_id: stream_id.to_string(),
            ended_ms,
            reason: reason.to_string(),
            counts,
        })
        .await
    }

    /// Stores a prediction and waits until it is committed (with the other writes queued
    /// meanwhile).
    ///
    /// # Errors
    /// [`StoreError`] when it could not be stored.
    pub async fn prediction(
        &self,
        stream_id: &str,
        prediction: StoredPrediction,
    ) -> Result<(), StoreError> {
        self.write(Write::Prediction(stream_id.to_string(), prediction))
            .await
            .map(drop)
    }

    /// Saves a disconnected stream's state (replacing an older one) and waits until it is
    /// committed.
    ///
    /// # Errors
    /// [`StoreError`] when it could not be saved.
    pub async fn park(&self, parked: ParkedStream) -> Result<(), StoreError> {
        self.write(Write::Park(parked)).await.map(drop)
    }

    /// Removes and returns a stream's saved state if it was saved at or after
    /// `not_before_ms` (one caller wins when two resume at once).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn take_parked(
        &self,
        stream_id: &str,
        not_before_ms: i64,
    ) -> Result<Option<ParkedStream>, StoreError> {
        self.ask(|reply| Request::TakeParked {
            stream_id: stream_id.to_string(),
            not_before_ms,
            reply,
        })
        .await
    }

    /// A stream's record.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn stream(&self, stream_id: &str) -> Result<Option<StreamRecord>, StoreError> {
        self.ask(|reply| Request::Stream(stream_id.to_string(), reply))
            .await
    }

    /// A stream's predictions with `from <= seq <= to`, in order, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn predictions(
        &self,
        stream_id: &str,
        from: u64,
        to: u64,
        limit: usize,
    ) -> Result<Vec<StoredPrediction>, StoreError> {
        self.ask(|reply| Request::Predictions {
            stream_id: stream_id.to_string(),
            from,
            to,
            limit,
            reply,
        })
        .await
    }

    /// Deletes predictions and saved states older than the given times; returns how many of
    /// each.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn purge(
        &self,
        predictions_before_ms: i64,
        parked_before_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        self.ask(|reply| Request::Purge {
            predictions_before_ms,
            parked_before_ms,
            reply,
        })
        .await
    }

    /// Waits until every request queued before it is committed.
    ///
    /// # Errors
    /// [`StoreError::Stopped`].
    pub async fn sync(&self) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Sync(reply)).await?;
        answer.await.map_err(|_| StoreError::Stopped)
    }
}

#[cfg(test)]
impl Store {
    /// Runs `sql` on the store thread's connection, between transactions.
    pub(crate) async fn execute_for_test(&self, sql: &str) -> Result<(), StoreError> {
        self.ask(|reply| Request::Execute(sql.to_string(), reply))
            .await
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn prediction(seq: u64, created_ms: i64) -> StoredPrediction {
        StoredPrediction {
            seq,
            pts: seq as i64 * 40,
            top_k: vec![StoredLabel {
                index: 1,
                label: "wave".into(),
                score: 0.5,
            }],
            queue_us: 10,
            compute_us: 20,
            batch_size: 2,
            created_ms,
        }
    }

    fn record(id: &str) -> StreamRecord {
        StreamRecord {
            stream_id: id.into(),
            owner: String::new(),
            model: "m".into(),
            started_ms: 1,
            ended_ms: None,
            end_reason: None,
            counts: StoredCounts::default(),
        }
    }

    /// Checks a store's behaviour; ids start with `prefix` (a shared database keeps them).
    pub(super) async fn exercise(store: Store, prefix: &str) {
        let a = format!("{prefix}-a");
        let a = a.as_str();
        assert!(store.claim(record(a)).await.unwrap());
        assert!(
            !store.claim(record(a)).await.unwrap(),
            "ids are never reused"
        );
        for seq in [3, 1, 2, 5] {
            store.prediction(a, prediction(seq, 100)).await.unwrap();
        }
        let got = store.predictions(a, 2, 4, 10).await.unwrap();
        assert_eq!(got, vec![prediction(2, 100), prediction(3, 100)]);
        assert_eq!(store.predictions(a, 0, u64::MAX, 2).await.unwrap().len(), 2);

        let counts = StoredCounts {
            frames_in: 4,
            predicted: 4,
            ..StoredCounts::default()
        };
        store.end(a, 9, "client", counts).await.unwrap();
        let stored = store.stream(a).await.unwrap().unwrap();
        assert_eq!(stored.end_reason.as_deref(), Some("client"));
        assert_eq!(stored.counts, counts);
        assert_eq!(store.stream(&format!("{prefix}-b")).await.unwrap(), None);

        let parked = ParkedStream {
            stream_id: a.into(),
            model: "m".into(),
            options: "{}".into(),
            snapshot: vec![1, 2, 3],
            parked_ms: 50,
        };
        store.park(parked.clone()).await.unwrap();
        assert_eq!(store.take_parked(a, 60).await.unwrap(), None, "expired");
        assert_eq!(store.take_parked(a, 40).await.unwrap(), Some(parked));
        assert_eq!(store.take_parked(a, 40).await.unwrap(), None, "taken once");

        store.prediction(a, prediction(9, 10)).await.unwrap();
        let (purged, _) = store.purge(50, 0).await.unwrap();
        assert!(purged >= 1, "the old prediction is deleted");
        assert_eq!(store.predictions(a, 9, 9, 10).await.unwrap(), vec![]);
        assert_eq!(
            store.predictions(a, 1, 1, 10).await.unwrap().len(),
            1,
            "recent kept"
        );
    }

    /// A SQLite database that fills up (as on a full disk), frees again, turns read-only and
    /// writable again: every write is
    /// confirmed only when committed, so exactly the confirmed predictions are stored; a
    /// record is refused while full; the store is unhealthy until a probe write succeeds;
    /// after a restart no id can be claimed again.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_database_refuses_writes_visibly_and_recovers() {
        let dir = std::env::temp_dir().join(format!("costream-store-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("store.sqlite3").display());
        let store = Store::open(&url).unwrap();
        assert!(store.claim(record("a")).await.unwrap());
        let mut confirmed = vec![];
        let big = |seq: u64| StoredPrediction {
            top_k: vec![
                StoredLabel {
                    index: 0,
                    label: "x".repeat(2000),
                    score: 0.5,
                };
                4
            ],
            ..prediction(seq, 1)
        };
        for seq in 0..5 {
            store.prediction("a", big(seq)).await.unwrap();
            confirmed.push(seq);
        }
        assert!(store.healthy());

        // Full: SQLite raises max_page_count to the current size at least.
        store
            .execute_for_test("PRAGMA max_page_count = 1")
            .await
            .unwrap();
        let mut refused = 0;
        for seq in 5..200 {
            match store.prediction("a", big(seq)).await {
                Ok(()) => confirmed.push(seq),
                Err(StoreError::Database(message)) => {
                    assert!(message.contains("full"), "{message}");
                    refused += 1;
                }
                Err(other) => panic!("{other}"),
            }
        }
        assert!(refused > 0, "the database never filled");
        assert!(!store.healthy(), "a failed write makes the store unhealthy");
        // A record that needs a page of its own (a small one may fit in a page's free space).
        let roomy = |id: &str| StreamRecord {
            owner: "o".repeat(5000),
            ..record(id)
        };
        assert!(
            store.claim(roomy("b")).await.is_err(),
            "no record while full"
        );

        // Freed: a probe succeeds, and writes are taken again.
        store
            .execute_for_test("PRAGMA max_page_count = 1073741823")
            .await
            .unwrap();
        store.probe().await.unwrap();
        assert!(store.healthy());
        assert!(store.claim(roomy("b")).await.unwrap());
        store.prediction("a", prediction(500, 1)).await.unwrap();
        confirmed.push(500);

        // Read-only (as a disk remounted read-only): every write is refused, even a probe.
        store
            .execute_for_test("PRAGMA query_only = ON")
            .await
            .unwrap();
        let err = store.prediction("a", prediction(501, 1)).await.unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        assert!(!store.healthy());
        assert!(store.probe().await.is_err());
        store
            .execute_for_test("PRAGMA query_only = OFF")
            .await
            .unwrap();
        store.probe().await.unwrap();
        assert!(store.healthy());

        // Restarted: exactly the confirmed predictions, and no id claimed twice.
        drop(store);
        let store = Store::open(&url).unwrap();
        let stored: Vec<u64> = store
            .predictions("a", 0, u64::MAX, 10_000)
            .await
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!(stored, confirmed);
        for id in ["a", "b"] {
            assert!(
                !store.claim(record(id)).await.unwrap(),
                "{id} claimed again"
            );
        }
        assert!(store.claim(record("c")).await.unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The PostgreSQL backend against a real server: `COSTREAM_TEST_POSTGRES_URL` names
    /// its database (`.ci/run` starts one; `tools/postgres/start.sh` does it by hand).
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs a PostgreSQL server: set COSTREAM_TEST_POSTGRES_URL (.ci/run does)"]
    async fn postgres_stores_and_queries_like_sqlite() {
        let url = std::env::var("COSTREAM_TEST_POSTGRES_URL")
            .expect("COSTREAM_TEST_POSTGRES_URL names a PostgreSQL database");
        let store = tokio::task::spawn_blocking(move || Store::open(&url))
            .await
            .unwrap()
            .unwrap();
        assert!(
            store.describe().starts_with("postgres "),
            "{}",
            store.describe()
        );
        let prefix = format!("pg-{}", now_ms());
        exercise(store, &prefix).await;
    }
}
