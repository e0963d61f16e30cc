//! The schema: the migrations under `migrations/`, embedded at build time
//! and applied by whichever process starts first.

use tokio_postgres::NoTls;

use crate::config::PostgresConfig;
use crate::error::StoreError;
use crate::pool::Store;
use crate::sql;

refinery::embed_migrations!("migrations");

impl Store {
    /// Applies pending migrations on a connection of its own. An advisory
    /// lock lets several workers start at once without racing.
    pub async fn migrate(config: &PostgresConfig) -> Result<(), StoreError> {
        let (mut client, connection) = tokio_postgres::connect(config.url.expose(), NoTls).await?;
        let driver = tokio::spawn(connection);
        client.execute(sql::MIGRATION_LOCK, &[]).await?;
        let report = migrations::runner().run_async(&mut client).await?;
        for m in report.applied_migrations() {
            tracing::info!(migration = %m, "applied migration");
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }
}
