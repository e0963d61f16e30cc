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

/// How every binary connects to NATS. A dead connection (a partition, a
/// hung server) is noticed within seconds rather than the client's default
/// minutes, and reconnects are tried at least every half second, so that
/// sends flow again soon after NATS is back.
pub fn connect_options(name: String) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name(name)
        .ping_interval(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            let exp = u32::try_from(attempts).unwrap_or(u32::MAX).min(16);
            Duration::from_millis(2u64.pow(exp)).min(Duration::from_millis(500))
        })
}

/// Creates the ingest, bulk, command and dead-letter streams if they do not
/// exist.
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
    js.get_or_create_stream(jetstream::stream::Config {
        name: subjects::COMMAND_STREAM.into(),
        subjects: vec![subjects::command_all()],
        storage: StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age,
        ..Default::default()
    })
    .await?;
    js.get_or_create_stream(sends_stream(
        subjects::BULK_STREAM,
        subjects::bulk_all(),
        config,
    ))
    .await?;
    js.get_or_create_stream(sends_stream(
        subjects::INGEST_STREAM,
        subjects::ingest_all(),
        config,
    ))
    .await
    .map_err(Into::into)
}

/// A stream of sends (ingest or bulk). Limits retention: a send stays
/// after the workers ack it, for `max_age` or until `max_bytes`, so the
/// stream can be replayed (a new consumer, an audit). Past the limits the
/// oldest go first: one dropped unconsumed was never acked to its sender,
/// who resends it.
fn sends_stream(name: &str, subject: String, config: &StreamConfig) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: name.into(),
        subjects: vec![subject],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age,
        max_bytes: config.max_bytes,
        ..Default::default()
    }
}

/// The durable pull consumer of commands all workers share: its own, so a
/// backlog of sends never stands in front of a change to a room.
pub fn command_consumer(ack_wait: Duration) -> pull::Config {
    pull::Config {
        durable_name: Some(subjects::COMMAND_CONSUMER.into()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait,
        ..Default::default()
    }
}

/// A durable pull consumer of sends all workers share (`WORKER_CONSUMER`
/// on the ingest stream, `BULK_CONSUMER` on the bulk stream).
/// `max_ack_pending` caps the sends delivered to workers and not yet
/// acknowledged, all workers together.
pub fn worker_consumer(durable: &str, ack_wait: Duration, max_ack_pending: i64) -> pull::Config {
    pull::Config {
        durable_name: Some(durable.into()),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait,
        max_ack_pending,
        ..Default::default()
    }
}

/// Headers of the dead-letter stream, which the worker writes and its
/// `dlq` tool and operators read.
pub mod headers {
    /// Why a message was dead-lettered: the error's stable label.
    pub const DEAD_REASON: &str = "Chat-Dead-Reason";
    /// The error itself, for a person reading the dead letter.
    pub const DEAD_DETAIL: &str = "Chat-Dead-Detail";
    /// How many deliveries the dead-lettered message had.
    pub const ATTEMPTS: &str = "Chat-Attempts";
    /// On a replayed send: the dead letter's seq, so that the send can be
    /// told from a gateway's when reading the bulk stream or a trace.
    pub const REPLAY_OF: &str = "Chat-Replay-Of";
}

#[cfg(test)]
mod tests {
    use super::headers;

    /// Operators' tools and alerts read these names: they do not change.
    #[test]
    fn dead_letter_headers_keep_their_names() {
        assert_eq!(headers::DEAD_REASON, "Chat-Dead-Reason");
        assert_eq!(headers::DEAD_DETAIL, "Chat-Dead-Detail");
        assert_eq!(headers::ATTEMPTS, "Chat-Attempts");
        assert_eq!(headers::REPLAY_OF, "Chat-Replay-Of");
    }
}
