//! What every binary of the chat system agrees on: ids, NATS subjects and
//! streams, Redis keys, SQL, the error-code table, configuration loading,
//! the wire codec, tokens and telemetry.

pub mod auth;
pub mod cache;
pub mod codec;
pub mod config;
pub mod error_code;
pub mod health;
pub mod ids;
pub mod keys;
pub mod store;
pub mod streams;
pub mod subjects;
pub mod telemetry;

pub use error_code::ErrorCode;
pub use ids::{ClientMsgId, RoomId, Seq, UserId};

/// Milliseconds since the Unix epoch, the one clock format on the wire.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_millis() as i64
}
