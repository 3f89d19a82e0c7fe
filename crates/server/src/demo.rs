//! The live page at `/`: the camera or a video file streamed to `/v1/stream` as JPEG frames,
//! with the label, confidence bars, a timeline and the latency of each frame; or, for a voice
//! activity model, the microphone as 16-bit PCM chunks, with the speech probability and the
//! speech segments found. Plain HTML, CSS and JavaScript compiled into the binary (`demo/`);
//! nothing is loaded from elsewhere.

use axum::http::header;
use axum::response::IntoResponse;

/// What the page may load and connect to: only this server (the WebSocket and the microphone's
/// audio worklet included), and the camera or a chosen file as video.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
    media-src 'self' blob: mediastream:; img-src 'self' data: blob:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// The page, its script and its style sheet.
const INDEX_HTML: &str = include_str!("demo/index.html");
const APP_JS: &str = include_str!("demo/app.js");
const MICROPHONE_JS: &str = include_str!("demo/microphone.js");
const STYLE_CSS: &str = include_str!("demo/style.css");

/// A static part of the page with its media type.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
}

/// `GET /`: the page.
pub async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /demo/app.js`: the page's script.
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /demo/microphone.js`: the audio worklet that taps the microphone.
pub async fn microphone() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", MICROPHONE_JS)
}

/// `GET /demo/style.css`: the page's style sheet.
pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::Response;

    #[tokio::test]
    async fn each_part_has_its_media_type_and_the_strict_policy() {
        let parts: [(Response, &str); 4] = [
            (page().await.into_response(), "text/html"),
            (script().await.into_response(), "text/javascript"),
            (microphone().await.into_response(), "text/javascript"),
            (style().await.into_response(), "text/css"),
        ];
        for (response, media_type) in parts {
            let headers = response.headers();
            let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
            assert!(content_type.starts_with(media_type), "{content_type}");
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
        }
    }

    #[test]
    fn the_page_loads_only_its_own_parts_and_nothing_from_elsewhere() {
        assert!(INDEX_HTML.contains(r#"<script src="/demo/app.js" defer>"#));
        assert!(INDEX_HTML.contains(r#"<link rel="stylesheet" href="/demo/style.css">"#));
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("microphone.js", MICROPHONE_JS),
            ("style.css", STYLE_CSS),
        ] {
            for remote in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(remote), "{name} refers to {remote}");
            }
        }
    }
}
