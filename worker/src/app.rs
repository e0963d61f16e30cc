//! Builds the worker from its configuration and runs its consume loop.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::Duration,
};

use async_nats::jetstream;
use chat_shared::{store::Store, streams, subjects};
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use redis::aio::ConnectionManager;
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

use crate::{config::WorkerConfig, error::WorkerError, health, persist};

type PullConsumer = jetstream::consumer::Consumer<jetstream::consumer::pull::Config>;

/// What a batch needs; shared by the concurrent batches.
pub struct Ctx {
    pub config: WorkerConfig,
    pub nats: async_nats::Client,
    pub js: jetstream::Context,
    pub store: Store,
    pub redis: ConnectionManager,
    pub metrics: PrometheusHandle,
}

impl Ctx {
    /// Hands a message that could not be stored to the retry policy.
    pub async fn fail(&self, msg: &jetstream::Message, room: &str, error: &WorkerError) {
        crate::retry::fail(&self.js, &self.config.retry, msg, room, error).await
    }
}

pub struct Worker {
    ctx: Arc<Ctx>,
    http: TcpListener,
    consumer: PullConsumer,
    shutdown: CancellationToken,
}

impl Worker {
    /// Migrates the schema, connects, and joins the shared consumer.
    pub async fn build(
        config: WorkerConfig,
        shutdown: CancellationToken,
        metrics: PrometheusHandle,
    ) -> Result<Self, WorkerError> {
        crate::metrics::describe();
        let http = TcpListener::bind(config.http_listen)
            .await
            .map_err(|e| WorkerError::Startup(format!("bind {}: {e}", config.http_listen)))?;
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
                metrics,
            }),
            http,
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
        let http = axum::serve(self.http, health::router(Arc::clone(&self.ctx)))
            .with_graceful_shutdown(self.shutdown.clone().cancelled_owned());
        let http = tokio::spawn(async move { http.await });
        let lag = tokio::spawn(report_lag(self.consumer.clone(), self.shutdown.clone()));
        // One lane per unit of concurrency; a room always maps to the same
        // lane, so one worker stores and publishes each room's messages in
        // order (gateways then rarely wait on a gap) while rooms proceed in
        // parallel.
        let (lanes, lane_tasks): (Vec<_>, Vec<_>) = (0..batch.concurrency)
            .map(|_| {
                let (tx, rx) = mpsc::channel(batch.max_messages * 2);
                (tx, tokio::spawn(lane(Arc::clone(&self.ctx), rx)))
            })
            .unzip();
        tracing::info!("worker consuming");
        let messages = messages.take_until(self.shutdown.cancelled());
        tokio::pin!(messages);
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(msg) => {
                    let mut hasher = DefaultHasher::new();
                    msg.subject.as_str().hash(&mut hasher);
                    let lane = (hasher.finish() % lanes.len() as u64) as usize;
                    if lanes[lane].send(msg).await.is_err() {
                        break;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
        }
        drop(lanes);
        for task in lane_tasks {
            let _ = task.await;
        }
        let _ = self.ctx.nats.flush().await;
        let _ = tokio::join!(http, lag);
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// Stores whatever sends are queued on this lane (up to a batch) in one
/// transaction, then the next batch.
async fn lane(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<jetstream::Message>) {
    let max = ctx.config.batch.max_messages;
    while let Some(first) = rx.recv().await {
        let mut chunk = vec![first];
        while chunk.len() < max {
            match rx.try_recv() {
                Ok(msg) => chunk.push(msg),
                Err(_) => break,
            }
        }
        persist::handle_batch(&ctx, &chunk).await;
    }
}

/// Publishes the consumer's backlog (not yet delivered + delivered but not
/// acked) as a gauge, for dashboards and autoscaling on lag.
async fn report_lag(consumer: PullConsumer, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Ok(info) = consumer.get_info().await {
            crate::metrics::pending(info.num_pending + info.num_ack_pending as u64);
        }
    }
}
