//! The costream service: the WebSocket streaming protocol at `/v1/stream`, the HTTP API,
//! the prediction store, limits, and a graceful drain.
//!
//! [`serve`] runs a server on a bound listener until its shutdown signal, then drains:
//! readiness goes 503 and every stream is told `go_away`; streams that have not ended by the
//! drain timeout save their state (for `resume`) and close with 1001; the store commits
//! everything queued before `serve` returns.
//!
//! # Layout
//! - [`config`]: limits and policies.
//! - [`app`]: the shared state and the server's lifecycle.
//! - [`auth`]: API keys and stream quotas.
//! - [`session`] (private): one WebSocket connection, the protocol's state machine.
//! - [`http`]: the HTTP API.
//! - [`store`]: the prediction store.
//! - [`live`]: the streams open now.
//! - [`metrics`]: Prometheus metrics.
//! - [`openapi`]: the API's OpenAPI description and `/docs`.
//! - [`demo`]: the live page at `/`.
//! - [`wire`]: conversions between wire messages and engine types.
//! - [`error`]: protocol and HTTP errors, close codes.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod app;
pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod http;
pub mod live;
pub mod metrics;
pub mod openapi;
mod session;
pub mod store;
pub mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

pub use app::{App, Lifecycle};
pub use config::{Limits, QueuePolicy, ServerConfig};
pub use store::{Store, StoreError};

/// The routes of a server sharing `app`.
pub fn router(app: Arc<App>) -> Router {
    // The HTTP API needs a key when keys are configured; the WebSocket answers a missing key
    // in the protocol (browsers cannot read an HTTP refusal of an upgrade).
    let api = Router::new()
        .route("/v1/models", get(http::models))
        .route("/v1/streams", get(http::streams))
        .route("/v1/streams/{id}", get(http::stream))
        .route("/v1/streams/{id}/predictions", get(http::predictions))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_key));
    Router::new()
        .route("/v1/stream", get(stream_socket))
        .merge(api)
        .route("/info", get(http::info))
        .route("/health/live", get(http::live))
        .route("/health/ready", get(http::ready))
        .route("/metrics", get(http::metrics))
        .route("/", get(demo::page))
        .route("/demo/app.js", get(demo::script))
        .route("/demo/microphone.js", get(demo::microphone))
        .route("/demo/style.css", get(demo::style))
        .route("/docs", get(openapi::page))
        .route("/docs/openapi.json", get(openapi::spec))
        .with_state(app)
}

/// The query string's parameters, or the 400 for one that does not parse.
fn query_parameters(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, error::ApiError> {
    query
        .map(|Query(parameters)| parameters)
        .map_err(Into::into)
}

/// Authenticates an HTTP API request and hands its [`auth::Principal`] to the handler.
async fn require_key(
    State(app): State<Arc<App>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let query = match query_parameters(query) {
        Ok(query) => query,
        Err(e) => return e.into_response(),
    };
    match auth::authenticate(&app.config.api_keys, request.headers(), &query) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => error::ApiError::unauthorized(e.to_string()).into_response(),
    }
}

/// `GET /v1/stream`: upgrades to the streaming protocol.
#[utoipa::path(get, path = "/v1/stream", tag = "streaming",
    description = "Upgrades to a WebSocket carrying one stream: ClientMessage and ServerMessage \
        of proto/costream.proto as protobuf in binary frames or canonical JSON in text frames \
        (docs/protocol.md). With API keys configured, send `Authorization: Bearer TOKEN` or \
        `?access_token=TOKEN`; a missing or invalid key is answered UNAUTHENTICATED in the protocol.",
    params(("access_token" = Option<String>, Query, description = "An API key, for clients that cannot set headers")),
    responses((status = 101, description = "Switching to the WebSocket protocol")),
    security((), ("api_key" = [])))]
async fn stream_socket(
    State(app): State<Arc<App>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let query = match query_parameters(query) {
        Ok(query) => query,
        Err(e) => return e.into_response(),
    };
    let principal = auth::authenticate(&app.config.api_keys, &headers, &query);
    let cap = app.config.limits.hard_message_cap();
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| session::serve(socket, app, principal))
}

/// Serves `app` on `listener` until `shutdown` completes, then drains (see the crate docs).
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
