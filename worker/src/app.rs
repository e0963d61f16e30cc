//! Builds the worker from its configuration and runs its consume loop.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use chat_protocol::subjects;
use chat_store::Store;
use futures::StreamExt;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::{net::TcpListener, sync::watch};
use tokio_util::sync::CancellationToken;

use chat_tasks::{Ends, Tasks};

use crate::{
    canary, commands, config::WorkerConfig, ctx::Ctx, error::WorkerError, health, lanes::Lanes,
    pulled::Pulled,
};

type PullConsumer = jetstream::consumer::Consumer<jetstream::consumer::pull::Config>;

pub struct Worker {
    ctx: Arc<Ctx>,
    http: TcpListener,
    consumer: PullConsumer,
    /// The command consumer, pulled by a loop of its own (`commands`).
    commands: PullConsumer,
    /// The bulk consumer, pulled only while `consumer` has nothing waiting.
    bulk: PullConsumer,
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
        let ack_wait = config.batch.ack_wait;
        let consumer = stream
            .create_consumer(chat_streams::worker_consumer(
                subjects::WORKER_CONSUMER,
                ack_wait,
                config.batch.max_ack_pending,
            ))
            .await
            .map_err(WorkerError::nats)?;
        let bulk = js
            .get_stream(subjects::BULK_STREAM)
            .await
            .map_err(WorkerError::nats)?
            .create_consumer(chat_streams::worker_consumer(
                subjects::BULK_CONSUMER,
                ack_wait,
                config.batch.max_messages as i64,
            ))
            .await
            .map_err(WorkerError::nats)?;
        let commands = js
            .get_stream(subjects::COMMAND_STREAM)
            .await
            .map_err(WorkerError::nats)?
            .create_consumer(chat_streams::command_consumer(ack_wait))
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
                tasks: Tasks::new(shutdown.clone(), crate::metrics::TASKS),
            }),
            http,
            consumer,
            commands,
            bulk,
            reconnected,
            shutdown,
        })
    }

    /// Consumes until shutdown, three classes each with its own consumer
    /// and concurrency: commands (one at a time, `commands`), sends (pulled
    /// and handed to their rooms' lanes, which store each batch in one
    /// transaction, several lanes at once) and bulk sends (lanes of their
    /// own, pulled only while no send waits). On shutdown it stops pulling
    /// and lets the lanes store what they hold. An error if a task the
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
        let (consumer, shutdown) = (self.consumer.clone(), self.shutdown.clone());
        // Restarting: it holds no state, and only a gauge waits meanwhile.
        tasks.spawn_restarting("lag", move || {
            report_lag(consumer.clone(), shutdown.clone())
        });
        // The consumer's own ack_wait (which this worker just set) times the
        // lanes' in-progress acks.
        let ack_wait = self.consumer.cached_info().config.ack_wait;
        let batch = &self.ctx.config.batch;
        let lanes = Lanes::start(&self.ctx, "lane", batch.concurrency.get(), ack_wait);
        let bulk_lanes = Lanes::start(
            &self.ctx,
            "bulk_lane",
            batch.bulk_concurrency.get(),
            ack_wait,
        );
        // Critical: it owns the bulk lanes, which die with it.
        tasks.spawn_critical(
            "bulk",
            Ends::AtShutdown,
            pull_bulk(
                Arc::clone(&self.ctx),
                self.consumer.clone(),
                self.bulk,
                bulk_lanes,
                self.shutdown.clone(),
            ),
        );
        let (ctx, commands, shutdown) =
            (Arc::clone(&self.ctx), self.commands, self.shutdown.clone());
        // Restarting: the command under way when it died is not acked, so
        // JetStream redelivers it; a command that makes it panic costs a
        // restart each time it comes back, not every worker in turn.
        tasks.spawn_restarting("commands", move || {
            commands::run(Arc::clone(&ctx), commands.clone(), shutdown.clone())
        });
        tracing::info!("worker consuming");
        pull(
            &self.ctx,
            &self.consumer,
            &lanes,
            batch.max_messages,
            self.reconnected,
            &self.shutdown,
        )
        .await;
        // Pulling also stops when a lane died: then the rest stop too.
        self.shutdown.cancel();
        lanes.finish().await;
        tasks.wait().await;
        let _ = self.ctx.nats.flush().await;
        tracing::info!("worker stopped");
        tasks
            .died()
            .map_or(Ok(()), |task| Err(WorkerError::TaskDied(task)))
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
    ctx: &Arc<Ctx>,
    consumer: &PullConsumer,
    lanes: &Lanes,
    max: usize,
    mut reconnected: watch::Receiver<()>,
    shutdown: &CancellationToken,
) {
    loop {
        reconnected.borrow_and_update();
        let round = tokio::select! {
            round = tokio::time::timeout(ROUND_LIMIT, pull_round(ctx, consumer, lanes, max)) => {
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
    ctx: &Arc<Ctx>,
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
    if !hand_over(ctx, lanes, waiting).await? {
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
        if !hand_over(ctx, lanes, ready).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Hands the sends of a pull to the lanes, answering canaries on the way;
/// a payload that is no send is dead-lettered apart, so it holds up no one.
/// A failure within the pull is returned once the sends delivered before it
/// are handed over. False once the lanes are gone.
async fn hand_over(
    ctx: &Arc<Ctx>,
    lanes: &Lanes,
    pulled: Vec<Result<jetstream::Message, async_nats::Error>>,
) -> Result<bool, WorkerError> {
    let mut sends = Vec::with_capacity(pulled.len());
    let mut failed = None;
    for msg in pulled {
        match msg {
            Ok(msg) if subjects::is_canary_ingest(msg.subject.as_str()) => {
                canary::answer(&ctx.nats, msg).await
            }
            Ok(msg) => match Pulled::split(msg) {
                Ok(split) => sends.extend(split),
                Err(undecodable) => {
                    let dead_letter = {
                        let ctx = Arc::clone(ctx);
                        async move {
                            let (msg, e) = *undecodable;
                            ctx.fail_undecodable(&msg, &e).await
                        }
                    };
                    // One-shot: should it die, the message, not acked, is
                    // redelivered and dead-lettered then.
                    ctx.tasks.spawn_once("undecodable", dead_letter);
                }
            },
            Err(e) => failed = Some(e),
        }
    }
    if !lanes.dispatch(sends) {
        return Ok(false);
    }
    failed.map_or(Ok(true), |e| Err(WorkerError::nats(e)))
}

/// How soon the bulk class looks again while sends wait or bulk is empty;
/// while bulk stays empty the pause doubles up to `BULK_IDLE_MAX`, so an
/// idle worker does not ask JetStream for the consumer's state five times
/// a second. Bulk work may wait that long to start.
const BULK_IDLE: Duration = Duration::from_millis(200);
const BULK_IDLE_MAX: Duration = Duration::from_secs(2);

/// Pulls bulk sends for their own lanes, a batch at a time and only while
/// the ingest consumer has no send waiting, so bulk work never delays a
/// chat message; then lets its lanes store what they hold.
async fn pull_bulk(
    ctx: Arc<Ctx>,
    mut sends: PullConsumer,
    bulk: PullConsumer,
    lanes: Lanes,
    shutdown: CancellationToken,
) {
    let max = ctx.config.batch.max_messages;
    let mut idle = BULK_IDLE;
    while !shutdown.is_cancelled() {
        let sends_waiting = match sends.info().await {
            Ok(info) => info.num_pending > 0,
            Err(_) => true,
        };
        let pulled = if sends_waiting {
            Vec::new()
        } else {
            match bulk.fetch().max_messages(max).messages().await {
                Ok(pulled) => pulled.collect().await,
                Err(e) => {
                    tracing::warn!(error = %e, "bulk pull failed");
                    Vec::new()
                }
            }
        };
        if pulled.is_empty() {
            let pause = if sends_waiting { BULK_IDLE } else { idle };
            idle = if sends_waiting {
                BULK_IDLE
            } else {
                (idle * 2).min(BULK_IDLE_MAX)
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => continue,
                () = shutdown.cancelled() => break,
            }
        }
        idle = BULK_IDLE;
        match hand_over(&ctx, &lanes, pulled).await {
            Ok(true) => {}
            // A bulk lane died: the worker stops.
            Ok(false) => {
                shutdown.cancel();
                break;
            }
            Err(e) => tracing::warn!(error = %e, "bulk pull failed"),
        }
    }
    lanes.finish().await;
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
