//! What the worker pulls besides its partitions, and how anything pulled
//! reaches the lanes: the shared consumers (bulk sends, and the legacy
//! ingest stream of releases before partitions, drained at upgrade), pulled
//! in rounds of a batch.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use chat_protocol::subjects::{self, Ingest};
use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    canary,
    ctx::Ctx,
    error::WorkerError,
    lanes::{Dispatch, Lanes},
    pulled::Pulled,
};

pub type PullConsumer = jetstream::consumer::Consumer<jetstream::consumer::pull::Config>;

/// How long a waiting pull request lasts.
const LONG_POLL: Duration = Duration::from_secs(5);
/// Longest a round of pulling may take: a long poll whose end JetStream
/// never sent (without a reconnect to tell) must not idle the worker.
const ROUND_LIMIT: Duration = Duration::from_secs(6);
/// Pause after a failed pull (NATS down, consumer gone) before the next.
const PULL_RETRY: Duration = Duration::from_millis(250);

/// Pulls sends for the lanes until shutdown; a failed pull (NATS down,
/// consumer gone) is logged and tried again shortly.
pub async fn pull(
    ctx: Arc<Ctx>,
    consumer: PullConsumer,
    lanes: Dispatch,
    max: usize,
    mut reconnected: watch::Receiver<()>,
    shutdown: CancellationToken,
) {
    loop {
        reconnected.borrow_and_update();
        let round = tokio::select! {
            round = tokio::time::timeout(ROUND_LIMIT, pull_round(&ctx, &consumer, &lanes, max)) => {
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
    lanes: &Dispatch,
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
pub async fn hand_over(
    ctx: &Arc<Ctx>,
    lanes: &Dispatch,
    pulled: Vec<Result<jetstream::Message, async_nats::Error>>,
) -> Result<bool, WorkerError> {
    let mut sends = Vec::with_capacity(pulled.len());
    let mut failed = None;
    for msg in pulled {
        match msg {
            Ok(msg) if subjects::ingest_kind(msg.subject.as_str()) == Ingest::Canary => {
                canary::answer(ctx, msg).await
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
/// Pulls a shared consumer of work beside the sends (read marks,
/// notifications) in rounds of at most `max`, handing on each chunk as soon
/// as it is ready, until shutdown; the chunk under way is finished first.
pub async fn pull_chunks<F, Fut>(
    consumer: &PullConsumer,
    max: usize,
    what: &'static str,
    shutdown: &CancellationToken,
    mut handle: F,
) where
    F: FnMut(Vec<jetstream::Message>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    while !shutdown.is_cancelled() {
        let pulled = consumer
            .batch()
            .max_messages(max)
            .expires(LONG_POLL)
            .messages()
            .await;
        let mut pulled = match pulled {
            Ok(pulled) => pulled.ready_chunks(max),
            Err(e) => {
                tracing::warn!(error = %e, what, "pulling failed");
                tokio::select! {
                    () = tokio::time::sleep(PULL_RETRY) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        // A pull whose end never came (its connection lost) ends the round.
        let round_end = tokio::time::Instant::now() + ROUND_LIMIT;
        loop {
            let chunk = tokio::select! {
                chunk = tokio::time::timeout_at(round_end, pulled.next()) => chunk,
                () = shutdown.cancelled() => return,
            };
            let Ok(Some(chunk)) = chunk else { break };
            let msgs = chunk
                .into_iter()
                .filter_map(|m| {
                    m.map_err(|e| tracing::warn!(error = %e, what, "pulling failed"))
                        .ok()
                })
                .collect();
            handle(msgs).await;
        }
    }
}

/// Longest bulk work (read marks, notifications) waits for the
/// partitions' sends to drain.
pub const MAX_HOLD: Duration = Duration::from_secs(2);
/// How often the partitions' backlog is asked while holding.
const HOLD_CHECK: Duration = Duration::from_millis(200);

/// Waits while any partition has sends waiting, up to `MAX_HOLD`: work of
/// the bulk class that is not stored in lanes (marks, notifications) goes
/// after the sends.
pub async fn hold_while_sends_wait(ctx: &Ctx) {
    let until = tokio::time::Instant::now() + MAX_HOLD;
    while tokio::time::Instant::now() < until {
        match chat_streams::backlog(&ctx.js, ctx.config.stream.partitions).await {
            Ok(backlog) if backlog.waiting > 0 => tokio::time::sleep(HOLD_CHECK).await,
            _ => return,
        }
    }
}

const BULK_IDLE: Duration = Duration::from_millis(200);
const BULK_IDLE_MAX: Duration = Duration::from_secs(2);

/// Pulls bulk sends for their own lanes, a batch at a time and only while
/// no partition has a send waiting, so bulk work never delays a chat
/// message; then lets its lanes store what they hold. The partitions are
/// asked only while bulk work waits.
pub async fn pull_bulk(
    ctx: Arc<Ctx>,
    mut bulk: PullConsumer,
    lanes: Lanes,
    shutdown: CancellationToken,
) {
    let max = ctx.config.batch.max_messages;
    let mut idle = BULK_IDLE;
    while !shutdown.is_cancelled() {
        let bulk_waiting = bulk
            .info()
            .await
            .is_ok_and(|info| info.num_pending > 0 || info.num_ack_pending > 0);
        let sends_waiting = bulk_waiting
            && chat_streams::backlog(&ctx.js, ctx.config.stream.partitions)
                .await
                .map_or(true, |backlog| backlog.waiting > 0);
        let pulled = if sends_waiting || !bulk_waiting {
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
        match hand_over(&ctx, lanes.dispatch(), pulled).await {
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

/// Publishes the partitions' backlog (not yet delivered + delivered but not
/// acked) as a gauge, for dashboards and autoscaling on lag.
pub async fn report_lag(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let partitions = ctx.config.stream.partitions;
        if let Ok(backlog) = chat_streams::backlog(&ctx.js, partitions).await {
            crate::metrics::pending(backlog.waiting + backlog.unacked);
        }
    }
}
