//! JetStream streams and the worker consumer, declared once so that every
//! binary creates them identically, whichever starts first.

use std::{collections::HashMap, time::Duration};

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy, PriorityPolicy},
    stream::{DiscardPolicy, RetentionPolicy, StorageType},
};

use chat_config::StreamConfig;
use chat_protocol::subjects;

mod deadline;

pub use deadline::{stored, within, Late};

/// The servers of a NATS URL setting: one URL, or a cluster's,
/// comma-separated (async-nats takes a list, not a joined string).
pub fn servers(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).collect()
}

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

/// Why the streams could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    #[error("nats: {0}")]
    Nats(String),
    /// The partitions' streams were made for another P (decision 15).
    #[error(
        "stream.partitions is {configured}, but the ingest streams were created with {existing}; \
         P is fixed at install (see deploy/README.md, \"Changing the partitions\")"
    )]
    Partitions { configured: u32, existing: String },
}

fn nats(e: impl std::fmt::Display) -> StreamsError {
    StreamsError::Nats(e.to_string())
}

/// How long `ensure` keeps trying while JetStream cannot place a stream
/// yet (a cluster still forming, its meta leader being elected).
const ENSURE_PATIENCE: Duration = Duration::from_secs(20);

/// Creates the ingest partitions', bulk, command, mark, notification and
/// dead-letter streams if
/// they do not exist, and narrows a legacy ingest stream so that it no
/// longer overlaps the partitions'. JetStream's refusals are tried again
/// for `ENSURE_PATIENCE`: a binary that starts beside a NATS cluster still
/// forming waits for it. An error if the partitions' streams were made for
/// another P.
pub async fn ensure(js: &jetstream::Context, config: &StreamConfig) -> Result<(), StreamsError> {
    let until = tokio::time::Instant::now() + ENSURE_PATIENCE;
    loop {
        match ensure_once(js, config).await {
            Err(StreamsError::Nats(e)) if tokio::time::Instant::now() < until => {
                tracing::warn!(error = %e, "streams not ready; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            done => return done,
        }
    }
}

async fn ensure_once(js: &jetstream::Context, config: &StreamConfig) -> Result<(), StreamsError> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: subjects::DEAD_LETTER_STREAM.into(),
        subjects: vec![subjects::dead_letter_all()],
        storage: StorageType::File,
        num_replicas: config.replicas,
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await
    .map_err(nats)?;
    // Commands stay until `max_age` (limits, the default); a mark is gone once
    // stored, a notification once delivered or dead-lettered: nothing
    // replays them.
    for (name, subject, retention) in [
        (
            subjects::COMMAND_STREAM,
            subjects::command_all(),
            RetentionPolicy::Limits,
        ),
        (
            subjects::MARK_STREAM,
            subjects::mark_all(),
            RetentionPolicy::WorkQueue,
        ),
        (
            subjects::NOTIFY_STREAM,
            subjects::notify_all(),
            RetentionPolicy::WorkQueue,
        ),
    ] {
        js.get_or_create_stream(jetstream::stream::Config {
            name: name.into(),
            subjects: vec![subject],
            retention,
            storage: StorageType::File,
            num_replicas: config.replicas,
            duplicate_window: config.duplicate_window,
            max_age: config.max_age,
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    }
    js.get_or_create_stream(sends_stream(
        subjects::BULK_STREAM,
        subjects::bulk_all(),
        config.max_bytes,
        config,
    ))
    .await
    .map_err(nats)?;
    narrow_legacy(js).await.map_err(nats)?;
    for partition in 0..config.partitions {
        let stream = js
            .get_or_create_stream(partition_stream(partition, config))
            .await
            .map_err(nats)?;
        let existing = stream
            .cached_info()
            .config
            .metadata
            .get(subjects::PARTITIONS_METADATA)
            .cloned()
            .unwrap_or_default();
        if existing != config.partitions.to_string() {
            return Err(StreamsError::Partitions {
                configured: config.partitions,
                existing,
            });
        }
    }
    Ok(())
}

/// P as the partitions' streams record it, for tools that publish or read
/// the ingest streams directly.
pub async fn partitions(js: &jetstream::Context) -> Result<u32, StreamsError> {
    let mut first = js
        .get_stream(subjects::ingest_stream(0))
        .await
        .map_err(nats)?;
    let info = first.info().await.map_err(nats)?;
    let recorded = info.config.metadata.get(subjects::PARTITIONS_METADATA);
    recorded
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| StreamsError::Nats(format!("{} has no P", subjects::ingest_stream(0))))
}

/// The partitions' consumers together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Sends not yet delivered.
    pub waiting: u64,
    /// Delivered and not yet acked.
    pub unacked: u64,
    /// Of those delivered, how many more than once.
    pub redelivered: u64,
}

/// The sends over every partition, as its consumer counts them.
pub async fn backlog(js: &jetstream::Context, partitions: u32) -> Result<Backlog, StreamsError> {
    let mut backlog = Backlog::default();
    for partition in 0..partitions {
        let mut consumer: jetstream::consumer::PullConsumer = js
            .get_stream(subjects::ingest_stream(partition))
            .await
            .map_err(nats)?
            .get_consumer(&subjects::ingest_consumer(partition))
            .await
            .map_err(nats)?;
        let info = consumer.info().await.map_err(nats)?;
        backlog.waiting += info.num_pending;
        backlog.unacked += info.num_ack_pending as u64;
        backlog.redelivered += info.num_redelivered as u64;
    }
    Ok(backlog)
}

/// Partition p's stream: its share of `max_bytes`, and P in its metadata.
fn partition_stream(partition: u32, config: &StreamConfig) -> jetstream::stream::Config {
    let share = (config.max_bytes / i64::from(config.partitions)).max(1 << 20);
    jetstream::stream::Config {
        metadata: HashMap::from([(
            subjects::PARTITIONS_METADATA.to_owned(),
            config.partitions.to_string(),
        )]),
        ..sends_stream(
            &subjects::ingest_stream(partition),
            subjects::ingest_partition_all(partition),
            share,
            config,
        )
    }
}

/// The one ingest stream of releases before partitions captured every
/// `chat.in.>` subject; it keeps only the old gateways' subjects, so that
/// the partitions' streams can exist beside it while it drains.
async fn narrow_legacy(js: &jetstream::Context) -> Result<(), async_nats::Error> {
    let Ok(mut legacy) = js.get_stream(subjects::LEGACY_INGEST_STREAM).await else {
        return Ok(());
    };
    let mut config = legacy.info().await?.config.clone();
    let narrowed = subjects::legacy_ingest_subjects();
    if config.subjects != narrowed {
        config.subjects = narrowed;
        js.update_stream(config).await?;
    }
    Ok(())
}

/// A stream of sends (ingest or bulk). Limits retention: a send stays
/// after the workers ack it, for `max_age` or until `max_bytes`, so the
/// stream can be replayed (a new consumer, an audit). Past the limits the
/// oldest go first: one dropped unconsumed was never acked to its sender,
/// who resends it.
fn sends_stream(
    name: &str,
    subject: String,
    max_bytes: i64,
    config: &StreamConfig,
) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: name.into(),
        subjects: vec![subject],
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: StorageType::File,
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age,
        max_bytes,
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

/// A durable pull consumer all workers share (`BULK_CONSUMER` on the bulk
/// stream, `LEGACY_CONSUMER` on the legacy ingest stream, `MARK_CONSUMER`
/// on the mark stream).
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

/// Partition p's consumer: delivered to one pinned worker at a time (the
/// priority group `INGEST_GROUP`); a pin not renewed by a pull within
/// `priority_timeout` passes to a standby. `max_ack_pending` is the
/// partition's share of the sends all workers may hold unacked.
pub fn partition_consumer(
    partition: u32,
    ack_wait: Duration,
    max_ack_pending: i64,
    priority_timeout: Duration,
) -> pull::Config {
    pull::Config {
        durable_name: Some(subjects::ingest_consumer(partition)),
        ack_policy: AckPolicy::Explicit,
        deliver_policy: DeliverPolicy::All,
        ack_wait,
        max_ack_pending,
        priority_policy: PriorityPolicy::PinnedClient,
        priority_groups: vec![subjects::INGEST_GROUP.into()],
        priority_timeout,
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
