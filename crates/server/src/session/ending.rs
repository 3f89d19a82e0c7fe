//! How a connection ends: errors sent to the client, the stream's summary and end record,
//! and saving a stream's state (for `resume`) when its connection goes away.

use costream_engine::StreamSummary;
use costream_proto::v1::{self, server_message::Msg, ErrorCode};

use super::stream::{Ended, OpenStream};
use super::{open, Connection, Forwarder};
use crate::error::{close, ProtocolError};
use crate::store::now_ms;
use crate::wire::message;

impl Connection {
    /// Sends non-fatal errors (counted by code).
    pub(super) async fn send_errors(&self, errors: Vec<ProtocolError>) {
        for error in errors {
            self.app.metrics.error(error.code.as_str_name());
            self.out.send(&error.to_message()).await;
        }
    }

    /// Sends a fatal error and closes with its code.
    pub(super) async fn fatal(&self, error: ProtocolError) {
        self.app.metrics.error(error.code.as_str_name());
        self.out.send(&error.to_message()).await;
        let code = error.close_code().unwrap_or(close::PROTOCOL);
        self.out.close(code, &error.message).await;
    }

    /// Saves the open stream's state for `resume` (after the frames handed to the engine),
    /// ends it, and closes the connection with `code`.
    pub(super) async fn save_and_close(
        &mut self,
        forwarder: Option<Forwarder>,
        code: u16,
        reason: &str,
    ) {
        // A stream that was ending keeps the engine's reason; another is saved if it can be.
        let (end_reason, saved) = match &self.stream {
            Some(stream) if !stream.ending => match open::snapshot(stream).await {
                Some(saved) => (Some("disconnected"), Some(saved)),
                None => (Some("abandoned"), None),
            },
            _ => (None, None),
        };
        if let Some(stream) = &mut self.stream {
            stream.end_now();
        }
        let stream = self.finish(forwarder, end_reason).await;
        // Saved only now, behind the stream's predictions and end in the store's queue, so a
        // resume that finds it also finds everything the stream stored; the stream stays
        // listed as open until then, so a resume never misses a state about to be saved.
        if let Some(saved) = saved {
            if let Err(e) = self.app.store.park(saved).await {
                tracing::error!(error = %e, "stream state not saved");
            }
        }
        drop(stream);
        self.out.close(code, reason).await;
    }

    /// Waits for the stream's last answers and records its end; returns the stream, which
    /// stays listed as open until dropped.
    pub(super) async fn finish(
        &mut self,
        forwarder: Option<Forwarder>,
        reason: Option<&str>,
    ) -> Option<OpenStream> {
        let ended = match forwarder {
            Some(task) => task.await.ok().flatten(),
            None => None,
        };
        self.finish_with(ended, reason).await
    }

    /// Sends the summary (the reason is the engine's unless `reason` overrides it) and
    /// stores the stream's end. A stream the engine ended on a failure is told `INTERNAL`
    /// first, ends with reason `fault` whatever `reason` says, and has its last good state
    /// (when the engine could read it) saved for `resume`.
    pub(super) async fn finish_with(
        &mut self,
        ended: Option<Ended>,
        reason: Option<&str>,
    ) -> Option<OpenStream> {
        let stream = self.stream.take()?;
        let (summary, failure) = match ended {
            Some(Ended { summary, failure }) => (Some(summary), failure),
            None => (None, None),
        };
        let reason = match (&failure, reason) {
            (Some(_), _) => "fault".to_string(),
            (None, Some(reason)) => reason.to_string(),
            (None, None) => summary.as_ref().map_or("shutdown", end_reason).to_string(),
        };
        if let Some(failure) = &failure {
            let saved = if failure.snapshot.is_some() {
                "its state before the failure is saved for resume"
            } else {
                "its state could not be saved"
            };
            let error = ProtocolError::new(
                ErrorCode::Internal,
                format!(
                    "the engine failed on this stream ({}); {saved}",
                    failure.message
                ),
            );
            self.send_errors(vec![error]).await;
        }
        let counts = stream.counts.total(Some(&stream.handle));
        let summary_message = Msg::Summary(v1::Summary {
            stream_id: stream.id().to_string(),
            reason: reason.clone(),
            frames_in: counts.frames_in,
            predicted: counts.predicted,
            filling: counts.filling,
            skipped: counts.skipped,
            dropped: counts.dropped,
            rejected: counts.rejected,
        });
        self.out.send(&message(summary_message)).await;
        if let Err(e) = self
            .app
            .store
            .end(stream.id(), now_ms(), &reason, counts)
            .await
        {
            tracing::error!(stream = stream.id(), error = %e, "stream end not stored");
        }
        // Behind the end in the store's queue, as when a connection drops.
        if let Some(snapshot) = failure.and_then(|f| f.snapshot) {
            if let Err(e) = self.app.store.park(open::parked(&stream, &snapshot)).await {
                tracing::error!(stream = stream.id(), error = %e, "stream state not saved");
            }
        }
        Some(stream)
    }
}

/// The engine's end reason as the protocol names it.
fn end_reason(summary: &StreamSummary) -> &'static str {
    use costream_engine::EndReason;
    match summary.reason {
        EndReason::Client => "client",
        EndReason::Idle => "idle",
        EndReason::Shutdown => "shutdown",
        EndReason::Abandoned => "abandoned",
        EndReason::Fault => "fault",
    }
}
