//! The handle every read and write goes through: a pool of connections,
//! opened on first use.

use chat_config::Secret;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::PostgresConfig;
use crate::error::StoreError;
use crate::sql;

/// A cheap-to-clone handle on the Postgres pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

impl Store {
    /// Builds the pool; connections are opened on first use.
    pub fn new(config: &PostgresConfig) -> Result<Self, StoreError> {
        Self::at(&config.url, config, None)
    }

    /// A pool for a gateway, whose reads walk indexes in order
    /// (`sql::READER_OPTIONS`).
    pub fn reader(config: &PostgresConfig) -> Result<Self, StoreError> {
        Self::at(&config.url, config, Some(sql::READER_OPTIONS))
    }

    /// A reader pool on the streaming replica (`read_url`), if one is configured.
    pub fn replica(config: &PostgresConfig) -> Result<Option<Self>, StoreError> {
        config
            .read_url
            .as_ref()
            .map(|url| Self::at(url, config, Some(sql::READER_OPTIONS)))
            .transpose()
    }

    fn at(
        url: &Secret,
        config: &PostgresConfig,
        options: Option<&str>,
    ) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = url
            .expose()
            .parse()
            .map_err(|e: tokio_postgres::Error| StoreError::Config(e.to_string()))?;
        let mut session = config.session_options();
        if let Some(options) = options {
            session = format!("{session} {options}");
        }
        pg.options(&session).connect_timeout(config.connect_timeout);
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.get())
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.pool_wait_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Pool usage: (connections open, connections idle).
    pub fn pool_status(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size, status.available)
    }

    /// Checks that Postgres answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.simple_query(sql::PING).await?;
        Ok(())
    }
}
