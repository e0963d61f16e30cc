//! Builds the worker from its configuration and runs its consume loop.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use chat_shared::{store::Store, streams, subjects};
use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio_util::sync::CancellationToken;

use crate::{config::WorkerConfig, error::WorkerError, persist};

/// What a batch needs; shared by the concurrent batches.
pub struct Ctx {
    pub config: WorkerConfig,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub store: Store,
    pub redis: ConnectionManager,
}

pub struct Worker {
    ctx: Arc<Ctx>,
    consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config>,
    shutdown: CancellationToken,
}

impl Worker {
    /// Migrates the schema, connects, and joins the shared consumer.
    pub async fn build(
        config: WorkerConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, WorkerError> {
        Store::migrate(&config.postgres).await?;
        let store = Store::new(&config.postgres)?;
        let nats = async_nats::ConnectOptions::new()
            .name("chat-worker")
            .connect(&config.nats_url)
            .await
            .map_err(WorkerError::nats)?;
        let js = jetstream::new(nats.clone());
        let stream = streams::ensure(&js, &config.stream)
            .await
            .map_err(WorkerError::nats)?;
        let consumer = stream
            .get_or_create_consumer(
                subjects::WORKER_CONSUMER,
                streams::worker_consumer(Duration::from_secs(config.batch.ack_wait_secs)),
            )
            .await
            .map_err(WorkerError::nats)?;
        let redis = redis::Client::open(config.redis_url.as_str())?
            .get_connection_manager()
            .await?;
        Ok(Self {
            ctx: Arc::new(Ctx {
                config,
                nats,
                js,
                store,
                redis,
            }),
            consumer,
            shutdown,
        })
    }

    /// Consumes until shutdown: takes whatever sends are ready (up to a
    /// batch), stores each batch in one transaction, several batches at once.
    /// On shutdown it stops pulling and finishes the batches in flight.
    pub async fn run(self) -> Result<(), WorkerError> {
        let batch = &self.ctx.config.batch;
        let messages = self
            .consumer
            .stream()
            .max_messages_per_batch(batch.max_messages)
            .messages()
            .await
            .map_err(WorkerError::nats)?;
        tracing::info!("worker consuming");
        let ctx = &self.ctx;
        messages
            .take_until(self.shutdown.cancelled())
            .filter_map(|m| async move {
                m.map_err(|e| tracing::warn!(error = %e, "consumer error"))
                    .ok()
            })
            .ready_chunks(batch.max_messages)
            .for_each_concurrent(batch.concurrency, |chunk| persist::handle_batch(ctx, chunk))
            .await;
        let _ = ctx.nats.flush().await;
        tracing::info!("worker stopped");
        Ok(())
    }
}
