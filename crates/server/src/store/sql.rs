//! The store's statements, shared by both backends: written with PostgreSQL's `$N`
//! parameters, which [`for_sqlite`] turns into SQLite's equivalent `?N`. Both databases take
//! `ON CONFLICT … DO UPDATE` and `DELETE … RETURNING`.

/// Creates a stream's record unless the id exists.
pub(super) const CLAIM: &str = "INSERT INTO streams (stream_id, owner, model, started_ms)
    VALUES ($1, $2, $3, $4) ON CONFLICT (stream_id) DO NOTHING";

/// Marks a stream live again.
pub(super) const REOPEN: &str =
    "UPDATE streams SET ended_ms = NULL, end_reason = NULL WHERE stream_id = $1";

/// Records a stream's end and counts.
pub(super) const END: &str = "UPDATE streams SET ended_ms = $2, end_reason = $3, frames_in = $4,
    predicted = $5, filling = $6, skipped = $7, dropped = $8, rejected = $9 WHERE stream_id = $1";

/// Stores or replaces a prediction.
pub(super) const INSERT: &str = "INSERT INTO predictions
    (stream_id, seq, pts, top_k, queue_us, compute_us, batch_size, created_ms)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (stream_id, seq) DO UPDATE SET pts = excluded.pts, top_k = excluded.top_k,
    queue_us = excluded.queue_us, compute_us = excluded.compute_us,
    batch_size = excluded.batch_size, created_ms = excluded.created_ms";

/// Saves or replaces a stream's state.
pub(super) const PARK: &str = "INSERT INTO parked (stream_id, model, options, snapshot, parked_ms)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (stream_id) DO UPDATE SET model = excluded.model, options = excluded.options,
    snapshot = excluded.snapshot, parked_ms = excluded.parked_ms";

/// Removes and returns a state saved at or after a time.
pub(super) const TAKE_PARKED: &str = "DELETE FROM parked WHERE stream_id = $1 AND parked_ms >= $2
    RETURNING stream_id, model, options, snapshot, parked_ms";

/// A stream's record.
pub(super) const STREAM: &str = "SELECT stream_id, owner, model, started_ms, ended_ms, end_reason,
    frames_in, predicted, filling, skipped, dropped, rejected FROM streams WHERE stream_id = $1";

/// A stream's predictions in a sequence range, in order.
pub(super) const PREDICTIONS: &str = "SELECT seq, pts, top_k, queue_us, compute_us, batch_size,
    created_ms FROM predictions WHERE stream_id = $1 AND seq >= $2 AND seq <= $3
    ORDER BY seq LIMIT $4";

/// Deletes predictions older than a time.
pub(super) const PURGE_PREDICTIONS: &str = "DELETE FROM predictions WHERE created_ms < $1";

/// Deletes saved states older than a time.
pub(super) const PURGE_PARKED: &str = "DELETE FROM parked WHERE parked_ms < $1";

/// Writes the store's health row (a probe that the database takes writes).
pub(super) const PROBE: &str = "INSERT INTO store_health (id, checked_ms) VALUES (1, $1)
    ON CONFLICT (id) DO UPDATE SET checked_ms = excluded.checked_ms";

/// A statement with SQLite's numbered parameters (`?N` binds by index, as `$N` does in
/// PostgreSQL; SQLite's own `$N` would be a named parameter numbered by first use).
pub(super) fn for_sqlite(sql: &str) -> String {
    sql.replace('$', "?")
}
