//! The HTTP API: served models, open and stored streams, stored predictions (JSON or CSV),
//! `/info`, and the health probes.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use costream_engine::ModelInfo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::app::App;
use crate::auth::Principal;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::live::LiveView;
use crate::store::{StoredPrediction, StreamRecord};

/// Predictions returned by one query at most.
pub const MAX_PREDICTIONS_PER_QUERY: usize = 100_000;

/// A served model as `GET /v1/models` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelView {
    /// The name clients ask for.
    pub name: String,
    /// Its family.
    pub family: &'static str,
    /// The family's variant.
    pub variant: String,
    /// Where it runs.
    pub device: String,
    /// What each frame must be.
    pub input: &'static str,
    /// The network's input frame shape `[C, H, W]`.
    pub frame_shape: [usize; 3],
    /// Audio models: the samples per second a frame's audio must have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Audio models: the samples a frame must have (one chunk).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_samples: Option<usize>,
    /// Source frames per model frame at training time.
    pub frame_stride: usize,
    /// Frames consumed before the first prediction.
    pub delay: usize,
    /// Input frames per prediction once filled.
    pub stride: usize,
    /// Frames the network sees per prediction.
    pub receptive_field: usize,
    /// Output classes.
    pub classes: usize,
    /// Streams stepped at once.
    pub capacity: usize,
    /// Streams that may wait for a slot.
    pub backlog: usize,
    /// Frames a stream may have unanswered.
    pub max_pending_frames: usize,
    /// Streams stepped in one batch at most.
    pub max_batch: usize,
    /// How long a ready frame waits for others to join its batch, in microseconds.
    pub max_wait_us: u64,
    /// The largest image a frame may carry (encoded or raw), in pixels.
    pub max_image_pixels: usize,
    /// Device memory of one stream's state, in bytes.
    pub state_bytes_per_stream: usize,
}

impl ModelView {
    /// The view of a served model.
    pub fn of(m: &ModelInfo) -> ModelView {
        ModelView {
            name: m.name.clone(),
            family: m.family.name(),
            variant: m.variant.clone(),
            device: m.device.to_string(),
            input: m.input.describe(),
            frame_shape: m.input.frame_shape(),
            sample_rate: m.input.audio().map(|(rate, _)| rate),
            chunk_samples: m.input.audio().map(|(_, chunk)| chunk),
            frame_stride: m.frame_stride,
            delay: m.timing.delay,
            stride: m.timing.stride,
            receptive_field: m.timing.receptive_field,
            classes: m.labels.len(),
            capacity: m.slots.capacity,
            backlog: m.slots.backlog,
            max_pending_frames: m.slots.max_pending_frames,
            max_batch: m.batch.max_batch,
            max_wait_us: u64::try_from(m.batch.max_wait.as_micros()).unwrap_or(u64::MAX),
            max_image_pixels: m.max_image_pixels,
            state_bytes_per_stream: m.state_bytes_per_stream,
        }
    }
}

/// The answer of `GET /v1/models`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsBody {
    /// Every served model, in configuration order.
    pub models: Vec<ModelView>,
}

/// `GET /v1/models`.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "The served models", body = ModelsBody),
               (status = 401, description = "No valid API key", body = ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn models(State(app): State<Arc<App>>) -> Json<ModelsBody> {
    Json(ModelsBody {
        models: app.engine.models().map(ModelView::of).collect(),
    })
}

/// The answer of `GET /v1/streams`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamsBody {
    /// The caller's open streams, by id.
    pub streams: Vec<LiveView>,
}

/// `GET /v1/streams`: the caller's streams open now.
#[utoipa::path(get, path = "/v1/streams", tag = "streams",
    responses((status = 200, description = "The caller's open streams", body = StreamsBody),
               (status = 401, description = "No valid API key", body = ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn streams(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
) -> Json<StreamsBody> {
    Json(StreamsBody {
        streams: app.live.list_owned(&principal.name),
    })
}

/// A stream as `GET /v1/streams/{id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StreamView {
    /// Open on this server now.
    Open(LiveView),
    /// Ended, or disconnected with its state saved (`end_reason` = `disconnected`).
    Stored(StreamRecord),
}

/// `GET /v1/streams/{id}`.
///
/// # Errors
/// 404 for a stream this server never ran; 500 when the store fails.
#[utoipa::path(get, path = "/v1/streams/{id}", tag = "streams",
    params(("id" = String, Path, description = "The stream's id")),
    responses((status = 200, description = "The stream, open or stored", body = StreamView),
               (status = 404, description = "No such stream of the caller", body = ErrorBody),
               (status = 401, description = "No valid API key", body = ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn stream(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<StreamView>, ApiError> {
    if let Some(live) = app.live.get_owned(&id, &principal.name) {
        return Ok(Json(StreamView::Open(live)));
    }
    match app.store.stream(&id).await {
        Ok(Some(record)) if principal.owns(&record.owner) => Ok(Json(StreamView::Stored(record))),
        Ok(_) => Err(ApiError::not_found(format!(
            "no stream `{id}` on this server"
        ))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// The query of `GET /v1/streams/{id}/predictions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PredictionsQuery {
    /// The first sequence number (default 0).
    pub from: Option<u64>,
    /// The last sequence number (default: all).
    pub to: Option<u64>,
    /// At most this many predictions (default and maximum 100,000).
    pub limit: Option<usize>,
    /// `json` or `csv` (default: from the `Accept` header, else JSON).
    pub format: Option<String>,
}

/// `GET /v1/streams/{id}/predictions?from=&to=&limit=&format=`.
///
/// # Errors
/// 400 for a query that does not parse or a bad range, limit or format, 404 for an unknown
/// stream, 500 when the store fails.
#[utoipa::path(get, path = "/v1/streams/{id}/predictions", tag = "streams",
    params(("id" = String, Path, description = "The stream's id"), PredictionsQuery),
    responses((status = 200, description = "Stored predictions in sequence order (JSON, or CSV with one row per rank)",
               content((PredictionsBody = "application/json"), (String = "text/csv"))),
               (status = 400, description = "A query that does not parse, or a bad range, limit or format", body = ErrorBody),
               (status = 404, description = "No such stream of the caller", body = ErrorBody),
               (status = 401, description = "No valid API key", body = ErrorBody)),
    security((), ("api_key" = [])))]
pub async fn predictions(
    State(app): State<Arc<App>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    query: Result<Query<PredictionsQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let from = query.from.unwrap_or(0);
    let to = query.to.unwrap_or(i64::MAX as u64);
    if from > to {
        return Err(ApiError::bad_request(format!(
            "from = {from} exceeds to = {to}"
        )));
    }
    let limit = query.limit.unwrap_or(MAX_PREDICTIONS_PER_QUERY);
    if limit == 0 || limit > MAX_PREDICTIONS_PER_QUERY {
        return Err(ApiError::bad_request(format!(
            "limit = {limit}: use 1 to {MAX_PREDICTIONS_PER_QUERY}"
        )));
    }
    let wants_csv = match query.format.as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format = `{other}`: use json or csv"
            )))
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/csv")),
    };
    let known = app
        .store
        .stream(&id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .is_some_and(|r| principal.owns(&r.owner));
    if !known {
        return Err(ApiError::not_found(format!(
            "no stream `{id}` on this server"
        )));
    }
    // Predictions queued for storage before this request are included.
    let stored = async {
        app.store.sync().await?;
        app.store.predictions(&id, from, to, limit).await
    }
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    if wants_csv {
        let body = csv(&stored);
        Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
    } else {
        Ok(Json(PredictionsBody {
            stream_id: id,
            predictions: stored,
        })
        .into_response())
    }
}

/// The JSON answer of `GET /v1/streams/{id}/predictions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PredictionsBody {
    /// The stream's id.
    pub stream_id: String,
    /// Its stored predictions in the range, by sequence number.
    pub predictions: Vec<StoredPrediction>,
}

/// One row per (prediction, rank): `seq,pts,created_ms,queue_us,compute_us,batch_size,rank,
/// index,label,score`.
fn csv(predictions: &[StoredPrediction]) -> String {
    let mut out =
        String::from("seq,pts,created_ms,queue_us,compute_us,batch_size,rank,index,label,score\n");
    for p in predictions {
        for (rank, l) in p.top_k.iter().enumerate() {
            let label = if l.label.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", l.label.replace('"', "\"\""))
            } else {
                l.label.clone()
            };
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                p.seq,
                p.pts,
                p.created_ms,
                p.queue_us,
                p.compute_us,
                p.batch_size,
                rank + 1,
                l.index,
                label,
                l.score
            ));
        }
    }
    out
}

/// The answer of `GET /info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct InfoBody {
    /// `costream`.
    pub name: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// The served models.
    pub models: Vec<ModelView>,
    /// Every limit and policy.
    pub config: ServerConfig,
    /// The prediction store (no credentials).
    pub store: String,
    /// Streams open now.
    pub streams_open: usize,
    /// Seconds since start-up.
    pub uptime_s: u64,
}

/// `GET /info`: the version, the models, every limit, the store.
#[utoipa::path(get, path = "/info", tag = "operations",
    responses((status = 200, description = "Version, models, limits and store", body = InfoBody)))]
pub async fn info(State(app): State<Arc<App>>) -> Json<InfoBody> {
    Json(InfoBody {
        name: "costream",
        version: env!("CARGO_PKG_VERSION"),
        models: app.engine.models().map(ModelView::of).collect(),
        config: app.config.clone(),
        store: app.store.describe().to_string(),
        streams_open: app.live.len(),
        uptime_s: app.started.elapsed().as_secs(),
    })
}

/// The content type of `GET /metrics`: OpenMetrics text, which Prometheus reads.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", body = String,
               content_type = OPENMETRICS)))]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app
        .metrics
        .encode(&app.live, app.engine.models().map(|m| m.name.as_str()));
    ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response()
}

/// `GET /health/live`: the process answers.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process answers", body = String)))]
pub async fn live() -> &'static str {
    "ok"
}

/// `GET /health/ready`: 200 while accepting streams; 503 while draining or while the
/// prediction store fails to take writes (checked every second until it does again).
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, description = "Accepting streams: `ready`", body = String),
              (status = 503, description = "`draining`, or `store failing` while the prediction store does not take writes", body = String)))]
pub async fn ready(State(app): State<Arc<App>>) -> (StatusCode, &'static str) {
    if !app.serving() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if !app.store.healthy() {
        (StatusCode::SERVICE_UNAVAILABLE, "store failing")
    } else {
        (StatusCode::OK, "ready")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredLabel;

    #[test]
    fn csv_has_one_row_per_rank_and_quotes_labels() {
        let p = StoredPrediction {
            seq: 4,
            pts: 160,
            top_k: vec![
                StoredLabel {
                    index: 2,
                    label: "a, \"b\"".into(),
                    score: 0.5,
                },
                StoredLabel {
                    index: 0,
                    label: "c".into(),
                    score: 0.25,
                },
            ],
            queue_us: 1,
            compute_us: 2,
            batch_size: 3,
            created_ms: 9,
        };
        let text = csv(&[p]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "4,160,9,1,2,3,1,2,\"a, \"\"b\"\"\",0.5");
        assert_eq!(lines[2], "4,160,9,1,2,3,2,0,c,0.25");
    }
}
