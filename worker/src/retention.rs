//! Retention: every `retention.sweep_ms`, each worker looks for rooms with
//! entries past their limits (a room's own, else `retention.*`) and
//! deletes them from the oldest, one batch per short transaction, in the
//! bulk class: before each batch it waits while sends wait, and after it
//! long enough to stay under `retention.rows_per_sec`. Workers share
//! the rooms (a room's batch is one worker's at a time), and each batch
//! takes its entries out of the room's Redis window. Scheduled messages
//! done with a week ago go the same way.

use std::sync::Arc;

use chat_store::{Due, Limits};
use tokio_util::sync::CancellationToken;

use crate::{ctx::Ctx, intake, metrics};

/// Rooms taken per look: the next sweep takes the rest.
const ROOMS_PER_SWEEP: i64 = 1000;

/// Sweeps until shutdown; a batch under way is finished first.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ctx.config.retention.sweep);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        sweep(&ctx, &shutdown).await;
    }
}

async fn sweep(ctx: &Ctx, shutdown: &CancellationToken) {
    let config = &ctx.config.retention;
    match ctx
        .store
        .retention_due(defaults(ctx), ROOMS_PER_SWEEP)
        .await
    {
        Ok(rooms) => {
            for room in rooms {
                if shutdown.is_cancelled() {
                    return;
                }
                expire(ctx, room, shutdown).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "looking for rooms past their retention failed"),
    }
    let batch = i64::from(config.batch.get());
    loop {
        match ctx.store.purge_scheduled(batch).await {
            Ok(0) => break,
            Ok(n) => metrics::expired("scheduled", n),
            Err(e) => {
                tracing::warn!(error = %e, "deleting old scheduled messages failed");
                break;
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// The workers' default limits.
fn defaults(ctx: &Ctx) -> Limits {
    let config = &ctx.config.retention;
    Limits {
        count: config.max_count.map(|n| n.get() as i64),
        max_age_secs: config.max_age_secs.map(|n| n.get() as i64),
    }
}

/// Deletes the room's expired entries, a batch at a time, until none
/// may go now.
async fn expire(ctx: &Ctx, mut room: Due, shutdown: &CancellationToken) {
    let config = &ctx.config.retention;
    let batch = i64::from(config.batch.get());
    while !shutdown.is_cancelled() {
        intake::hold_while_sends_wait(ctx).await;
        let started = tokio::time::Instant::now();
        let grace_before = chat_protocol::now_ms() - config.grace.as_millis() as i64;
        match (ctx.store)
            .expire_batch(&mut room, defaults(ctx), batch, grace_before)
            .await
        {
            Ok(Some(deleted)) => {
                let pace = deleted as f64 / f64::from(config.rows_per_sec.get());
                let paced = started + std::time::Duration::from_secs_f64(pace);
                metrics::expired("entries", deleted);
                let mut redis = ctx.redis.clone();
                let cut = room.expired_to as u64;
                if let Err(e) = chat_cache::forget_through(&mut redis, &room.room, cut).await {
                    // Its TTL ends it; until then history may show them.
                    tracing::warn!(room = %room.room, error = %e, "expired entries left in the window");
                }
                tokio::select! {
                    () = tokio::time::sleep_until(paced) => {}
                    () = shutdown.cancelled() => return,
                }
            }
            Ok(None) => return,
            Err(e) => {
                return tracing::warn!(room = %room.room, error = %e, "deleting expired entries failed")
            }
        }
    }
}
