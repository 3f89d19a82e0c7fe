//! The embedded store: one SQLite database (a file in WAL mode, or memory) on the store
//! thread.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rusqlite::{params, CachedStatement, Connection, OptionalExtension};
use tokio::sync::mpsc;

use super::backend::{count, top_k_text, unsigned, Backend};
use super::sql::{self, for_sqlite};
use super::{ParkedStream, Request, StoreError, StoredCounts, StoredPrediction, StreamRecord};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    stream_id  TEXT PRIMARY KEY,
    owner      TEXT NOT NULL DEFAULT '',
    model      TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms   INTEGER,
    end_reason TEXT,
    frames_in  INTEGER NOT NULL DEFAULT 0,
    predicted  INTEGER NOT NULL DEFAULT 0,
    filling    INTEGER NOT NULL DEFAULT 0,
    skipped    INTEGER NOT NULL DEFAULT 0,
    dropped    INTEGER NOT NULL DEFAULT 0,
    rejected   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS predictions (
    stream_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    pts        INTEGER NOT NULL,
    top_k      TEXT NOT NULL,
    queue_us   INTEGER NOT NULL,
    compute_us INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (stream_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_by_age ON predictions (created_ms);
CREATE TABLE IF NOT EXISTS parked (
    stream_id TEXT PRIMARY KEY,
    model     TEXT NOT NULL,
    options   TEXT NOT NULL,
    snapshot  BLOB NOT NULL,
    parked_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_health (
    id         INTEGER PRIMARY KEY,
    checked_ms INTEGER NOT NULL
);
";

/// Opens the database `url` names (`sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`),
/// creates its tables, and starts the store thread on `queue`; returns a description.
pub(super) fn start(
    url: &str,
    queue: mpsc::Receiver<Request>,
    healthy: Arc<AtomicBool>,
) -> Result<String, StoreError> {
    let (connection, description) = if url == "sqlite::memory:" {
        (
            Connection::open_in_memory(),
            "sqlite (in memory)".to_string(),
        )
    } else if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        (Connection::open(path), format!("sqlite {path}"))
    } else {
        return Err(StoreError::Url(url.to_string()));
    };
    let fault = |e: rusqlite::Error| StoreError::Database(format!("{description}: {e}"));
    let connection = connection.map_err(fault)?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .and_then(|()| connection.execute_batch(SCHEMA))
        .map_err(fault)?;
    std::thread::Builder::new()
        .name("costream-store".into())
        .spawn(move || super::backend::serve(Sqlite::new(connection), queue, healthy))
        .map_err(|e| StoreError::Database(format!("cannot start the store thread: {e}")))?;
    Ok(description)
}

/// A SQLite connection as a store backend.
struct Sqlite {
    db: Connection,
    /// The shared statements with SQLite's parameters, converted once each.
    converted: HashMap<&'static str, String>,
}

impl Sqlite {
    fn new(db: Connection) -> Sqlite {
        Sqlite {
            db,
            converted: HashMap::new(),
        }
    }

    /// One of the shared statements (`sql::…`), prepared once and cached by the connection.
    fn statement(&mut self, shared: &'static str) -> rusqlite::Result<CachedStatement<'_>> {
        let text = self
            .converted
            .entry(shared)
            .or_insert_with(|| for_sqlite(shared));
        self.db.prepare_cached(text)
    }
}

fn text(e: rusqlite::Error) -> String {
    e.to_string()
}

impl Backend for Sqlite {
    fn execute(&mut self, sql: &str) -> Result<(), String> {
        self.db.execute_batch(sql).map_err(text)
    }

    fn probe(&mut self, now_ms: i64) -> Result<(), String> {
        self.statement(sql::PROBE)
            .and_then(|mut s| s.execute(params![now_ms]))
            .map(drop)
            .map_err(text)
    }

    /// The file stays open whatever fails.
    fn reconnect_if_lost(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn claim(&mut self, r: &StreamRecord) -> Result<bool, String> {
        let inserted = self
            .statement(sql::CLAIM)
            .and_then(|mut s| s.execute(params![r.stream_id, r.owner, r.model, r.started_ms]))
            .map_err(text)?;
        Ok(inserted == 1)
    }

    fn reopen(&mut self, stream_id: &str) -> Result<(), String> {
        self.statement(sql::REOPEN)
            .and_then(|mut s| s.execute(params![stream_id]))
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
        self.statement(sql::END)
            .and_then(|mut s| {
                s.execute(params![
                    stream_id,
                    ended_ms,
                    reason,
                    count(c.frames_in),
                    count(c.predicted),
                    count(c.filling),
                    count(c.skipped),
                    count(c.dropped),
                    count(c.rejected)
                ])
            })
            .map(drop)
            .map_err(text)
    }

    fn insert(&mut self, stream_id: &str, p: &StoredPrediction) -> Result<(), String> {
        self.statement(sql::INSERT)
            .and_then(|mut s| {
                s.execute(params![
                    stream_id,
                    count(p.seq),
                    p.pts,
                    top_k_text(p),
                    count(p.queue_us),
                    count(p.compute_us),
                    p.batch_size,
                    p.created_ms
                ])
            })
            .map(drop)
            .map_err(text)
    }

    fn park(&mut self, p: &ParkedStream) -> Result<(), String> {
        self.statement(sql::PARK)
            .and_then(|mut s| {
                s.execute(params![
                    p.stream_id,
                    p.model,
                    p.options,
                    p.snapshot,
                    p.parked_ms
                ])
            })
            .map(drop)
            .map_err(text)
    }

    fn take_parked(
        &mut self,
        stream_id: &str,
        not_before_ms: i64,
    ) -> Result<Option<ParkedStream>, String> {
        self.statement(sql::TAKE_PARKED)
            .and_then(|mut s| {
                s.query_row(params![stream_id, not_before_ms], |row| {
                    Ok(ParkedStream {
                        stream_id: row.get(0)?,
                        model: row.get(1)?,
                        options: row.get(2)?,
                        snapshot: row.get(3)?,
                        parked_ms: row.get(4)?,
                    })
                })
                .optional()
            })
            .map_err(text)
    }

    fn stream(&mut self, stream_id: &str) -> Result<Option<StreamRecord>, String> {
        self.statement(sql::STREAM)
            .and_then(|mut s| {
                s.query_row(params![stream_id], |row| {
                    Ok(StreamRecord {
                        stream_id: row.get(0)?,
                        owner: row.get(1)?,
                        model: row.get(2)?,
                        started_ms: row.get(3)?,
                        ended_ms: row.get(4)?,
                        end_reason: row.get(5)?,
                        counts: StoredCounts {
                            frames_in: unsigned(row.get(6)?),
                            predicted: unsigned(row.get(7)?),
                            filling: unsigned(row.get(8)?),
                            skipped: unsigned(row.get(9)?),
                            dropped: unsigned(row.get(10)?),
                            rejected: unsigned(row.get(11)?),
                        },
                    })
                })
                .optional()
            })
            .map_err(text)
    }

    fn predictions(
        &mut self,
        stream_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<StoredPrediction>, String> {
        let mut statement = self.statement(sql::PREDICTIONS).map_err(text)?;
        let rows = statement
            .query_map(params![stream_id, from, to, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, u32>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            })
            .map_err(text)?;
        rows.map(|row| {
            let (seq, pts, top_k, queue_us, compute_us, batch_size, created_ms) =
                row.map_err(text)?;
            Ok(StoredPrediction {
                seq: unsigned(seq),
                pts,
                top_k: serde_json::from_str(&top_k).map_err(|e| format!("stored top_k: {e}"))?,
                queue_us: unsigned(queue_us),
                compute_us: unsigned(compute_us),
                batch_size,
                created_ms,
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
            .statement(sql::PURGE_PREDICTIONS)
            .and_then(|mut s| s.execute(params![predictions_before_ms]))
            .map_err(text)?;
        let parked = self
            .statement(sql::PURGE_PARKED)
            .and_then(|mut s| s.execute(params![parked_before_ms]))
            .map_err(text)?;
        Ok((predictions, parked))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{tests::exercise, Store};

    #[tokio::test]
    async fn stores_and_queries_streams_predictions_and_saved_states() {
        exercise(Store::open("sqlite::memory:").unwrap(), "s").await;
    }

    #[test]
    fn unknown_urls_are_refused_by_name() {
        let err = Store::open("postgresql-ish://x").unwrap_err();
        assert!(err.to_string().contains("postgresql-ish://x"), "{err}");
    }
}
