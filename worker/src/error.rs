//! The worker's errors and the one place that decides what each means for
//! the JetStream message: retry later, or give up to the dead-letter stream.

use chat_shared::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The envelope is not a valid protobuf `Envelope` or names a bad room.
    #[error("undecodable envelope: {0}")]
    BadEnvelope(String),
    /// The room was deleted (or never existed) after the gateway accepted the send.
    #[error("room does not exist")]
    RoomMissing,
    /// Postgres failed; the outcome of the transaction may be unknown.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("nats: {0}")]
    Nats(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot start: {0}")]
    Startup(String),
}

impl WorkerError {
    pub fn nats(e: impl std::fmt::Display) -> Self {
        Self::Nats(e.to_string())
    }

    /// Whether another delivery could succeed. Permanent failures go to the
    /// dead-letter stream at once; transient ones are retried with backoff.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::BadEnvelope(_) | Self::RoomMissing)
    }

    /// Short, stable label for dead-letter headers and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadEnvelope(_) => "bad_envelope",
            Self::RoomMissing => "room_missing",
            Self::Store(_) => "store",
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
            Self::Startup(_) => "startup",
        }
    }
}
