//! The OpenAPI description of the HTTP API (generated from the handlers with utoipa), served
//! at `/docs/openapi.json` and as a page at `/docs`; `docs/openapi.json` in the repository is
//! the committed copy, which a test keeps current.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::http::{InfoBody, ModelView, ModelsBody, PredictionsBody, StreamView, StreamsBody};

/// The API's description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "costream",
        description = "A streaming continual-inference server. Streams run over the WebSocket at \
            /v1/stream (messages in proto/costream.proto, protocol in docs/protocol.md); this \
            API lists models and streams, serves stored predictions, and reports health and \
            metrics. With API keys configured, /v1 requests need `Authorization: Bearer TOKEN`."
    ),
    paths(
        crate::stream_socket,
        crate::http::models,
        crate::http::streams,
        crate::http::stream,
        crate::http::predictions,
        crate::http::info,
        crate::http::live,
        crate::http::ready,
        crate::http::metrics,
    ),
    components(schemas(
        ModelsBody, ModelView, StreamsBody, StreamView, PredictionsBody, InfoBody, ErrorBody,
        ErrorDetail
    )),
    modifiers(&BearerKeys),
    tags(
        (name = "streaming", description = "The WebSocket streaming protocol"),
        (name = "models", description = "Served models"),
        (name = "streams", description = "Open and stored streams and their predictions"),
        (name = "operations", description = "Health, metrics and configuration"),
    )
)]
pub struct ApiDoc;

/// Declares the `api_key` bearer scheme the paths refer to.
struct BearerKeys;

impl Modify for BearerKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The description as pretty-printed JSON (the committed `docs/openapi.json`).
pub fn json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the API description serialises; this is a bug");
    text.push('\n');
    text
}

/// `GET /docs/openapi.json`.
pub async fn spec() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], json()).into_response()
}

/// `GET /docs`: a page that lists the API from `/docs/openapi.json` (no external scripts).
pub async fn page() -> Html<&'static str> {
    Html(include_str!("openapi.html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/openapi.json` must be what the handlers describe; regenerate it with
    /// `COSTREAM_UPDATE_OPENAPI=1 cargo test -p costream-server openapi`.
    #[test]
    fn the_committed_openapi_json_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let current = json();
        if std::env::var_os("COSTREAM_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &current).expect("docs/openapi.json is writable");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi.json is stale: run COSTREAM_UPDATE_OPENAPI=1 cargo test -p costream-server openapi"
        );
        for path in [
            "/v1/stream",
            "/v1/models",
            "/v1/streams/{id}/predictions",
            "/metrics",
        ] {
            assert!(
                current.contains(&format!("\"{path}\"")),
                "{path} is missing"
            );
        }
    }
}
