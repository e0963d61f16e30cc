//! What the server's error replies mean to the driver: which codes say
//! "try again", and the error a waiter gets for the rest.

use chat_protocol::ErrorCode;

use crate::ClientError;

/// Codes that mean "try again" (docs/protocol.md, error codes).
pub(super) fn is_transient(code: &str) -> bool {
    [
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
    ]
    .iter()
    .any(|c| c.as_str() == code)
}

pub(super) fn server_error(code: &str, message: &str) -> ClientError {
    ClientError::Server {
        code: code.into(),
        message: message.into(),
    }
}
