//! Where Postgres is and how many connections to keep, checked at startup.

use std::num::NonZeroUsize;

use chat_config::{Secret, Validate};
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
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: Secret::new("postgres://postgres@127.0.0.1:5432/chat"),
            pool_size: NonZeroUsize::new(16).expect("not zero"),
            read_url: None,
        }
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
