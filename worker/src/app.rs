//! Builds the worker from its configuration and runs its consume loop.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use chat_protocol::subjects;
use chat_store::Store;
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use crate::{
    canary, config::WorkerConfig, control, ctx::Ctx, error::WorkerError, health, lanes::Lanes,
};

type PullConsumer = jetstream::consumer::Consumer<jetstream::consumer::pull::Config>;

pub struct Worker {
    ctx: Arc<Ctx>,
    http: TcpListener,
    consumer: PullConsumer,
    /// The command consumer, pulled by a loop of its own (`control`).
    commands: PullConsumer,
    /// Changes each time the NATS connection is (re)established.
    reconnected: watch::Receiver<()>,
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
        let (connected, reconnected) = watch::channel(());
        let nats = chat_streams::connect_options("chat-worker".into())
            .event_callback(move |event| {
                if matches!(event, async_nats::Event::Connected) {
                    connected.send_replace(());
                }
                std::future::ready(())
            })
            .connect(config.nats_url.expose())
            .await
            .map_err(WorkerError::nats)?;
        let js = jetstream::new(nats.clone());
        let stream = chat_streams::ensure(&js, &config.stream)
            .await
            .map_err(WorkerError::nats)?;
        // Create or update: the lanes' in-progress acks are timed by
        // ack_wait, and max_ack_pending bounds what they queue, so the shared
        // consumer must carry this worker's values, not a stale creator's.
        let consumer = stream
            .create_consumer(chat_streams::worker_consumer(
                Duration::from_millis(config.batch.ack_wait_ms),
                config.batch.max_ack_pending,
            ))
            .await
            .map_err(WorkerError::nats)?;
        let commands = js
            .get_stream(subjects::CONTROL_STREAM)
            .await
            .map_err(WorkerError::nats)?
            .create_consumer(chat_streams::control_consumer(Duration::from_millis(
                config.batch.ack_wait_ms,
            )))
            .await
            .map_err(WorkerError::nats)?;
        let redis = chat_cache::connect(config.redis_url.expose())?;
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
            commands,
            reconnected,
            shutdown,
        })
    }

    /// Consumes until shutdown: pulls sends and hands them to their rooms'
    /// lanes, which store each batch in one transaction, several lanes at
    /// once. On shutdown it stops pulling and lets the lanes store what they
    /// hold.
    pub async fn run(self) -> Result<(), WorkerError> {
        let http = axum::serve(self.http, health::router(Arc::clone(&self.ctx)))
            .with_graceful_shutdown(self.shutdown.clone().cancelled_owned());
        let http = tokio::spawn(async move { http.await });
        let lag = tokio::spawn(report_lag(self.consumer.clone(), self.shutdown.clone()));
        // The consumer's own ack_wait (which this worker just set) times the
        // lanes' in-progress acks.
        let ack_wait = self.consumer.cached_info().config.ack_wait;
        let lanes = Lanes::start(&self.ctx, ack_wait);
        let commands = tokio::spawn(control::run(
            Arc::clone(&self.ctx),
            self.commands,
            self.shutdown.clone(),
        ));
        tracing::info!("worker consuming");
        pull(
            &self.ctx.nats,
            &self.consumer,
            &lanes,
            self.ctx.config.batch.max_messages,
            self.reconnected,
            &self.shutdown,
        )
        .await;
        lanes.finish().await;
        let _ = commands.await;
        let _ = self.ctx.nats.flush().await;
        let _ = tokio::join!(http, lag);
        tracing::info!("worker stopped");
        Ok(())
    }
}

/// How long a waiting pull request lasts.
const LONG_POLL: Duration = Duration::from_secs(5);
/// Longest a round of pulling may take: a long poll whose end JetStream
/// never sent (without a reconnect to tell) must not idle the worker.
const ROUND_LIMIT: Duration = Duration::from_secs(6);
/// Pause after a failed pull (NATS down, consumer gone) before the next.
const PULL_RETRY: Duration = Duration::from_millis(250);

/// Pulls sends for the lanes until shutdown; a failed pull (NATS down,
/// consumer gone) is logged and tried again shortly.
async fn pull(
    nats: &async_nats::Client,
    consumer: &PullConsumer,
    lanes: &Lanes,
    max: usize,
    mut reconnected: watch::Receiver<()>,
    shutdown: &CancellationToken,
) {
    loop {
        reconnected.borrow_and_update();
        let round = tokio::select! {
            round = tokio::time::timeout(ROUND_LIMIT, pull_round(nats, consumer, lanes, max)) => {
                round.unwrap_or(Ok(true))
            }
            // A pull request does not outlive the connection it was sent on:
            // pull again at once rather than wait for it to expire.
            Ok(()) = reconnected.changed() => continue,
            () = shutdown.cancelled() => return,
        };
        match round {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "pull failed");
                tokio::select! {
                    () = tokio::time::sleep(PULL_RETRY) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// One round of pulling. What is already waiting is fetched in one answer,
/// up to a batch, and handed over together, so a backlog is stored in full
/// batches whatever the timing. Unless that was a full batch, a long poll
/// then hands sends over as they arrive, without delay. False once the
/// lanes are gone.
async fn pull_round(
    nats: &async_nats::Client,
    consumer: &PullConsumer,
    lanes: &Lanes,
    max: usize,
) -> Result<bool, WorkerError> {
    let waiting: Vec<_> = consumer
        .fetch()
        .max_messages(max)
        .messages()
        .await
        .map_err(WorkerError::nats)?
        .collect()
        .await;
    let full = waiting.len() == max;
    if !hand_over(nats, lanes, waiting).await? {
        return Ok(false);
    }
    if full {
        return Ok(true);
    }
    let arriving = consumer
        .batch()
        .max_messages(max)
        .expires(LONG_POLL)
        .messages()
        .await
        .map_err(WorkerError::nats)?
        .ready_chunks(max);
    tokio::pin!(arriving);
    while let Some(ready) = arriving.next().await {
        if !hand_over(nats, lanes, ready).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Hands the sends of a pull to the lanes, answering canaries on the way.
/// A failure within the pull is returned once the sends delivered before it
/// are handed over. False once the lanes are gone.
async fn hand_over(
    nats: &async_nats::Client,
    lanes: &Lanes,
    pulled: Vec<Result<jetstream::Message, async_nats::Error>>,
) -> Result<bool, WorkerError> {
    let mut sends = Vec::with_capacity(pulled.len());
    let mut failed = None;
    for msg in pulled {
        match msg {
            Ok(msg) if subjects::is_canary_ingest(msg.subject.as_str()) => {
                canary::answer(nats, msg).await
            }
            Ok(msg) => sends.push(msg),
            Err(e) => failed = Some(e),
        }
    }
    if !lanes.dispatch(sends) {
        return Ok(false);
    }
    failed.map_or(Ok(true), |e| Err(WorkerError::nats(e)))
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
