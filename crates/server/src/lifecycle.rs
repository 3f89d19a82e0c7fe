//! The server's lifecycle: [`serve`] runs the routes on a listener with the periodic upkeep
//! beside them (retention, the store's health), and drains on the shutdown signal: readiness
//! goes 503 and every stream is told `go_away`; streams that have not ended by the drain
//! timeout save their state (for `resume`) and close with 1001; the store commits everything
//! queued before `serve` returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::app::{App, Lifecycle};
use crate::{router, store};

/// Serves `app` on `listener` until `shutdown` completes, then drains (see the module docs).
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let maintenance = tokio::spawn(maintain(app.clone()));
    let store_watch = tokio::spawn(watch_store(app.clone()));
    let drained = drain_after(app.clone(), shutdown);
    // Answers are small writes right after small reads: without TCP_NODELAY, Nagle's
    // algorithm and the client's delayed ACK hold each answer until the next frame arrives.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(drained)
        .await;
    maintenance.abort();
    store_watch.abort();
    if let Err(e) = app.store.sync().await {
        tracing::error!(error = %e, "the prediction store did not confirm its last writes");
    }
    tracing::info!("stopped");
    result
}

/// Waits for `shutdown`, then drains: 503 and `go_away`; after the drain timeout (or when
/// every stream has ended) the remaining streams save their state and close.
async fn drain_after(app: Arc<App>, shutdown: impl Future<Output = ()>) {
    shutdown.await;
    let timeout = app.config.drain_timeout;
    tracing::info!(
        streams = app.live.len(),
        timeout_ms = timeout.as_millis() as u64,
        "draining"
    );
    app.lifecycle.send_replace(Lifecycle::Draining {
        deadline_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    });
    let deadline = tokio::time::Instant::now() + timeout;
    while !app.live.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.lifecycle.send_replace(Lifecycle::Closing);
    // Connections save their streams and close; a stuck one is left to the runtime's end.
    let _ = tokio::time::timeout(CLOSING_GRACE, app.connections.all_closed()).await;
}

/// How long connections have, after the drain timeout, to save their streams and close: the
/// server exits at most this long after the drain timeout (plus the store's last commit), so
/// an orchestrator's grace period must exceed the drain timeout by more than this.
pub const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// Once a second while the prediction store fails (readiness fails meanwhile), tries a
/// write of its own, so that readiness comes back when the database takes writes again
/// even if no stream writes.
async fn watch_store(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if !app.store.healthy() {
            match app.store.probe().await {
                Ok(()) => tracing::info!("the prediction store takes writes again"),
                Err(e) => tracing::warn!(error = %e, "the prediction store still fails"),
            }
        }
    }
}

/// Periodic upkeep, once a minute: deletes stored predictions and saved states past their
/// retention. (Idle streams need nothing here: each device thread reaps its own.)
async fn maintain(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = store::now_ms();
        let age = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let predictions_before = if app.config.retention.is_zero() {
            i64::MIN
        } else {
            now.saturating_sub(age(app.config.retention))
        };
        let parked_before = now.saturating_sub(age(app.config.resume_window));
        match app.store.purge(predictions_before, parked_before).await {
            Ok((0, 0)) => {}
            Ok((predictions, states)) => {
                tracing::info!(predictions, states, "deleted past retention");
            }
            Err(e) => tracing::error!(error = %e, "retention purge failed"),
        }
    }
}
