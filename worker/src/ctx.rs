//! What storing a batch needs, built by `app` and shared by the lanes: the
//! modules that handle sends depend on this, not on `app`.

use async_nats::jetstream;
use chat_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;

use crate::{config::WorkerConfig, error::WorkerError, retry::Class};

/// What a batch needs; shared by the concurrent batches.
pub struct Ctx {
    pub config: WorkerConfig,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub store: Store,
    pub redis: ConnectionManager,
    pub metrics: PrometheusHandle,
}

impl Ctx {
    /// Hands a message that could not be stored to the retry policy.
    pub async fn fail(&self, msg: &jetstream::Message, room: &str, error: &WorkerError) {
        self.fail_after(msg, room, error, 1).await
    }

    /// As `fail`, for a message already tried `attempts` times in place.
    pub async fn fail_after(
        &self,
        msg: &jetstream::Message,
        room: &str,
        error: &WorkerError,
        attempts: u32,
    ) {
        let config = &self.config.retry;
        crate::retry::fail(&self.js, config, Class::Message, msg, room, error, attempts).await
    }

    /// Hands a command that could not be applied to the retry policy of
    /// its class.
    pub async fn fail_command(&self, msg: &jetstream::Message, room: &str, error: &WorkerError) {
        let config = &self.config.control_retry;
        crate::retry::fail(&self.js, config, Class::Control, msg, room, error, 1).await
    }
}
