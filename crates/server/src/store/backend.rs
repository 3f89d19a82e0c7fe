//! What a database does for the store, and the store thread that drives one: consecutive
//! writes share a transaction, committed before any read and at the end of each batch.

use tokio::sync::mpsc;

use super::{ParkedStream, Request, StoredCounts, StoredPrediction, StreamRecord};

/// Requests handled in one transaction at most.
const BATCH: usize = 4096;

/// A database's operations; errors are the database's messages.
pub(super) trait Backend {
    /// Runs `BEGIN` or `COMMIT`.
    fn execute(&mut self, sql: &str) -> Result<(), String>;
    /// Creates a stream's record; `false` if the id exists.
    fn claim(&mut self, record: &StreamRecord) -> Result<bool, String>;
    /// Clears a stream's end (it runs again).
    fn reopen(&mut self, stream_id: &str) -> Result<(), String>;
    /// Records a stream's end and counts.
    fn end(
        &mut self,
        stream_id: &str,
        ended_ms: i64,
        reason: &str,
        counts: StoredCounts,
    ) -> Result<(), String>;
    /// Stores (or replaces) a prediction.
    fn insert(&mut self, stream_id: &str, prediction: &StoredPrediction) -> Result<(), String>;
    /// Saves (or replaces) a stream's state.
    fn park(&mut self, parked: &ParkedStream) -> Result<(), String>;
    /// Removes and returns a state saved at or after `not_before_ms`.
    fn take_parked(
        &mut self,
        stream_id: &str,
        not_before_ms: i64,
    ) -> Result<Option<ParkedStream>, String>;
    /// A stream's record.
    fn stream(&mut self, stream_id: &str) -> Result<Option<StreamRecord>, String>;
    /// Predictions with `from <= seq <= to`, in order, at most `limit`.
    fn predictions(
        &mut self,
        stream_id: &str,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<StoredPrediction>, String>;
    /// Deletes old predictions and saved states; returns how many of each.
    fn purge(
        &mut self,
        predictions_before_ms: i64,
        parked_before_ms: i64,
    ) -> Result<(usize, usize), String>;
}

/// Handles requests until every handle is gone.
pub(super) fn serve(mut db: impl Backend, mut queue: mpsc::Receiver<Request>) {
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
                in_transaction = logged("BEGIN", db.execute("BEGIN"));
            } else if !writes && in_transaction {
                logged("COMMIT", db.execute("COMMIT"));
                in_transaction = false;
            }
            handle(&mut db, request);
        }
        if in_transaction {
            logged("COMMIT", db.execute("COMMIT"));
        }
    }
}

/// Logs a failed write; `true` if it succeeded.
fn logged(what: &str, result: Result<(), String>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = e, "prediction store: {what} failed");
            false
        }
    }
}

/// Sequence numbers are stored as signed 64-bit integers (the protocol refuses larger ones).
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn handle(db: &mut impl Backend, request: Request) {
    let fault = super::StoreError::Database;
    match request {
        Request::Claim(record, reply) => {
            let _ = reply.send(db.claim(&record).map_err(fault));
        }
        Request::Reopen(stream_id) => {
            logged("reopen", db.reopen(&stream_id));
        }
        Request::End {
            stream_id,
            ended_ms,
            reason,
            counts,
        } => {
            logged("end", db.end(&stream_id, ended_ms, &reason, counts));
        }
        Request::Prediction(stream_id, p) => {
            logged("insert", db.insert(&stream_id, &p));
        }
        Request::Park(parked) => {
            logged("park", db.park(&parked));
        }
        Request::TakeParked {
            stream_id,
            not_before_ms,
            reply,
        } => {
            let _ = reply.send(db.take_parked(&stream_id, not_before_ms).map_err(fault));
        }
        Request::Stream(stream_id, reply) => {
            let _ = reply.send(db.stream(&stream_id).map_err(fault));
        }
        Request::Predictions {
            stream_id,
            from,
            to,
            limit,
            reply,
        } => {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let result = db.predictions(&stream_id, signed(from), signed(to), limit);
            let _ = reply.send(result.map_err(fault));
        }
        Request::Purge {
            predictions_before_ms,
            parked_before_ms,
            reply,
        } => {
            let _ = reply.send(
                db.purge(predictions_before_ms, parked_before_ms)
                    .map_err(fault),
            );
        }
        Request::Sync(reply) => {
            let _ = reply.send(());
        }
    }
}

/// A count read from a signed column (negative values cannot be stored; read as 0).
pub(super) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count for a signed column.
pub(super) fn count(value: u64) -> i64 {
    signed(value)
}

/// The top-k labels as stored (JSON text).
pub(super) fn top_k_text(p: &StoredPrediction) -> String {
    serde_json::to_string(&p.top_k)
        .expect("labels and scores always serialise to JSON; this is a bug")
}
