//! The worker's errors and the one place that decides what each means for
//! the JetStream message: retry later, or give up to the dead-letter stream.

use chat_store::StoreError;

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
    /// The notification webhook failed; `permanent`: it refused for good
    /// (a redirect, a 4xx), so trying again cannot help.
    #[error("webhook: {detail}")]
    Webhook { detail: String, permanent: bool },
    /// A background task the worker cannot do without died (`tasks`).
    #[error("task {0} died")]
    TaskDied(&'static str),
}

impl WorkerError {
    pub fn nats(e: impl std::fmt::Display) -> Self {
        Self::Nats(e.to_string())
    }

    pub fn webhook(detail: String, permanent: bool) -> Self {
        Self::Webhook { detail, permanent }
    }

    /// Whether another delivery could succeed. Permanent failures go to the
    /// dead-letter stream at once; transient ones are retried with backoff.
    /// What Postgres refuses as input is permanent (see
    /// [`StoreError::is_retryable`]): in a batch it fails every send, so the
    /// batch is split until the refused send is alone (`persist`).
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::BadEnvelope(_) | Self::RoomMissing => true,
            Self::Store(e) => !e.is_retryable(),
            Self::Webhook { permanent, .. } => *permanent,
            Self::Nats(_) | Self::Redis(_) | Self::Startup(_) | Self::TaskDied(_) => false,
        }
    }

    /// The error with its causes, for people: `Display` alone can stop
    /// short (a Postgres error shows as "db error", its message being the
    /// source). May span lines.
    pub fn detail(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            // Most layers already print their source; add only what is new.
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }

    /// Short, stable label for dead-letter headers, metrics and logs.
    /// Every label a failed send can carry (`label` of all but `Startup` and `TaskDied`),
    /// so its counters can start at zero.
    pub const SEND_FAILURE_LABELS: [&'static str; 6] = [
        "bad_envelope",
        "room_missing",
        "refused_by_store",
        "store",
        "nats",
        "redis",
    ];

    pub fn label(&self) -> &'static str {
        match self {
            Self::BadEnvelope(_) => "bad_envelope",
            Self::RoomMissing => "room_missing",
            Self::Store(e) if !e.is_retryable() => "refused_by_store",
            Self::Store(_) => "store",
            Self::Nats(_) => "nats",
            Self::Redis(_) => "redis",
            Self::Webhook {
                permanent: true, ..
            } => "webhook_refused",
            Self::Webhook { .. } => "webhook",
            Self::Startup(_) => "startup",
            Self::TaskDied(_) => "task_died",
        }
    }
}
