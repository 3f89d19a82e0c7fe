//! The shared store: a PostgreSQL database, for several servers that share streams (a stream
//! saved on one resumes on another). One connection on the store thread.

use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use postgres::{Client, NoTls, Statement};
use tokio::sync::mpsc;

use super::backend::{count, top_k_text, unsigned, Backend};
use super::sql;
use super::{ParkedStream, Request, StoreError, StoredCounts, StoredPrediction, StreamRecord};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    stream_id  TEXT PRIMARY KEY,
    owner      TEXT NOT NULL DEFAULT '',
    model      TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms   BIGINT,
    end_reason TEXT,
    frames_in  BIGINT NOT NULL DEFAULT 0,
    predicted  BIGINT NOT NULL DEFAULT 0,
    filling    BIGINT NOT NULL DEFAULT 0,
    skipped    BIGINT NOT NULL DEFAULT 0,
    dropped    BIGINT NOT NULL DEFAULT 0,
    rejected   BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS predictions (
    stream_id  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    pts        BIGINT NOT NULL,
    top_k      TEXT NOT NULL,
    queue_us   BIGINT NOT NULL,
    compute_us BIGINT NOT NULL,
    batch_size BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (stream_id, seq)
);
CREATE INDEX IF NOT EXISTS predictions_by_age ON predictions (created_ms);
CREATE TABLE IF NOT EXISTS parked (
    stream_id TEXT PRIMARY KEY,
    model     TEXT NOT NULL,
    options   TEXT NOT NULL,
    snapshot  BYTEA NOT NULL,
    parked_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_health (
    id         INTEGER PRIMARY KEY,
    checked_ms BIGINT NOT NULL
);
";

/// Serialises schema creation between servers starting at once (an advisory lock key).
const SCHEMA_LOCK: i64 = 0x636f_7374_7265_616d;

/// Whether `url` names a PostgreSQL database.
pub(super) fn handles(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Connects to the database `url` names, creates its tables, and starts the store thread on
/// `queue`; returns a description without credentials.
pub(super) fn start(
    url: &str,
    queue: mpsc::Receiver<Request>,
    healthy: Arc<AtomicBool>,
) -> Result<String, StoreError> {
    let config = postgres::Config::from_str(url)
        .map_err(|e| StoreError::Database(format!("database URL: {e}")))?;
    let description = describe(&config);
    let url = url.to_string();
    // The client runs its own runtime, so it is created on the store thread, never inside
    // the server's async runtime.
    let (ready, started) = std::sync::mpsc::channel();
    let thread_description = description.clone();
    std::thread::Builder::new()
        .name("costream-store".into())
        .spawn(move || match Postgres::connect(&url) {
            Ok(db) => {
                let _ = ready.send(Ok(()));
                super::backend::serve(db, queue, healthy);
            }
            Err(e) => {
                let _ = ready.send(Err(StoreError::Database(format!(
                    "{thread_description}: {e}"
                ))));
            }
        })
        .map_err(|e| StoreError::Database(format!("cannot start the store thread: {e}")))?;
    started.recv().map_err(|_| StoreError::Stopped)??;
    Ok(description)
}

fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_default();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("");
    format!("postgres {host}:{port}/{db}")
}

/// A PostgreSQL connection and its prepared statements.
struct Postgres {
    /// The database URL, to reconnect.
    url: String,
    client: Client,
    probe: Statement,
    claim: Statement,
    reopen: Statement,
    end: Statement,
    insert: Statement,
    park: Statement,
    take_parked: Statement,
    stream: Statement,
    predictions: Statement,
}

fn text(e: postgres::Error) -> String {
    // The database's own message (constraint, syntax) is in the source.
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl Postgres {
    fn connect(url: &str) -> Result<Postgres, String> {
        let mut client = Client::connect(url, NoTls).map_err(text)?;
        let mut schema = client.transaction().map_err(text)?;
        schema
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(text)?;
        schema.batch_execute(SCHEMA).map_err(text)?;
        schema.commit().map_err(text)?;
        let mut prepare = |sql: &str| client.prepare(sql).map_err(text);
        Ok(Postgres {
            probe: prepare(sql::PROBE)?,
            claim: prepare(sql::CLAIM)?,
            reopen: prepare(sql::REOPEN)?,
            end: prepare(sql::END)?,
            insert: prepare(sql::INSERT)?,
            park: prepare(sql::PARK)?,
            take_parked: prepare(sql::TAKE_PARKED)?,
            stream: prepare(sql::STREAM)?,
            predictions: prepare(sql::PREDICTIONS)?,
            url: url.to_string(),
            client,
        })
    }
}

impl Backend for Postgres {
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.client.batch_execute(sql).map_err(text)
    }

    fn probe(&mut self, now_ms: i64) -> Result<(), String> {
        self.client
            .execute(&self.probe, &[&now_ms])
            .map(drop)
            .map_err(text)
    }

    fn reconnect_if_lost(&mut self) -> Result<(), String> {
        if self.client.is_closed() {
            *self = Postgres::connect(&self.url)?;
            tracing::info!("prediction store: reconnected to the database");
        }
        Ok(())
    }

    fn claim(&mut self, r: &StreamRecord) -> Result<bool, String> {
        let inserted = self
            .client
            .execute(
                &self.claim,
                &[&r.stream_id, &r.owner, &r.model, &r.started_ms],
            )
            .map_err(text)?;
        Ok(inserted == 1)
    }

    fn reopen(&mut self, stream_id: &str) -> Result<(), String> {
        self.client
            .execute(&self.reopen, &[&stream_id])
            .map(drop)
            .map_err(text)
    }

    fn end(
        &mut self,
        stream_id: &str,
        ended_ms: i64,
        reason: &str,
        c: StoredCounts,
    ) -> Result<(), String> {
        let counts = [
            c.frames_in,
            c.predicted,
            c.filling,
            c.skipped,
            c.dropped,
            c.rejected,
        ]
        .map(count);
        self.client
            .execute(
                &self.end,
                &[
                    &stream_id, &ended_ms, &reason, &counts[0], &counts[1], &counts[2], &counts[3],
                    &counts[4], &counts[5],
                ],
            )
            .map(drop)
            .map_err(text)
    }

    fn insert(&mut self, stream_id: &str, p: &StoredPrediction) -> Result<(), String> {
        self.client
            .execute(
                &self.insert,
                &[
                    &stream_id,
                    &count(p.seq),
                    &p.pts,
                    &top_k_text(p),
                    &count(p.queue_us),
                    &count(p.compute_us),
                    &i64::from(p.batch_size),
                    &p.created_ms,
                ],
            )
            .map(drop)
            .map_err(text)
    }

    fn park(&mut self, p: &ParkedStream) -> Result<(), String> {
        self.client
            .execute(
                &self.park,
                &[
                    &p.stream_id,
                    &p.model,
                    &p.options,
                    &p.snapshot,
                    &p.parked_ms,
                ],
            )
            .map(drop)
            .map_err(text)
    }

    fn take_parked(
        &mut self,
        stream_id: &str,
        not_before_ms: i64,
    ) -> Result<Option<ParkedStream>, String> {
        let row = self
            .client
            .query_opt(&self.take_parked, &[&stream_id, &not_before_ms])
            .map_err(text)?;
        Ok(row.map(|row| ParkedStream {
            stream_id: row.get(0),
            model: row.get(1),
            options: row.get(2),
            snapshot: row.get(3),
            parked_ms: row.get(4),
        }))
    }

    fn stream(&mut self, stream_id: &str) -> Result<Option<StreamRecord>, String> {
        let row = self
            .client
            .query_opt(&self.stream, &[&stream_id])
            .map_err(text)?;
        Ok(row.map(|row| StreamRecord {
            stream_id: row.get(0),
            owner: row.get(1),
            model: row.get(2),
            started_ms: row.get(3),
            ended_ms: row.get(4),
            end_reason: row.get(5),
            counts: StoredCounts {
                frames_in: unsigned(row.get(6)),
                predicted: unsigned(row.get(7)),
                filling: unsigned(row.get(8)),
                skipped: unsigned(row.get(9)),
                dropped: unsigned(row.get(10)),
                rejected: unsigned(row.get(11)),
            },
        }))
    }

    fn predictions(
        &mut self,
        stream_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<StoredPrediction>, String> {
        let rows = self
            .client
            .query(&self.predictions, &[&stream_id, &from, &to, &limit])
            .map_err(text)?;
        rows.into_iter()
            .map(|row| {
                let top_k: String = row.get(2);
                Ok(StoredPrediction {
                    seq: unsigned(row.get(0)),
                    pts: row.get(1),
                    top_k: serde_json::from_str(&top_k)
                        .map_err(|e| format!("stored top_k: {e}"))?,
                    queue_us: unsigned(row.get(3)),
                    compute_us: unsigned(row.get(4)),
                    batch_size: u32::try_from(row.get::<_, i64>(5)).unwrap_or(u32::MAX),
                    created_ms: row.get(6),
                })
            })
            .collect()
    }

    fn purge(
        &mut self,
        predictions_before_ms: i64,
        parked_before_ms: i64,
    ) -> Result<(usize, usize), String> {
        let predictions = self
            .client
            .execute(sql::PURGE_PREDICTIONS, &[&predictions_before_ms])
            .map_err(text)?;
        let parked = self
            .client
            .execute(sql::PURGE_PARKED, &[&parked_before_ms])
            .map_err(text)?;
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Ok((size(predictions), size(parked)))
    }
}
