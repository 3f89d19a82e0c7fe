//! The service's errors: protocol errors sent on a WebSocket (with their close codes), and
//! HTTP errors (with their statuses). One mapping from error kind to code lives here.

use axum::extract::rejection::QueryRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use costream_engine::{OpenError, SubmitError};
use costream_proto::v1::{self, server_message, ErrorCode};

use crate::wire::message;

/// WebSocket close codes (RFC 6455 §7.4.1).
pub mod close {
    /// The stream ended normally.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (drain).
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A limit or policy was violated (authentication, quota, duration, idle).
    pub const POLICY: u16 = 1008;
    /// A message exceeded the hard size cap.
    pub const TOO_BIG: u16 = 1009;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
    /// The server is full; try again later.
    pub const TRY_LATER: u16 = 1013;
}

/// An error answered on a stream's WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolError {
    /// Its code.
    pub code: ErrorCode,
    /// What is wrong, naming the field, limit or value.
    pub message: String,
    /// The frame concerned, if any.
    pub seq: Option<u64>,
    /// The close code that follows, or `None` if the connection stays open.
    close: Option<u16>,
}

impl ProtocolError {
    /// An error about the connection or stream as a whole.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            message: message.into(),
            seq: None,
            close: default_close(code),
        }
    }

    /// An error about one frame.
    pub fn frame(code: ErrorCode, seq: u64, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            message: message.into(),
            seq: Some(seq),
            close: default_close(code),
        }
    }

    /// The same error, followed by closing the connection with `code` (a FRAME_TOO_LARGE
    /// past the hard size cap, say, which is otherwise not fatal).
    pub fn closing_with(self, code: u16) -> ProtocolError {
        ProtocolError {
            close: Some(code),
            ..self
        }
    }

    /// The close code that follows this error, or `None` if the connection stays open.
    pub fn close_code(&self) -> Option<u16> {
        self.close
    }

    /// The wire message.
    pub fn to_message(&self) -> v1::ServerMessage {
        message(server_message::Msg::Error(v1::Error {
            code: self.code as i32,
            message: self.message.clone(),
            seq: self.seq,
            fatal: self.close_code().is_some(),
        }))
    }
}

/// The close code that follows an error of `code`, unless the error says otherwise.
fn default_close(code: ErrorCode) -> Option<u16> {
    match code {
        ErrorCode::Unauthenticated | ErrorCode::MaxDuration | ErrorCode::IdleTimeout => {
            Some(close::POLICY)
        }
        ErrorCode::ShuttingDown => Some(close::GOING_AWAY),
        ErrorCode::Internal => Some(close::INTERNAL),
        ErrorCode::Unspecified
        | ErrorCode::BadMessage
        | ErrorCode::UnexpectedMessage
        | ErrorCode::UnknownModel
        | ErrorCode::BadOptions
        | ErrorCode::BadStreamId
        | ErrorCode::Capacity
        | ErrorCode::BadFrame
        | ErrorCode::BadSeq
        | ErrorCode::FrameTooLarge
        | ErrorCode::RateLimited
        | ErrorCode::QueueFull
        | ErrorCode::QuotaExceeded
        | ErrorCode::NotStored => None,
    }
}

impl From<OpenError> for ProtocolError {
    fn from(e: OpenError) -> Self {
        let code = match &e {
            OpenError::UnknownModel { .. } => ErrorCode::UnknownModel,
            OpenError::Full { .. } => ErrorCode::Capacity,
            OpenError::DuplicateId(_) | OpenError::InvalidId(_) => ErrorCode::BadStreamId,
            OpenError::Snapshot(_) => ErrorCode::Internal,
        };
        ProtocolError::new(code, e.to_string())
    }
}

/// The protocol error for a frame the engine refused.
pub fn submit_error(seq: u64, e: &SubmitError) -> ProtocolError {
    let code = match e {
        SubmitError::Frame(_) => ErrorCode::BadFrame,
        SubmitError::Backpressure { .. } | SubmitError::Busy => ErrorCode::QueueFull,
        SubmitError::Ended => ErrorCode::UnexpectedMessage,
    };
    ProtocolError::frame(code, seq, e.to_string())
}

/// An HTTP error: a status and a JSON body `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    /// 404 for a thing that does not exist.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// 400 for a bad parameter.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// 401 for a missing or invalid API key.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: message.into(),
        }
    }

    /// 500 for a server fault.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: message.into(),
        }
    }
}

/// A query string that does not parse (`from=abc`, `limit=-1`) is a 400 with the JSON error
/// body like every other bad parameter, naming the parameter and why.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

/// The body of every HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `bad_request`, `not_found`, `unauthenticated`, `internal`.
    pub code: String,
    /// What is wrong, naming the parameter and value.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
