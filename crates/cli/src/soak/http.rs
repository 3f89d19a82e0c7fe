//! The HTTP request the soak's check needs: a stream's stored predictions, paged.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Predictions asked for per request (the API's largest page).
const PAGE: u64 = 10_000;

/// `HOST:PORT` of a `ws://HOST:PORT/...` URL.
///
/// # Errors
/// A message for another kind of URL.
pub(super) fn base_of(url: &str) -> Result<String, String> {
    url.strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .filter(|host| !host.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("`{url}`: the soak needs a ws://HOST:PORT/v1/stream URL"))
}

/// The stored predictions of stream `id` (at most `frames`), as (sequence number, top-1
/// class), in order.
///
/// # Errors
/// A message when the server does not answer 200 with the documented JSON.
pub(super) async fn stored_predictions(
    base: &str,
    id: &str,
    frames: usize,
) -> Result<Vec<(u64, u32)>, String> {
    let mut stored = Vec::new();
    let mut from = 0;
    loop {
        let path = format!("/v1/streams/{id}/predictions?from={from}&limit={PAGE}");
        let body = get(base, &path).await?;
        let page: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}"))?;
        let predictions = page["predictions"]
            .as_array()
            .ok_or_else(|| format!("GET {path}: no `predictions` array"))?;
        for p in predictions {
            let seq = p["seq"].as_u64();
            let class = p["top_k"][0]["index"]
                .as_u64()
                .and_then(|c| u32::try_from(c).ok());
            match (seq, class) {
                (Some(seq), Some(class)) => stored.push((seq, class)),
                _ => {
                    return Err(format!(
                        "GET {path}: a prediction without seq or top_k: {p}"
                    ))
                }
            }
        }
        match stored.last() {
            Some(&(last, _)) if predictions.len() as u64 == PAGE && stored.len() < frames => {
                from = last + 1;
            }
            _ => return Ok(stored),
        }
    }
}

/// `GET path` over HTTP/1.1 (`Connection: close`); the body of a 200 answer.
async fn get(base: &str, path: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("GET {path}: {e}");
    let mut stream = TcpStream::connect(base).await.map_err(fail)?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(fail)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.map_err(fail)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP header"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return dechunk(body).ok_or_else(|| format!("GET {path}: a malformed chunked body"));
    }
    Ok(body.to_string())
}

/// A chunked body's content.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}
