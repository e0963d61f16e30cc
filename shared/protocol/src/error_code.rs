//! The one table of error codes: what a client reads in an `error` frame, the
//! HTTP status of a refused request and the WebSocket close code of a socket
//! closed for that reason.

/// A stable error code. `as_str` is part of the protocol: never rename one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The frame could not be decoded (bad JSON or protobuf, wrong field types).
    BadFrame,
    /// A well-formed frame of a kind this server does not handle.
    Unsupported,
    /// A field is present but invalid (bad room id, empty client_msg_id, body too long).
    InvalidArgument,
    /// Missing, malformed, badly signed, expired or reused credentials.
    Unauthorized,
    /// The user may not do this (not a member of the room, origin not allowed).
    Forbidden,
    /// The room (or the member a change names) does not exist.
    NotFound,
    /// The change would break a rule of the room's state (remove its last owner).
    Conflict,
    /// Too many requests in flight on this socket, or per second on it or its user.
    RateLimited,
    /// The message is over the configured size limit.
    TooLarge,
    /// A quota is used up (rooms joined at once, sockets per user or address).
    LimitExceeded,
    /// The socket did not read its messages fast enough and was closed; reconnect and resume.
    SlowConsumer,
    /// A dependency is down or the server is shutting down; retry later.
    Unavailable,
    /// The outcome is unknown within the deadline; resend with the same client_msg_id.
    Timeout,
    /// A bug or an unexpected failure.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        Self::BadFrame,
        Self::Unsupported,
        Self::InvalidArgument,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::Conflict,
        Self::RateLimited,
        Self::TooLarge,
        Self::LimitExceeded,
        Self::SlowConsumer,
        Self::Unavailable,
        Self::Timeout,
        Self::Internal,
    ];

    /// The code as it appears in `error` frames and JSON bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadFrame => "bad_frame",
            Self::Unsupported => "unsupported",
            Self::InvalidArgument => "invalid_argument",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::LimitExceeded => "limit_exceeded",
            Self::SlowConsumer => "slow_consumer",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// The code of `as_str`, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// HTTP status for a request refused with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadFrame | Self::InvalidArgument | Self::Unsupported => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::Conflict => 409,
            Self::TooLarge => 413,
            Self::RateLimited | Self::LimitExceeded => 429,
            Self::Internal => 500,
            Self::Unavailable | Self::SlowConsumer => 503,
            Self::Timeout => 504,
        }
    }

    /// WebSocket close code for a socket closed for this reason (RFC 6455 §7.4
    /// where one fits, the 4000 private range otherwise).
    pub fn close_code(self) -> u16 {
        match self {
            Self::TooLarge => 1009,
            Self::Internal => 1011,
            Self::Unavailable => 1012,
            Self::BadFrame
            | Self::Unsupported
            | Self::InvalidArgument
            | Self::Conflict
            | Self::LimitExceeded
            | Self::RateLimited => 1008,
            Self::Unauthorized => 4001,
            Self::Forbidden => 4003,
            Self::NotFound => 4004,
            Self::SlowConsumer => 4008,
            Self::Timeout => 4000,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
