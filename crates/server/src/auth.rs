//! API keys: bearer tokens with per-key stream quotas. With no keys configured the server is
//! open; with keys, every `/v1` request and every stream needs one, and a key sees only the
//! streams it started.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use serde::Serialize;

/// One API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// The key's name, for logs, `/info` and stream ownership (never the token).
    pub name: String,
    /// The bearer token.
    #[serde(skip)]
    pub token: String,
    /// Streams the key may have open at once (`None`: only the server's limit).
    pub max_streams: Option<usize>,
}

impl ApiKey {
    /// Parses `NAME:TOKEN` or `NAME:TOKEN:MAX_STREAMS`.
    ///
    /// # Errors
    /// A message naming the entry (without its token) and what is wrong.
    pub fn parse(entry: &str) -> Result<ApiKey, String> {
        let mut parts = entry.trim().splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default();
        let quota = parts.next();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(format!(
                "API key `{name}`: the name must be letters, digits, '.', '_' or '-' (write NAME:TOKEN[:MAX_STREAMS])"
            ));
        }
        if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "API key `{name}`: the token must be at least 16 characters without spaces"
            ));
        }
        let max_streams = match quota {
            None => None,
            Some(q) => match q.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(format!(
                        "API key `{name}`: the stream quota `{q}` must be a positive integer"
                    ))
                }
            },
        };
        Ok(ApiKey {
            name: name.to_string(),
            token: token.to_string(),
            max_streams,
        })
    }

    /// Parses entries separated by newlines or commas; blank lines and `#` comments are
    /// skipped.
    ///
    /// # Errors
    /// The first bad entry, or a name used twice.
    pub fn parse_list(text: &str) -> Result<Vec<ApiKey>, String> {
        let mut keys: Vec<ApiKey> = Vec::new();
        for entry in text.split(['\n', ',']) {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let key = ApiKey::parse(entry)?;
            if keys.iter().any(|k| k.name == key.name) {
                return Err(format!("API key `{}` is listed twice", key.name));
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// Who made a request: a key's name and quota, or nobody when the server is open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// The key's name; empty on an open server.
    pub name: String,
    /// The key's stream quota.
    pub max_streams: Option<usize>,
}

impl Principal {
    /// Whether this principal may see a stream started by `owner`.
    pub fn owns(&self, owner: &str) -> bool {
        self.name == owner
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was given.
    #[error("an API key is required: send `Authorization: Bearer TOKEN` (or ?access_token=TOKEN on the WebSocket URL)")]
    Missing,
    /// The token matches no key.
    #[error("the API key is not valid")]
    Invalid,
}

/// Finds the key of a request's bearer token (header, or `access_token` query parameter for
/// browsers, which cannot set headers on a WebSocket).
///
/// # Errors
/// [`AuthError`] when keys are configured and the request has no valid one.
pub fn authenticate(
    keys: &[ApiKey],
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<Principal, AuthError> {
    if keys.is_empty() {
        return Ok(Principal::default());
    }
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = from_header
        .or_else(|| query.get("access_token").map(String::as_str))
        .ok_or(AuthError::Missing)?;
    keys.iter()
        .find(|k| same(k.token.as_bytes(), token.as_bytes()))
        .map(|k| Principal {
            name: k.name.clone(),
            max_streams: k.max_streams,
        })
        .ok_or(AuthError::Invalid)
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_and_refuses_bad_entries_without_echoing_tokens() {
        let keys =
            ApiKey::parse_list("# ops\nalice:0123456789abcdef:2\n\nbob:fedcba9876543210").unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].max_streams, Some(2));
        assert_eq!(keys[1].max_streams, None);
        let short = ApiKey::parse("carol:short").unwrap_err();
        assert!(
            short.contains("at least 16") && !short.contains("short`"),
            "{short}"
        );
        assert!(ApiKey::parse("d:0123456789abcdef:0")
            .unwrap_err()
            .contains("quota"));
        assert!(ApiKey::parse_list("a:0123456789abcdef,a:0123456789abcdeg")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn authenticates_by_header_or_query_parameter() {
        let keys = ApiKey::parse_list("alice:0123456789abcdef:2").unwrap();
        let mut headers = HeaderMap::new();
        let none = HashMap::new();
        assert_eq!(
            authenticate(&keys, &headers, &none),
            Err(AuthError::Missing)
        );
        headers.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdeX".parse().unwrap(),
        );
        assert_eq!(
            authenticate(&keys, &headers, &none),
            Err(AuthError::Invalid)
        );
        headers.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdef".parse().unwrap(),
        );
        assert_eq!(authenticate(&keys, &headers, &none).unwrap().name, "alice");
        let query = HashMap::from([("access_token".to_string(), "0123456789abcdef".to_string())]);
        assert_eq!(
            authenticate(&keys, &HeaderMap::new(), &query)
                .unwrap()
                .max_streams,
            Some(2)
        );
        assert_eq!(
            authenticate(&[], &HeaderMap::new(), &none),
            Ok(Principal::default())
        );
    }
}
