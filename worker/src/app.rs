//! Builds the worker from its configuration and runs its consume loop.

use std::sync::Arc;

use async_nats::jetstream;
use chat_protocol::subjects;
use chat_store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use chat_tasks::{Ends, Tasks};

use crate::{
    commands,
    config::WorkerConfig,
    ctx::Ctx,
    error::WorkerError,
    health, intake,
    intake::PullConsumer,
    lanes::Lanes,
    marks,
    notify::{self, webhook::Webhook},
    partitions::Partitions,
    retention, scheduled,
};

pub struct Worker {
    ctx: Arc<Ctx>,
    http: TcpListener,
    /// The ingest partitions, each pulled by its owner loop.
    partitions: Arc<Partitions>,
    /// The consumer of the ingest stream before partitions, while it exists.
    legacy: Option<PullConsumer>,
    /// The command consumer, pulled by a loop of its own (`commands`).
    commands: PullConsumer,
    /// The bulk consumer, pulled only while no owned partition has sends waiting.
    bulk: PullConsumer,
    /// The read marks' consumer, pulled by a loop of its own (`marks`).
    marks: PullConsumer,
    /// The notifications' consumer and webhook, when notifications are on.
    notify: Option<(PullConsumer, Arc<Webhook>)>,
    /// Changes each time the NATS connection is (re)established.
    reconnected: watch::Receiver<()>,
    shutdown: CancellationToken,
}

impl Worker {
    /// Migrates the schema, connects, and joins the partitions' consumers.
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
            .connect(chat_streams::servers(config.nats_url.expose()))
            .await
            .map_err(WorkerError::nats)?;
        let js = jetstream::new(nats.clone());
        chat_streams::ensure(&js, &config.stream)
            .await
            .map_err(|e| WorkerError::Startup(e.to_string()))?;
        let Shared {
            legacy,
            bulk,
            commands,
            marks,
            notify,
        } = shared_consumers(&js, &config).await?;
        let notify = match (notify, Webhook::new(&config.notify)?) {
            (Some(consumer), Some(webhook)) => Some((consumer, Arc::new(webhook))),
            _ => None,
        };
        let redis = chat_cache::connect(config.redis_url.expose(), &config.redis).await?;
        let ctx = Arc::new(Ctx {
            config,
            nats,
            js,
            store,
            redis,
            metrics,
            tasks: Tasks::new(shutdown.clone(), crate::metrics::TASKS),
        });
        let partitions = Partitions::join(&ctx).await?;
        Ok(Self {
            ctx,
            http,
            partitions,
            legacy,
            commands,
            bulk,
            marks,
            notify,
            reconnected,
            shutdown,
        })
    }

    /// Consumes until shutdown, three classes each with its own consumers
    /// and concurrency: commands (one at a time, `commands`), sends (pulled
    /// by the owner loop of each partition this worker is pinned to, through
    /// its gate, and handed to their rooms' lanes, which store each batch in
    /// one transaction, several lanes at once) and bulk sends (lanes of
    /// their own, pulled only while no send waits). On shutdown it releases
    /// its partitions and lets the lanes store what they hold. An error if a task the
    /// worker cannot do without died (`tasks`).
    pub async fn run(self) -> Result<(), WorkerError> {
        let tasks = &self.ctx.tasks;
        let http = axum::serve(self.http, health::router(Arc::clone(&self.ctx)))
            .with_graceful_shutdown(self.shutdown.clone().cancelled_owned());
        // Critical: without it Kubernetes sees neither health nor metrics
        // (its liveness probe would restart the worker anyway).
        tasks.spawn_critical("http", Ends::AtShutdown, async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "http server failed");
            }
        });
        let (ctx, shutdown) = (Arc::clone(&self.ctx), self.shutdown.clone());
        // Restarting: it holds no state, and only a gauge waits meanwhile.
        tasks.spawn_restarting("lag", move || {
            intake::report_lag(Arc::clone(&ctx), shutdown.clone())
        });
        let batch = &self.ctx.config.batch;
        let lanes = Lanes::start(&self.ctx, "lane", batch.concurrency.get(), batch.ack_wait);
        let bulk_lanes = Lanes::start(
            &self.ctx,
            "bulk_lane",
            batch.bulk_concurrency.get(),
            batch.ack_wait,
        );
        // Critical: it owns the bulk lanes, which die with it.
        tasks.spawn_critical(
            "bulk",
            Ends::AtShutdown,
            intake::pull_bulk(
                Arc::clone(&self.ctx),
                self.bulk,
                bulk_lanes,
                self.shutdown.clone(),
            ),
        );
        start_beside(
            &self.ctx,
            self.commands,
            self.marks,
            self.notify,
            &self.shutdown,
        );
        let pulling = start_pulling(
            &self.ctx,
            &self.partitions,
            self.legacy,
            self.reconnected,
            &lanes,
            &self.shutdown,
        );
        let (partitions, ctx, shutdown) = (
            Arc::clone(&self.partitions),
            Arc::clone(&self.ctx),
            self.shutdown.clone(),
        );
        tasks.spawn_restarting("balance", move || {
            Arc::clone(&partitions).balance(Arc::clone(&ctx), shutdown.clone())
        });
        tracing::info!("worker consuming");
        self.shutdown.cancelled().await;
        // Every partition released first, so their new owners start while
        // the lanes store what they hold.
        pulling.wait().await;
        lanes.finish().await;
        tasks.wait().await;
        let _ = self.ctx.nats.flush().await;
        tracing::info!("worker stopped");
        tasks
            .died()
            .map_or(Ok(()), |task| Err(WorkerError::TaskDied(task)))
    }
}

/// Starts the loops beside the sends, each on its own consumer or table:
/// commands, read marks, due scheduled messages, and notifications.
fn start_beside(
    ctx: &Arc<Ctx>,
    commands: PullConsumer,
    marks: PullConsumer,
    notify: Option<(PullConsumer, Arc<Webhook>)>,
    shutdown: &CancellationToken,
) {
    let tasks = &ctx.tasks;
    let (c, stop) = (Arc::clone(ctx), shutdown.clone());
    // Restarting: the command under way when it died is not acked, so
    // JetStream redelivers it; a command that makes it panic costs a
    // restart each time it comes back, not every worker in turn.
    tasks.spawn_restarting("commands", move || {
        commands::run(Arc::clone(&c), commands.clone(), stop.clone())
    });
    let (c, stop) = (Arc::clone(ctx), shutdown.clone());
    // Restarting: a batch not acked when it died is redelivered.
    tasks.spawn_restarting("marks", move || {
        marks::run(Arc::clone(&c), marks.clone(), stop.clone())
    });
    let (c, stop) = (Arc::clone(ctx), shutdown.clone());
    // Restarting: due rows it held when it died are rolled back and
    // taken again.
    tasks.spawn_restarting("scheduled", move || {
        scheduled::run(Arc::clone(&c), stop.clone())
    });
    let (c, stop) = (Arc::clone(ctx), shutdown.clone());
    // Restarting: a batch cut short is rolled back and taken again.
    tasks.spawn_restarting("retention", move || {
        retention::run(Arc::clone(&c), stop.clone())
    });
    if let Some((consumer, webhook)) = notify {
        let (c, stop) = (Arc::clone(ctx), shutdown.clone());
        // Restarting: calls not acked when it died are redelivered.
        tasks.spawn_restarting("notify", move || {
            let (consumer, webhook) = (consumer.clone(), Arc::clone(&webhook));
            notify::run(Arc::clone(&c), consumer, webhook, stop.clone())
        });
    }
}

/// Starts the partitions' owner loops and, while it exists, the legacy
/// ingest stream's pull loop, in a group of their own: they hold the lanes'
/// dispatch, so they must end (at shutdown) before the lanes can finish.
fn start_pulling(
    ctx: &Arc<Ctx>,
    partitions: &Arc<Partitions>,
    legacy: Option<PullConsumer>,
    reconnected: watch::Receiver<()>,
    lanes: &Lanes,
    shutdown: &CancellationToken,
) -> Tasks {
    let pulling = ctx.tasks.group();
    if let Some(legacy) = legacy {
        let lanes = lanes.dispatch().clone();
        let max = ctx.config.batch.max_messages;
        pulling.spawn_critical(
            "legacy_ingest",
            Ends::AtShutdown,
            intake::pull(
                Arc::clone(ctx),
                legacy,
                lanes,
                max,
                reconnected,
                shutdown.clone(),
            ),
        );
    }
    partitions.bid(ctx, &pulling, lanes.dispatch(), shutdown);
    pulling
}

/// The consumers all workers share.
struct Shared {
    /// The legacy ingest stream's, while it exists.
    legacy: Option<PullConsumer>,
    bulk: PullConsumer,
    commands: PullConsumer,
    marks: PullConsumer,
    /// The notifications', when notifications are on.
    notify: Option<PullConsumer>,
}

/// The consumers all workers share, created or updated with this worker's
/// settings (the lanes' in-progress acks are timed by ack_wait, and
/// max_ack_pending bounds what they queue).
async fn shared_consumers(
    js: &jetstream::Context,
    config: &WorkerConfig,
) -> Result<Shared, WorkerError> {
    let ack_wait = config.batch.ack_wait;
    let legacy = match js.get_stream(subjects::LEGACY_INGEST_STREAM).await {
        Ok(stream) => Some(
            stream
                .create_consumer(chat_streams::worker_consumer(
                    subjects::LEGACY_CONSUMER,
                    ack_wait,
                    config.batch.max_ack_pending,
                ))
                .await
                .map_err(WorkerError::nats)?,
        ),
        Err(_) => None,
    };
    let max = config.batch.max_messages as i64;
    let bulk = consumer_of(
        js,
        subjects::BULK_STREAM,
        chat_streams::worker_consumer(subjects::BULK_CONSUMER, ack_wait, max),
    )
    .await?;
    let commands = consumer_of(
        js,
        subjects::COMMAND_STREAM,
        chat_streams::command_consumer(ack_wait),
    )
    .await?;
    let marks = consumer_of(
        js,
        subjects::MARK_STREAM,
        chat_streams::worker_consumer(subjects::MARK_CONSUMER, marks::ACK_WAIT, max),
    )
    .await?;
    let notify = if config.notify.enabled() {
        let ack_wait = notify::ack_wait(config.notify.timeout);
        // Room for several workers' calls in flight.
        let at_once = 8 * config.notify.concurrency.get() as i64;
        let consumer = chat_streams::worker_consumer(subjects::NOTIFY_CONSUMER, ack_wait, at_once);
        Some(consumer_of(js, subjects::NOTIFY_STREAM, consumer).await?)
    } else {
        None
    };
    Ok(Shared {
        legacy,
        bulk,
        commands,
        marks,
        notify,
    })
}

async fn consumer_of(
    js: &jetstream::Context,
    stream: &str,
    config: async_nats::jetstream::consumer::pull::Config,
) -> Result<PullConsumer, WorkerError> {
    js.get_stream(stream)
        .await
        .map_err(WorkerError::nats)?
        .create_consumer(config)
        .await
        .map_err(WorkerError::nats)
}
