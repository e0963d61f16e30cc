//! What storing a batch needs, built by `app` and shared by the lanes: the
//! modules that handle sends depend on this, not on `app`.

use std::time::Duration;

use async_nats::{jetstream, subject::ToSubject, HeaderMap};
use bytes::Bytes;
use chat_cache::Redis;
use chat_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use chat_tasks::Tasks;

use crate::{
    config::WorkerConfig,
    error::WorkerError,
    pulled::Pulled,
    retry::{self, Class, Parking},
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
    /// A core NATS publish, failed past `stream.publish_timeout_ms`.
    pub async fn publish(
        &self,
        subject: impl ToSubject,
        headers: Option<HeaderMap>,
        payload: Bytes,
    ) -> Result<(), WorkerError> {
        let limit = self.publish_timeout();
        let published = match headers {
            Some(h) => {
                chat_streams::within(limit, self.nats.publish_with_headers(subject, h, payload))
                    .await
            }
            None => chat_streams::within(limit, self.nats.publish(subject, payload)).await,
        };
        published.map_err(WorkerError::nats)
    }

    pub fn publish_timeout(&self) -> Duration {
        self.config.stream.publish_timeout
    }

    /// Where failures are parked, with the publish deadline.
    pub fn parking(&self) -> Parking<'_> {
        Parking {
            js: &self.js,
            limit: self.publish_timeout(),
        }
    }

    /// Hands a send that could not be stored to the retry policy.
    pub async fn fail(&self, send: Pulled, error: &WorkerError) {
        self.fail_after(send, error, 1).await
    }

    /// As `fail`, for a send already tried `attempts` times in place.
    pub async fn fail_after(&self, send: Pulled, error: &WorkerError, attempts: u32) {
        let config = &self.config.retry;
        let (payload, delivered) = (send.payload(), send.delivered());
        let settle = retry::fail(
            self.parking(),
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
        retry::fail_message(
            self.parking(),
            config,
            Class::Message,
            msg,
            "undecodable",
            error,
        )
        .await
    }

    /// Hands a command that could not be applied to the retry policy of
    /// its class.
    pub async fn fail_command(&self, msg: &jetstream::Message, room: &str, error: &WorkerError) {
        let config = &self.config.command_retry;
        retry::fail_message(self.parking(), config, Class::Command, msg, room, error).await
    }
}
