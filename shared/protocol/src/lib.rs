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

/// Milliseconds since the Unix epoch, the clock of every timestamp clients see.
pub fn now_ms() -> i64 {
    since_epoch().as_millis() as i64
}

/// Microseconds since the Unix epoch: stamps that stages of a send's way
/// are timed between, across processes.
pub fn now_us() -> i64 {
    since_epoch().as_micros() as i64
}

/// Seconds from a `now_us` stamp until now (0 if the clocks disagree).
pub fn secs_since_us(stamp_us: i64) -> f64 {
    (now_us() - stamp_us).max(0) as f64 / 1e6
}

fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
