//! The embedded store: one SQLite database (a file in WAL mode, or memory) owned by a store
//! thread that commits queued writes in batches.

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc;

use super::{ParkedStream, Request, StoreError, StoredCounts, StoredPrediction, StreamRecord};

/// Requests handled in one transaction at most.
const BATCH: usize = 4096;

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
";

/// Opens the database `url` names, creates its tables, and starts the store thread on
/// `queue`; returns a description of the store.
pub(super) fn start(url: &str, queue: mpsc::Receiver<Request>) -> Result<String, StoreError> {
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
    let connection = connection.map_err(|e| db(&description, &e))?;
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .and_then(|()| connection.execute_batch(SCHEMA))
        .map_err(|e| db(&description, &e))?;
    std::thread::Builder::new()
        .name("costream-store".into())
        .spawn(move || serve(&connection, queue))
        .map_err(|e| StoreError::Database(format!("cannot start the store thread: {e}")))?;
    Ok(description)
}

fn db(what: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::Database(format!("{what}: {e}"))
}

/// Handles requests until every handle is gone: consecutive writes share a transaction,
/// which is committed before any read and at the end of each batch.
fn serve(connection: &Connection, mut queue: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let mut in_transaction = false;
        for request in batch.drain(..) {
            let writes = matches!(
                request,
                Request::Claim(..)
                    | Request::Reopen(_)
                    | Request::End { .. }
                    | Request::Prediction(..)
                    | Request::Park(_)
            );
            if writes && !in_transaction {
                in_transaction = run(connection, "BEGIN");
            } else if !writes && in_transaction {
                run(connection, "COMMIT");
                in_transaction = false;
            }
            handle(connection, request);
        }
        if in_transaction {
            run(connection, "COMMIT");
        }
    }
}

/// Runs a statement without parameters; logs and returns `false` if it fails.
fn run(connection: &Connection, sql: &str) -> bool {
    match connection.execute_batch(sql) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, sql, "prediction store statement failed");
            false
        }
    }
}

fn handle(connection: &Connection, request: Request) {
    let logged = |what: &str, result: rusqlite::Result<usize>| {
        if let Err(e) = result {
            tracing::error!(error = %e, "prediction store: {what} failed");
        }
    };
    match request {
        Request::Claim(record, reply) => {
            let _ = reply.send(claim(connection, &record).map_err(|e| db("claim", &e)));
        }
        Request::Reopen(stream_id) => logged(
            "reopen",
            connection
                .prepare_cached(
                    "UPDATE streams SET ended_ms = NULL, end_reason = NULL WHERE stream_id = ?1",
                )
                .and_then(|mut s| s.execute(params![stream_id])),
        ),
        Request::End {
            stream_id,
            ended_ms,
            reason,
            counts,
        } => logged(
            "end",
            end(connection, &stream_id, ended_ms, &reason, counts),
        ),
        Request::Prediction(stream_id, p) => {
            logged("insert", insert_prediction(connection, &stream_id, &p));
        }
        Request::Park(parked) => logged("park", park(connection, &parked)),
        Request::TakeParked {
            stream_id,
            not_before_ms,
            reply,
        } => {
            let result = take_parked(connection, &stream_id, not_before_ms);
            let _ = reply.send(result.map_err(|e| db("resume", &e)));
        }
        Request::Stream(stream_id, reply) => {
            let _ = reply.send(stream(connection, &stream_id).map_err(|e| db("stream", &e)));
        }
        Request::Predictions {
            stream_id,
            from,
            to,
            limit,
            reply,
        } => {
            let result = predictions(connection, &stream_id, from, to, limit);
            let _ = reply.send(result.map_err(|e| db("predictions", &e)));
        }
        Request::Purge {
            predictions_before_ms,
            parked_before_ms,
            reply,
        } => {
            let result = connection
                .execute(
                    "DELETE FROM predictions WHERE created_ms < ?1",
                    params![predictions_before_ms],
                )
                .and_then(|p| {
                    let s = connection.execute(
                        "DELETE FROM parked WHERE parked_ms < ?1",
                        params![parked_before_ms],
                    )?;
                    Ok((p, s))
                });
            let _ = reply.send(result.map_err(|e| db("purge", &e)));
        }
        Request::Sync(reply) => {
            let _ = reply.send(());
        }
    }
}

/// Sequence numbers are stored as SQLite integers (i64); the protocol refuses larger ones.
fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn claim(connection: &Connection, r: &StreamRecord) -> rusqlite::Result<bool> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO streams (stream_id, owner, model, started_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (stream_id) DO NOTHING",
        )?
        .execute(params![r.stream_id, r.owner, r.model, r.started_ms])?;
    Ok(inserted == 1)
}

fn end(
    connection: &Connection,
    stream_id: &str,
    ended_ms: i64,
    reason: &str,
    c: StoredCounts,
) -> rusqlite::Result<usize> {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    connection
        .prepare_cached(
            "UPDATE streams SET ended_ms = ?2, end_reason = ?3, frames_in = ?4, predicted = ?5,
             filling = ?6, skipped = ?7, dropped = ?8, rejected = ?9 WHERE stream_id = ?1",
        )?
        .execute(params![
            stream_id,
            ended_ms,
            reason,
            n(c.frames_in),
            n(c.predicted),
            n(c.filling),
            n(c.skipped),
            n(c.dropped),
            n(c.rejected)
        ])
}

fn insert_prediction(
    connection: &Connection,
    stream_id: &str,
    p: &StoredPrediction,
) -> rusqlite::Result<usize> {
    let top_k = serde_json::to_string(&p.top_k)
        .expect("labels and scores always serialise to JSON; this is a bug");
    connection
        .prepare_cached(
            "INSERT OR REPLACE INTO predictions
             (stream_id, seq, pts, top_k, queue_us, compute_us, batch_size, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            stream_id,
            seq_param(p.seq),
            p.pts,
            top_k,
            i64::try_from(p.queue_us).unwrap_or(i64::MAX),
            i64::try_from(p.compute_us).unwrap_or(i64::MAX),
            p.batch_size,
            p.created_ms
        ])
}

fn park(connection: &Connection, p: &ParkedStream) -> rusqlite::Result<usize> {
    connection
        .prepare_cached(
            "INSERT OR REPLACE INTO parked (stream_id, model, options, snapshot, parked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            p.stream_id,
            p.model,
            p.options,
            p.snapshot,
            p.parked_ms
        ])
}

fn take_parked(
    connection: &Connection,
    stream_id: &str,
    not_before_ms: i64,
) -> rusqlite::Result<Option<ParkedStream>> {
    connection
        .prepare_cached(
            "DELETE FROM parked WHERE stream_id = ?1 AND parked_ms >= ?2
             RETURNING stream_id, model, options, snapshot, parked_ms",
        )?
        .query_row(params![stream_id, not_before_ms], |row| {
            Ok(ParkedStream {
                stream_id: row.get(0)?,
                model: row.get(1)?,
                options: row.get(2)?,
                snapshot: row.get(3)?,
                parked_ms: row.get(4)?,
            })
        })
        .optional()
}

fn stream(connection: &Connection, stream_id: &str) -> rusqlite::Result<Option<StreamRecord>> {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    connection
        .prepare_cached(
            "SELECT stream_id, owner, model, started_ms, ended_ms, end_reason, frames_in,
             predicted, filling, skipped, dropped, rejected FROM streams WHERE stream_id = ?1",
        )?
        .query_row(params![stream_id], |row| {
            Ok(StreamRecord {
                stream_id: row.get(0)?,
                owner: row.get(1)?,
                model: row.get(2)?,
                started_ms: row.get(3)?,
                ended_ms: row.get(4)?,
                end_reason: row.get(5)?,
                counts: StoredCounts {
                    frames_in: n(row.get(6)?),
                    predicted: n(row.get(7)?),
                    filling: n(row.get(8)?),
                    skipped: n(row.get(9)?),
                    dropped: n(row.get(10)?),
                    rejected: n(row.get(11)?),
                },
            })
        })
        .optional()
}

fn predictions(
    connection: &Connection,
    stream_id: &str,
    from: u64,
    to: u64,
    limit: usize,
) -> rusqlite::Result<Vec<StoredPrediction>> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, pts, top_k, queue_us, compute_us, batch_size, created_ms FROM predictions
         WHERE stream_id = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
    )?;
    let rows = statement.query_map(
        params![
            stream_id,
            seq_param(from),
            seq_param(to),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| {
            let top_k: String = row.get(2)?;
            let top_k = serde_json::from_str(&top_k).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
            })?;
            let n = |v: i64| u64::try_from(v).unwrap_or(0);
            Ok(StoredPrediction {
                seq: n(row.get(0)?),
                pts: row.get(1)?,
                top_k,
                queue_us: n(row.get(3)?),
                compute_us: n(row.get(4)?),
                batch_size: row.get(5)?,
                created_ms: row.get(6)?,
            })
        },
    )?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Store, StoredLabel};
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

    #[tokio::test]
    async fn stores_and_queries_streams_predictions_and_saved_states() {
        let store = Store::open("sqlite::memory:").unwrap();
        assert!(store.claim(record("a")).await.unwrap());
        assert!(
            !store.claim(record("a")).await.unwrap(),
            "ids are never reused"
        );
        for seq in [3, 1, 2, 5] {
            store.prediction("a", prediction(seq, 100)).await.unwrap();
        }
        let got = store.predictions("a", 2, 4, 10).await.unwrap();
        assert_eq!(got, vec![prediction(2, 100), prediction(3, 100)]);
        assert_eq!(
            store.predictions("a", 0, u64::MAX, 2).await.unwrap().len(),
            2
        );

        let counts = StoredCounts {
            frames_in: 4,
            predicted: 4,
            ..StoredCounts::default()
        };
        store.end("a", 9, "client", counts).await.unwrap();
        let stored = store.stream("a").await.unwrap().unwrap();
        assert_eq!(stored.end_reason.as_deref(), Some("client"));
        assert_eq!(stored.counts, counts);
        assert_eq!(store.stream("b").await.unwrap(), None);

        let parked = ParkedStream {
            stream_id: "a".into(),
            model: "m".into(),
            options: "{}".into(),
            snapshot: vec![1, 2, 3],
            parked_ms: 50,
        };
        store.park(parked.clone()).await.unwrap();
        assert_eq!(store.take_parked("a", 60).await.unwrap(), None, "expired");
        assert_eq!(store.take_parked("a", 40).await.unwrap(), Some(parked));
        assert_eq!(
            store.take_parked("a", 40).await.unwrap(),
            None,
            "taken once"
        );

        store.prediction("a", prediction(9, 10)).await.unwrap();
        assert_eq!(store.purge(50, 0).await.unwrap(), (1, 0));
        assert_eq!(store.predictions("a", 9, 9, 10).await.unwrap(), vec![]);
    }

    #[test]
    fn unknown_urls_are_refused_by_name() {
        let err = Store::open("postgresql-ish://x").unwrap_err();
        assert!(err.to_string().contains("postgresql-ish://x"), "{err}");
    }
}
