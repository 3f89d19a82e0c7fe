//! The costream service: the WebSocket streaming protocol at `/v1/stream`, the HTTP API,
//! the prediction store, limits, and a graceful drain.
//!
//! [`serve`] runs a server on a bound listener until its shutdown signal, then drains
//! ([`lifecycle`]); [`router`] gives its routes.
//!
//! # Layout
//! - [`config`]: limits and policies.
//! - [`app`]: the state every connection and handler shares.
//! - [`lifecycle`]: serving, draining, and the periodic upkeep.
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
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod openapi;
mod session;
pub mod store;
pub mod wire;

use std::sync::Arc;

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use app::{App, Lifecycle};
pub use config::{Limits, QueuePolicy, ServerConfig};
pub use lifecycle::{serve, CLOSING_GRACE};
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
