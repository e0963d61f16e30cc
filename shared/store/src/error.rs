//! How a store operation fails, and whether trying again can help.

/// A store operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no Postgres connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("Postgres: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[error("bad Postgres configuration: {0}")]
    Config(String),
    /// What Postgres returned contradicts itself (worth another try).
    #[error("inconsistent read: {0}")]
    Inconsistent(String),
}

impl StoreError {
    /// Whether the same operation may succeed if tried again later. Only a
    /// refusal of the input itself fails the same way every time: SQLSTATE
    /// class 22 (data exception, e.g. a NUL byte in a text value) and class
    /// 23 (integrity constraint violation). Everything else that can fail a
    /// statement is worth retrying: lost or refused connections, pool
    /// timeouts, serialization failures (40001) and deadlocks (40P01), a
    /// `COMMIT` whose outcome is unknown, and any error not known to be about
    /// the input, so that an unforeseen failure delays messages instead of
    /// discarding good ones. Configuration and migration failures need an
    /// operator, not a retry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Db(e) | Self::Pool(deadpool_postgres::PoolError::Backend(e)) => !refuses_input(e),
            Self::Pool(_) | Self::Inconsistent(_) => true,
            Self::Migrate(_) | Self::Config(_) => false,
        }
    }
}

/// SQLSTATE classes 22 (data exception) and 23 (integrity constraint
/// violation): Postgres refuses these values, however often they are sent.
fn refuses_input(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}
