//! The service's limits and policies. The CLI fills them from flags and environment
//! variables; `/info` shows them; every refusal names the limit and the value.

use std::time::Duration;

use serde::Serialize;

use crate::auth::ApiKey;

/// What happens to a frame that arrives while its stream has `max_pending_frames` frames
/// unanswered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    /// Stop reading the connection until an answer frees a place (back-pressure reaches the
    /// client through TCP).
    Block,
    /// Keep up to `max_queued_frames` frames waiting in the server; beyond that the oldest
    /// waiting frame is dropped and answered with a `QUEUE_FULL` error.
    DropOldest,
}

impl QueuePolicy {
    /// The policy's name in flags, `/info` and `ready`.
    pub fn name(self) -> &'static str {
        match self {
            QueuePolicy::Block => "block",
            QueuePolicy::DropOldest => "drop_oldest",
        }
    }
}

impl std::str::FromStr for QueuePolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(QueuePolicy::Block),
            "drop_oldest" => Ok(QueuePolicy::DropOldest),
            other => Err(format!(
                "unknown queue policy `{other}`: use `block` or `drop_oldest`"
            )),
        }
    }
}

/// Per-stream and per-server limits.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Streams open at once on this server (all models).
    pub max_streams: usize,
    /// Largest WebSocket message, in bytes; larger frames are refused (`FRAME_TOO_LARGE`).
    pub max_frame_bytes: usize,
    /// Frames per second a stream may send, averaged over one second (0: no limit).
    pub max_frames_per_second: f64,
    /// What happens to a frame beyond the model's pending limit.
    pub queue_policy: QueuePolicy,
    /// Frames a stream may have waiting in the server under `drop_oldest`.
    pub max_queued_frames: usize,
    /// A connection that sends nothing (not even a keepalive) this long is closed.
    #[serde(rename = "idle_timeout_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub idle_timeout: Duration,
    /// A stream is ended this long after it started (zero: no limit).
    #[serde(rename = "max_stream_duration_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub max_stream_duration: Duration,
}

impl Limits {
    /// The largest WebSocket message read at all: a larger one closes the connection (1009)
    /// instead of being refused with `FRAME_TOO_LARGE`. Twice `max_frame_bytes` plus 1 MiB, so
    /// that a message somewhat over the limit is refused and the stream goes on.
    pub fn hard_message_cap(&self) -> usize {
        const SLACK: usize = 1 << 20;
        self.max_frame_bytes.saturating_mul(2).saturating_add(SLACK)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 256,
            max_frame_bytes: 4 << 20,
            max_frames_per_second: 0.0,
            queue_policy: QueuePolicy::Block,
            max_queued_frames: 8,
            idle_timeout: Duration::from_secs(60),
            max_stream_duration: Duration::ZERO,
        }
    }
}

/// Everything the service needs besides the engine and the store.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServerConfig {
    /// Per-stream and per-server limits.
    pub limits: Limits,
    /// How long a disconnected stream's state is kept for `resume`.
    #[serde(rename = "resume_window_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub resume_window: Duration,
    /// How long a drain waits for streams to finish before closing them.
    #[serde(rename = "drain_timeout_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub drain_timeout: Duration,
    /// Stored predictions older than this are deleted (zero: kept forever).
    #[serde(rename = "retention_ms", serialize_with = "millis")]
    #[schema(value_type = u64)]
    pub retention: Duration,
    /// Labels per prediction when a stream does not say.
    pub default_top_k: u32,
    /// API keys (names and quotas shown, tokens never); none: the server is open.
    pub api_keys: Vec<ApiKey>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            resume_window: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(10),
            retention: Duration::from_secs(7 * 24 * 3600),
            default_top_k: 5,
            api_keys: Vec::new(),
        }
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
