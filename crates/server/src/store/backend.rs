//! What a database does for the store, and the store thread that drives one: consecutive
//! writes share a transaction, committed before any read and at the end of each batch. A
//! write is answered only once its transaction has committed; when any write of a
//! transaction fails (or its commit does), the whole transaction is rolled back, every write
//! in it is answered with the error, and the store is unhealthy until a write succeeds again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{ParkedStream, Request, StoreError, StoredCounts, StoredPrediction, StreamRecord};

/// Requests handled in one transaction at most.
const BATCH: usize = 4096;

/// A database's operations; errors are the database's messages.
pub(super) trait Backend {
    /// Runs `BEGIN`, `COMMIT` or `ROLLBACK`.
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
    /// Writes a row of its own (in the caller's transaction): whether the database takes
    /// writes again.
    fn probe(&mut self, now_ms: i64) -> Result<(), String>;
    /// Connects again if the connection to the database was lost.
    fn reconnect_if_lost(&mut self) -> Result<(), String>;
}

/// Handles requests until every handle is gone; `healthy` follows the last transaction.
pub(super) fn serve(
    mut db: impl Backend,
    mut queue: mpsc::Receiver<Request>,
    healthy: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut transaction = Transaction::default();
    while let Some(first) = queue.blocking_recv() {
        if let Err(e) = db.reconnect_if_lost() {
            tracing::warn!(error = %e, "prediction store: cannot reconnect to the database");
        }
        batch.push(first);
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        for request in batch.drain(..) {
            match request {
                Request::Write(write, answer) => transaction.write(&mut db, write, answer),
                read => {
                    transaction.finish(&mut db, &healthy);
                    handle_read(&mut db, read);
                }
            }
        }
        transaction.finish(&mut db, &healthy);
    }
}

/// A write the store thread does inside a transaction.
#[derive(Debug)]
pub(super) enum Write {
    /// Creates a stream's record (answered whether the id was new).
    Claim(StreamRecord),
    /// Marks a stream live again.
    Reopen(String),
    /// Records how a stream ended.
    End {
        stream_id: String,
        ended_ms: i64,
        reason: String,
        counts: StoredCounts,
    },
    /// Stores a prediction.
    Prediction(String, StoredPrediction),
    /// Saves a disconnected stream's state.
    Park(ParkedStream),
    /// Writes the health row: answers whether the database takes writes.
    Probe(i64),
}

/// Where a write's answer goes once its transaction ends: `Ok(true)` unless a claim found
/// its id taken.
pub(super) type Answer = Option<oneshot::Sender<Result<bool, StoreError>>>;

/// The open transaction: the writes done in it and who waits for their answers.
#[derive(Default)]
struct Transaction {
    open: bool,
    /// The first failure; later writes of the transaction are not run.
    failure: Option<String>,
    answers: Vec<(Answer, bool)>,
}

impl Transaction {
    fn write(&mut self, db: &mut impl Backend, write: Write, answer: Answer) {
        if !self.open {
            self.open = true;
            if let Err(e) = db.execute("BEGIN") {
                self.failure = Some(format!("BEGIN: {e}"));
            }
        }
        let (what, result) = match &write {
            _ if self.failure.is_some() => ("skipped", Ok(true)),
            Write::Claim(record) => ("claim", db.claim(record)),
            Write::Reopen(stream_id) => ("reopen", db.reopen(stream_id).map(|()| true)),
            Write::End {
                stream_id,
                ended_ms,
                reason,
                counts,
            } => (
                "end",
                db.end(stream_id, *ended_ms, reason, *counts).map(|()| true),
            ),
            Write::Prediction(stream_id, p) => ("insert", db.insert(stream_id, p).map(|()| true)),
            Write::Park(parked) => ("park", db.park(parked).map(|()| true)),
            Write::Probe(now_ms) => ("probe", db.probe(*now_ms).map(|()| true)),
        };
        match result {
            Ok(value) => self.answers.push((answer, value)),
            Err(e) => {
                self.failure = Some(format!("{what}: {e}"));
                self.answers.push((answer, false));
            }
        }
    }

    /// Commits (or, after a failure, rolls back) and answers every write of the transaction.
    fn finish(&mut self, db: &mut impl Backend, healthy: &AtomicBool) {
        if !self.open {
            return;
        }
        let failure = match self.failure.take() {
            Some(failure) => Some(failure),
            None => db.execute("COMMIT").err().map(|e| format!("COMMIT: {e}")),
        };
        if failure.is_some() {
            // A failed statement or commit may leave the transaction open; end it either way.
            let _ = db.execute("ROLLBACK");
        }
        healthy.store(failure.is_none(), Ordering::Relaxed);
        if let Some(failure) = &failure {
            tracing::error!(error = %failure, writes = self.answers.len(),
                "prediction store: a transaction failed and was rolled back; its writes are lost");
        }
        for (answer, value) in self.answers.drain(..) {
            if let Some(answer) = answer {
                let result = match &failure {
                    None => Ok(value),
                    Some(failure) => Err(StoreError::Database(failure.clone())),
                };
                let _ = answer.send(result);
            }
        }
        self.open = false;
    }
}

/// Sequence numbers are stored as signed 64-bit integers (the protocol refuses larger ones).
fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn handle_read(db: &mut impl Backend, request: Request) {
    let fault = StoreError::Database;
    match request {
        // Writes go through the transaction.
        Request::Write(..) => {}
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
        #[cfg(test)]
        Request::Execute(sql, reply) => {
            let _ = reply.send(db.execute(&sql).map_err(fault));
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
