//! What storing a batch needs, built by `app` and shared by the lanes: the
//! modules that handle sends depend on this, not on `app`.

use async_nats::jetstream;
use chat_cache::Redis;
use chat_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use chat_tasks::Tasks;

use crate::{
    config::WorkerConfig,
    error::WorkerError,
    pulled::Pulled,
    retry::{self, Class},
};

/// What a batch needs; shared by the concurrent batches.
pub struct Ctx {
    pub config: WorkerConfig,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub store: Store,
    pub redis: Redis,
    pub metrics: PrometheusHandle,
    /// The owner of every background task, for those that start more.
    pub tasks: Tasks,
}

impl Ctx {
    /// Hands a send that could not be stored to the retry policy.
    pub async fn fail(&self, send: Pulled, error: &WorkerError) {
        self.fail_after(send, error, 1).await
    }

    /// As `fail`, for a send already tried `attempts` times in place.
    pub async fn fail_after(&self, send: Pulled, error: &WorkerError, attempts: u32) {
        let config = &self.config.retry;
        let (payload, delivered) = (send.payload(), send.delivered());
        let settle = retry::fail(
            &self.js,
            config,
            Class::Message,
            payload,
            delivered,
            send.room.as_str(),
            error,
            attempts,
        )
        .await;
        send.settle(settle).await
    }

    /// Hands a pulled message that is no send at all to the retry policy
    /// (which parks it on the dead-letter stream at once).
    pub async fn fail_undecodable(&self, msg: &jetstream::Message, error: &WorkerError) {
        let config = &self.config.retry;
        retry::fail_message(&self.js, config, Class::Message, msg, "undecodable", error).await
    }

    /// Hands a command that could not be applied to the retry policy of
    /// its class.
    pub async fn fail_command(&self, msg: &jetstream::Message, room: &str, error: &WorkerError) {
        let config = &self.config.command_retry;
        retry::fail_message(&self.js, config, Class::Command, msg, room, error).await
    }
}
