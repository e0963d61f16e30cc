//! The worker's configuration: defaults < `$CHAT_CONFIG` file < `CHAT_WORKER_*`.

use std::{
    net::SocketAddr,
    num::{NonZeroU32, NonZeroU64, NonZeroUsize},
    time::Duration,
};

use chat_cache::RedisConfig;
use chat_config::{
    check_backend_urls, millis, BackendUrl, LogConfig, Secret, StreamConfig, Validate,
};
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
    pub redis: RedisConfig,
    pub postgres: PostgresConfig,
    pub stream: StreamConfig,
    pub batch: BatchConfig,
    /// How sends are retried.
    pub retry: RetryConfig,
    /// How commands (changes to rooms) are retried: longer than sends,
    /// since nobody resends a command whose asker has given up.
    pub command_retry: RetryConfig,
    /// Recent messages kept per room in Redis for gateways' gap fills.
    pub recent_cache_len: NonZeroUsize,
    /// Offline notifications by webhook.
    pub notify: NotifyConfig,
    /// How long messages are kept, by default.
    pub retention: RetentionConfig,
    /// How often each worker looks for scheduled messages that are due:
    /// how late one may be sent. An idle look is one index probe.
    #[serde(rename = "scheduled_poll_ms", with = "millis::non_zero")]
    pub scheduled_poll: Duration,
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
            redis: RedisConfig::default(),
            postgres: PostgresConfig::default(),
            stream: StreamConfig::default(),
            batch: BatchConfig::default(),
            retry: RetryConfig::default(),
            command_retry: RetryConfig {
                max_attempts: NonZeroU32::new(120).expect("not zero"),
                ..RetryConfig::default()
            },
            recent_cache_len: NonZeroUsize::new(1000).expect("not zero"),
            notify: NotifyConfig::default(),
            retention: RetentionConfig::default(),
            scheduled_poll: Duration::from_millis(250),
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
    /// Most transactions in flight at once (each holds one Postgres
    /// connection). A room has at most one, so it stays in order.
    pub concurrency: NonZeroUsize,
    /// Milliseconds sends wait for the transaction in flight to finish, to
    /// join the next one, before another starts beside it (a full batch
    /// starts at once): on a busy core, transactions side by side commit
    /// later than one (bench/RESULTS.md §18). 0 starts one at once.
    #[serde(rename = "patience_ms", with = "millis")]
    pub patience: Duration,
    /// Milliseconds JetStream waits for an ack before redelivering. Sends a
    /// lane holds longer (queued behind a busy room, or in a slow
    /// transaction) are kept alive with in-progress acks, so this only bounds
    /// how soon a crashed worker's sends go to another: short, so that its
    /// senders are acked within about a second.
    #[serde(rename = "ack_wait_ms", with = "millis")]
    pub ack_wait: Duration,
    /// Sends delivered to the workers and not yet acknowledged, all workers
    /// together, split evenly over the partitions (each consumer's
    /// `max_ack_pending`): JetStream delivers no more until some are acked.
    /// This, not a channel, bounds what the lanes queue, so a full lane
    /// never holds up the others. Each worker applies this, `ack_wait_ms`
    /// and `priority_timeout_ms` to the consumers when it starts, so all
    /// workers should agree on them.
    pub max_ack_pending: i64,
    /// Milliseconds a partition's owner may go without pulling before
    /// JetStream pins another worker: how soon a dead or cut-off worker's
    /// partitions move. Owners pull every second.
    #[serde(rename = "priority_timeout_ms", with = "millis")]
    pub priority_timeout: Duration,
    /// Lanes (and so Postgres connections) of the bulk class: few, so
    /// that bulk work never takes the connections sends need. Bulk sends
    /// are pulled only while no send waits on the ingest stream.
    pub bulk_concurrency: NonZeroUsize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_messages: 256,
            concurrency: NonZeroUsize::new(4).expect("not zero"),
            patience: Duration::from_millis(4),
            ack_wait: Duration::from_millis(800),
            // About two batches per lane: enough to keep every lane busy,
            // few enough that a held send rarely needs an in-progress ack.
            max_ack_pending: 2048,
            // Three missed pulls: a busy two-core box does not flap, and a
            // dead worker's partitions move within about four seconds.
            priority_timeout: Duration::from_secs(3),
            bulk_concurrency: NonZeroUsize::MIN,
        }
    }
}

/// Retention: how long messages are kept unless a room says otherwise
/// (`PUT /v1/rooms/{room}/retention` replaces both limits for the room).
/// Unset: kept for ever. Workers delete what expires in the bulk class, a
/// batch per short transaction, while no send waits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Messages older than this many seconds are deleted.
    pub max_age_secs: Option<NonZeroU64>,
    /// Only each room's newest this many entries are kept.
    pub max_count: Option<NonZeroU64>,
    /// How often each worker looks for rooms with entries to delete.
    #[serde(rename = "sweep_ms", with = "millis::non_zero")]
    pub sweep: Duration,
    /// Entries deleted per transaction (1..=10000): the room's row is
    /// locked only for its commit.
    pub batch: NonZeroU32,
    /// Most entries each worker deletes a second: a steady trickle that
    /// sends do not feel (bench/RESULTS.md), rather than a burst.
    pub rows_per_sec: NonZeroU32,
    /// Entries younger than this are never deleted, whatever the limits:
    /// a gateway filling a gap may still read them.
    #[serde(rename = "grace_ms", with = "millis")]
    pub grace: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_age_secs: None,
            max_count: None,
            sweep: Duration::from_secs(60),
            batch: NonZeroU32::new(500).expect("not zero"),
            rows_per_sec: NonZeroU32::new(1000).expect("not zero"),
            grace: Duration::from_secs(300),
        }
    }
}

/// Offline notifications: the webhook a worker calls when a stored message
/// mentions a member (`@user`) or is in a direct room, for the recipients
/// with no socket on any gateway.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    /// The `http://` URL to POST each notification to (a push service in
    /// the cluster); empty: no notifications, none even queued.
    pub webhook_url: String,
    /// Key of the HMAC-SHA256 signature of each body, at least 32 bytes
    /// when `webhook_url` is set.
    pub secret: Secret,
    /// How long one call may take before it counts as failed.
    #[serde(rename = "timeout_ms", with = "millis::non_zero")]
    pub timeout: Duration,
    /// Calls in flight at once per worker.
    pub concurrency: NonZeroUsize,
    /// How failed calls are retried (in the bulk class) before the
    /// notification is dead-lettered.
    pub retry: RetryConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        // About 5 minutes of retrying, at most a minute apart: a push
        // service restarting or rolling out loses nothing.
        Self {
            webhook_url: String::new(),
            secret: Secret::default(),
            timeout: Duration::from_secs(5),
            concurrency: NonZeroUsize::new(16).expect("not zero"),
            retry: RetryConfig {
                max_attempts: NonZeroU32::new(10).expect("not zero"),
                base_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
            },
        }
    }
}

impl NotifyConfig {
    /// Whether notifications are on.
    pub fn enabled(&self) -> bool {
        !self.webhook_url.is_empty()
    }

    fn check(&self, problems: &mut Vec<String>) {
        self.retry.check("notify.retry", problems);
        if !self.enabled() {
            return;
        }
        match self.webhook_url.parse::<reqwest::Url>() {
            Ok(url) if url.scheme() == "http" && url.host().is_some() => {}
            _ => problems.push("notify.webhook_url must be an http:// URL".into()),
        }
        if self.secret.expose().len() < 32 {
            problems.push(
                "notify.secret must be at least 32 bytes when notify.webhook_url is set".into(),
            );
        }
    }
}

/// How failed deliveries of one class are retried before they are
/// dead-lettered.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// Deliveries before it goes to the dead-letter stream.
    pub max_attempts: NonZeroU32,
    /// First redelivery delay; doubles with each attempt.
    #[serde(rename = "base_delay_ms", with = "millis::non_zero")]
    pub base_delay: Duration,
    /// Longest redelivery delay.
    #[serde(rename = "max_delay_ms", with = "millis")]
    pub max_delay: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        // About 27 s of retrying before a send is dead-lettered, at most a
        // second apart, so that sends flow again within a second of a
        // dependency's return.
        Self {
            max_attempts: NonZeroU32::new(30).expect("not zero"),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        }
    }
}

impl RetryConfig {
    fn check(&self, name: &str, problems: &mut Vec<String>) {
        if self.max_delay < self.base_delay {
            problems.push(format!(
                "{name}.base_delay_ms must be <= {name}.max_delay_ms"
            ));
        }
    }
}

/// What the types cannot say: a zero count or delay is already refused
/// while parsing; left are ranges and relations between fields.
impl Validate for WorkerConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        check_backend_urls(&self.nats_url, &self.redis_url, problems);
        self.postgres.validate(problems);
        self.stream.validate(problems);
        self.tracing.validate(problems);
        if self.batch.max_messages == 0 || self.batch.max_messages > 10_000 {
            problems.push("batch.max_messages must be 1..=10000".into());
        }
        if self.batch.concurrency.get() + self.batch.bulk_concurrency.get() + 1
            >= self.postgres.pool_size.get()
        {
            problems.push(
                "batch.concurrency + batch.bulk_concurrency + 1 must be below postgres.pool_size \
                 (commands and read marks need a connection each)"
                    .into(),
            );
        }
        if self.batch.ack_wait < Duration::from_millis(100) {
            problems.push("batch.ack_wait_ms must be >= 100".into());
        }
        if self.batch.max_ack_pending < self.batch.max_messages as i64 {
            problems.push("batch.max_ack_pending must be >= batch.max_messages".into());
        }
        if self.batch.priority_timeout < Duration::from_secs(2) {
            problems.push(
                "batch.priority_timeout_ms must be >= 2000 (owners pull every second)".into(),
            );
        }
        self.retry.check("retry", problems);
        self.command_retry.check("command_retry", problems);
        self.notify.check(problems);
        if self.retention.batch.get() > 10_000 {
            problems.push("retention.batch must be 1..=10000".into());
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

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn a_zero_count_or_delay_is_refused_naming_its_field() {
        for (var, field) in [
            ("BATCH__CONCURRENCY", "batch.concurrency"),
            ("RETRY__MAX_ATTEMPTS", "retry.max_attempts"),
            (
                "COMMAND_RETRY__BASE_DELAY_MS",
                "command_retry.base_delay_ms",
            ),
            ("RECENT_CACHE_LEN", "recent_cache_len"),
            ("POSTGRES__POOL_SIZE", "postgres.pool_size"),
            ("RETENTION__MAX_COUNT", "retention.max_count"),
            ("RETENTION__MAX_AGE_SECS", "retention.max_age_secs"),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(format!("{ENV_PREFIX}{var}"), "0");
                let err = chat_config::load::<WorkerConfig>(ENV_PREFIX).expect_err(var);
                let text = err.to_string();
                assert!(text.contains(&format!("{field}: ")), "{text}");
                assert!(text.contains(&format!("{ENV_PREFIX}{var}")), "{text}");
                Ok(())
            });
        }
    }

    #[test]
    fn relations_between_fields_are_still_checked() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CHAT_WORKER_RETRY__MAX_DELAY_MS", "50");
            jail.set_env("CHAT_WORKER_BATCH__ACK_WAIT_MS", "99");
            jail.set_env("CHAT_WORKER_POSTGRES__POOL_SIZE", "5");
            let text = chat_config::load::<WorkerConfig>(ENV_PREFIX)
                .expect_err("invalid")
                .to_string();
            assert!(text.contains("retry.base_delay_ms must be <="), "{text}");
            assert!(text.contains("batch.ack_wait_ms must be >= 100"), "{text}");
            assert!(text.contains("below postgres.pool_size"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn a_file_and_the_environment_load_into_durations() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "worker.toml",
                "[batch]\nack_wait_ms = 1500\nconcurrency = 2\n[retry]\nmax_delay_ms = 3000\n",
            )?;
            jail.set_env(chat_config::CONFIG_FILE_ENV, "worker.toml");
            jail.set_env("CHAT_WORKER_RETRY__BASE_DELAY_MS", "250");
            jail.set_env("CHAT_WORKER_STREAM__MAX_AGE_SECS", "3600");
            let config = chat_config::load::<WorkerConfig>(ENV_PREFIX).expect("valid");
            assert_eq!(config.batch.ack_wait, Duration::from_millis(1500));
            assert_eq!(config.batch.concurrency.get(), 2);
            assert_eq!(config.retry.base_delay, Duration::from_millis(250));
            assert_eq!(config.retry.max_delay, Duration::from_secs(3));
            assert_eq!(config.command_retry.max_attempts.get(), 120);
            assert_eq!(config.stream.max_age, Duration::from_secs(3600));
            Ok(())
        });
    }
}
