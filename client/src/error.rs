//! The client's one error type, shared by the raw socket and the resilient
//! client so that a caller matches one enum.

use tokio_tungstenite::tungstenite;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the upgrade with this HTTP status.
    #[error("handshake refused with HTTP {0}")]
    Refused(u16),
    #[error("websocket: {0}")]
    Ws(#[from] tungstenite::Error),
    #[error("undecodable server frame: {0}")]
    Decode(#[from] chat_protocol::codec::DecodeError),
    #[error("bad url: {0}")]
    Url(String),
    /// The gateway answered the request with an `error` frame that retrying
    /// cannot fix (`invalid_argument`, `forbidden`, `limit_exceeded`...).
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    /// The gateway kept refusing the send with `rate_limited` (the socket's
    /// or the user's send rate, or sends in flight) through
    /// `ClientOptions::rate_limited_attempts` tries: send less often. Sends
    /// queued after it go on.
    #[error("rate_limited: {0}")]
    RateLimited(String),
    /// The socket dropped before a request that is not resent (a ping) was answered.
    #[error("disconnected before the reply")]
    Disconnected,
    /// The client stopped for good (credentials refused, reconnect attempts
    /// used up); every request still waiting gets this.
    #[error("client stopped: {0}")]
    Stopped(String),
    /// The client was closed, or its task is gone.
    #[error("client closed")]
    Closed,
}

impl ClientError {
    /// The protocol error code, when the gateway refused the request.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Server { code, .. } => Some(code),
            Self::RateLimited(_) => Some(chat_protocol::ErrorCode::RateLimited.as_str()),
            _ => None,
        }
    }
}
