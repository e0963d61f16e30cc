//! The wire contract of the chat system: roles and the rules of who may
//! change whom, validated ids, the frame codec,
//! the ingest envelope's decoder, the error-code table, NATS subjects and
//! Redis keys. No I/O: a client embedding this crate pulls in no database,
//! cache or telemetry stack.

pub mod access;
pub mod codec;
pub mod envelope;
pub mod error_code;
pub mod ids;
pub mod keys;
pub mod kind;
pub mod subjects;

pub use error_code::ErrorCode;
pub use ids::{ClientMsgId, RoomId, Seq, UserId};

/// Milliseconds since the Unix epoch, the one clock format on the wire.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_millis() as i64
}
