//! JetStream streams and the worker consumer, declared once so that every
//! binary creates them identically, whichever starts first.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
};

use chat_config::StreamConfig;
use chat_protocol::subjects;

/// Creates the ingest and dead-letter streams if they do not exist.
pub async fn ensure(
    js: &jetstream::Context,
    config: &StreamConfig,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: subjects::DEAD_LETTER_STREAM.into(),
        subjects: vec![subjects::dead_letter_all()],
        storage: StorageType::File,
        num_replicas: config.replicas,
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await?;
    // Work-queue retention: a send leaves the stream once a worker acks it.
    // Discard-new makes a full stream refuse sends (the client sees an error)
    // instead of silently dropping accepted ones.
    let stream = js
        .get_or_create_stream(jetstream::stream::Config {
            name: subjects::INGEST_STREAM.into(),
            subjects: vec![subjects::ingest_all()],
            retention: RetentionPolicy::WorkQueue,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: Duration::from_secs(config.duplicate_window_secs),
            max_age: Duration::from_secs(config.max_age_secs),
            ..Default::default()
        })
        .await?;
    Ok(stream)
}

/// The durable pull consumer all workers share. `max_ack_pending` caps the
/// sends delivered to workers and not yet acknowledged, all workers together.
pub fn worker_consumer(ack_wait: Duration, max_ack_pending: i64) -> pull::Config {
    pull::Config {
        durable_name: Some(subjects::WORKER_CONSUMER.into()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait,
        max_ack_pending,
        ..Default::default()
    }
}
