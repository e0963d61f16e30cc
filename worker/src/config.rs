//! The worker's configuration: defaults < `$CHAT_CONFIG` file < `CHAT_WORKER_*`.

use std::net::SocketAddr;

use chat_config::{check_backend_urls, BackendUrl, LogConfig, StreamConfig, Validate};
use chat_store::PostgresConfig;
use chat_telemetry::TracingConfig;
use serde::{Deserialize, Serialize};

/// Prefix of the worker's environment variables.
pub const ENV_PREFIX: &str = "CHAT_WORKER_";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkerConfig {
    pub nats_url: BackendUrl,
    pub redis_url: BackendUrl,
    pub postgres: PostgresConfig,
    pub stream: StreamConfig,
    pub batch: BatchConfig,
    /// How sends are retried.
    pub retry: RetryConfig,
    /// How commands (changes to rooms) are retried: longer than sends,
    /// since nobody resends a command whose asker has given up.
    pub control_retry: RetryConfig,
    /// Recent messages kept per room in Redis for gateways' gap fills.
    pub recent_cache_len: usize,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub http_listen: SocketAddr,
    pub log: LogConfig,
    pub tracing: TracingConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            nats_url: BackendUrl::new("nats://127.0.0.1:4222"),
            redis_url: BackendUrl::new("redis://127.0.0.1:6379"),
            postgres: PostgresConfig::default(),
            stream: StreamConfig::default(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            control_retry: RetryConfig {
                max_attempts: 120,
                ..RetryConfig::default()
            },
            recent_cache_len: 1000,
            http_listen: "0.0.0.0:9091".parse().expect("valid address"),
            log: LogConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

/// How sends are grouped into transactions.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchConfig {
    /// Most sends stored in one transaction.
    pub max_messages: usize,
    /// Transactions in flight at once (each holds one Postgres connection);
    /// sends are spread over them by room, so each room stays in order.
    pub concurrency: usize,
    /// Milliseconds JetStream waits for an ack before redelivering. Sends a
    /// lane holds longer (queued behind a busy room, or in a slow
    /// transaction) are kept alive with in-progress acks, so this only bounds
    /// how soon a crashed worker's sends go to another: short, so that its
    /// senders are acked within about a second.
    pub ack_wait_ms: u64,
    /// Sends delivered to the workers and not yet acknowledged, all workers
    /// together (the consumer's `max_ack_pending`): JetStream delivers no
    /// more until some are acked. This, not a channel, bounds what the lanes
    /// queue, so a full lane never holds up the others. Each worker applies
    /// this and `ack_wait_ms` to the shared consumer when it starts, so
    /// all workers should agree on both.
    pub max_ack_pending: i64,
    /// Lanes (and so Postgres connections) of the bulk class: few, so
    /// that bulk work never takes the connections sends need. Bulk sends
    /// are pulled only while no send waits on the ingest stream.
    pub bulk_concurrency: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_messages: 256,
            concurrency: 4,
            ack_wait_ms: 800,
            // About two batches per lane: enough to keep every lane busy,
            // few enough that a held send rarely needs an in-progress ack.
            max_ack_pending: 2048,
            bulk_concurrency: 1,
        }
    }
}

/// How failed deliveries of one class are retried before they are
/// dead-lettered.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Deliveries before it goes to the dead-letter stream.
    pub max_attempts: u32,
    /// First redelivery delay; doubles with each attempt.
    pub base_delay_ms: u64,
    /// Longest redelivery delay.
    pub max_delay_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        // About 27 s of retrying before a send is dead-lettered, at most a
        // second apart, so that sends flow again within a second of a
        // dependency's return.
        Self {
            max_attempts: 30,
            base_delay_ms: 100,
            max_delay_ms: 1000,
        }
    }
}

impl RetryConfig {
    fn check(&self, name: &str, problems: &mut Vec<String>) {
        if self.max_attempts == 0 {
            problems.push(format!("{name}.max_attempts must be > 0"));
        }
        if self.base_delay_ms == 0 || self.max_delay_ms < self.base_delay_ms {
            problems.push(format!(
                "{name}.base_delay_ms must be > 0 and <= {name}.max_delay_ms"
            ));
        }
    }
}

impl Validate for WorkerConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        check_backend_urls(&self.nats_url, &self.redis_url, problems);
        self.postgres.validate(problems);
        self.stream.validate(problems);
        self.tracing.validate(problems);
        if self.batch.max_messages == 0 || self.batch.max_messages > 10_000 {
            problems.push("batch.max_messages must be 1..=10000".into());
        }
        if self.batch.concurrency == 0 {
            problems.push("batch.concurrency must be > 0".into());
        }
        if self.batch.bulk_concurrency == 0 {
            problems.push("batch.bulk_concurrency must be > 0".into());
        }
        if self.batch.concurrency + self.batch.bulk_concurrency >= self.postgres.pool_size {
            problems.push(
                "batch.concurrency + batch.bulk_concurrency must be below postgres.pool_size \
                 (commands need a connection too)"
                    .into(),
            );
        }
        if self.batch.ack_wait_ms < 100 {
            problems.push("batch.ack_wait_ms must be >= 100".into());
        }
        if self.batch.max_ack_pending < self.batch.max_messages as i64 {
            problems.push("batch.max_ack_pending must be >= batch.max_messages".into());
        }
        self.retry.check("retry", problems);
        self.control_retry.check("control_retry", problems);
        if self.recent_cache_len == 0 {
            problems.push("recent_cache_len must be > 0".into());
        }
    }
}

impl WorkerConfig {
    /// Loads and validates the configuration, or exits (status 2) saying
    /// what is wrong on one line.
    pub fn load_or_exit() -> Self {
        chat_config::load_or_exit("worker", ENV_PREFIX)
    }
}
