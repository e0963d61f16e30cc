//! The gateway's errors, mapped once to protocol codes and HTTP responses.

use axum::{
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chat_proto::v1::{server_frame::Kind, Error as ErrorFrame};
use chat_protocol::{codec::DecodeError, ids::IdError, ErrorCode};
use chat_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("malformed frame: {0}")]
    BadFrame(#[from] DecodeError),
    #[error("frame kind not supported")]
    Unsupported,
    #[error("{0}")]
    InvalidId(#[from] IdError),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("no such room")]
    NotFound,
    /// A worker refused a command (`forbidden` by a rule, `conflict`, ...).
    #[error("{reason}")]
    Refused { code: ErrorCode, reason: String },
    #[error("too many sends in flight on this socket")]
    RateLimited,
    /// Over a send rate (`limits.send_rate_per_*`); names whose.
    #[error("sending faster than {0} may; slow down")]
    SendRate(&'static str),
    /// Over `limits.max_connections_per_user` or `_per_ip`, at the upgrade.
    #[error("{0}")]
    TooManySockets(&'static str),
    #[error("the commit was not confirmed in time; resend with the same client_msg_id")]
    Timeout,
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("the gateway has as many sockets as it may hold; try another")]
    AtCapacity,
    #[error("{0}")]
    LimitExceeded(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("nats: {0}")]
    Nats(String),
    #[error("cannot start: {0}")]
    Startup(String),
    /// A background task the gateway cannot do without died (`chat_tasks`).
    #[error("background task {0} died")]
    TaskDied(&'static str),
    /// A bug: a task serving a request panicked (caught, counted, logged).
    #[error("internal error while serving the request")]
    Panicked,
}

impl GatewayError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadFrame(_) => ErrorCode::BadFrame,
            Self::Unsupported => ErrorCode::Unsupported,
            Self::InvalidId(_) | Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound => ErrorCode::NotFound,
            Self::Refused { code, .. } => *code,
            Self::RateLimited | Self::SendRate(_) => ErrorCode::RateLimited,
            Self::Timeout => ErrorCode::Timeout,
            Self::LimitExceeded(_) | Self::TooManySockets(_) => ErrorCode::LimitExceeded,
            Self::ShuttingDown
            | Self::AtCapacity
            | Self::Store(_)
            | Self::Redis(_)
            | Self::Nats(_)
            | Self::Panicked => ErrorCode::Unavailable,
            Self::Startup(_) | Self::TaskDied(_) => ErrorCode::Internal,
        }
    }

    /// What a client may read: dependency failures stay in the logs.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Unavailable | ErrorCode::Internal => {
                tracing::warn!(error = %self, "request failed");
                "temporarily unavailable, retry".into()
            }
            _ => self.to_string(),
        }
    }

    /// The `error` frame a client gets for this.
    pub fn to_kind(&self) -> Kind {
        Kind::Error(ErrorFrame {
            code: self.code().as_str().into(),
            message: self.public_message(),
        })
    }

    pub fn nats(e: impl std::fmt::Display) -> Self {
        Self::Nats(e.to_string())
    }
}

impl From<JsonRejection> for GatewayError {
    fn from(e: JsonRejection) -> Self {
        Self::InvalidArgument(e.body_text())
    }
}

impl From<PathRejection> for GatewayError {
    fn from(e: PathRejection) -> Self {
        Self::InvalidArgument(e.body_text())
    }
}

impl From<QueryRejection> for GatewayError {
    fn from(e: QueryRejection) -> Self {
        Self::InvalidArgument(e.body_text())
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let code = self.code();
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "code": code.as_str(), "message": self.public_message() });
        (status, Json(body)).into_response()
    }
}
