//! Where Postgres is, how many connections to keep, and how long anything
//! may wait on it, checked at startup.

use std::{num::NonZeroUsize, time::Duration};

use chat_config::{millis, Secret, Validate};
use serde::{Deserialize, Serialize};

/// Postgres connection settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresConfig {
    /// libpq-style URL, e.g. `postgres://chat@127.0.0.1:5432/chat`.
    pub url: Secret,
    /// Largest number of pooled connections.
    pub pool_size: NonZeroUsize,
    /// A streaming replica of `url` that serves history pages (the
    /// gateway's only use of it), keeping those reads off the primary.
    /// Pages the replica has not replayed yet still come from the primary.
    pub read_url: Option<Secret>,
    /// Longest a statement may run before Postgres cancels it
    /// (`statement_timeout`): a lock never released or a query gone wrong
    /// fails, and is retried, instead of holding its caller. 0: no limit.
    #[serde(rename = "statement_timeout_ms", with = "millis")]
    pub statement_timeout: Duration,
    /// A session idle inside a transaction this long is ended by Postgres
    /// (`idle_in_transaction_session_timeout`), releasing its locks: a
    /// process frozen mid-transaction cannot hold rooms' rows past it.
    /// 0: no limit.
    #[serde(rename = "idle_in_transaction_timeout_ms", with = "millis")]
    pub idle_in_transaction_timeout: Duration,
    /// Longest wait to open a connection.
    #[serde(rename = "connect_timeout_ms", with = "millis::non_zero")]
    pub connect_timeout: Duration,
    /// Longest wait for a free connection from the pool. Generous: under a
    /// burst (every socket of a drained gateway rejoining another) waits of
    /// seconds are load, not a dead Postgres, which the two timeouts above
    /// and `connect_timeout_ms` already bound.
    #[serde(rename = "pool_wait_timeout_ms", with = "millis::non_zero")]
    pub pool_wait_timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/chat"),
            pool_size: NonZeroUsize::new(16).expect("not zero"),
            read_url: None,
            statement_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Duration::from_secs(30),
        }
    }
}

impl PostgresConfig {
    /// The session settings every pooled connection starts with.
    pub(crate) fn session_options(&self) -> String {
        format!(
            "-c statement_timeout={} -c idle_in_transaction_session_timeout={}",
            self.statement_timeout.as_millis(),
            self.idle_in_transaction_timeout.as_millis()
        )
    }
}

impl Validate for PostgresConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if let Err(e) = self.url.expose().parse::<tokio_postgres::Config>() {
            problems.push(format!(
                "postgres.url is not a valid connection string: {e}"
            ));
        }
        if let Some(Err(e)) = self
            .read_url
            .as_ref()
            .map(|u| u.expose().parse::<tokio_postgres::Config>())
        {
            problems.push(format!(
                "postgres.read_url is not a valid connection string: {e}"
            ));
        }
    }
}
