//! Ingest partitions and their owners (decision 15). Each partition has a
//! stream and a durable consumer whose priority group pins one client:
//! JetStream delivers the partition's sends to that worker alone and moves
//! the pin to a standby once the owner has not pulled for
//! `batch.priority_timeout_ms`. Every worker bids for every partition (a
//! pull request waiting as a standby) except those it released a moment
//! ago, and hands what it gets through the partition's gate, so that sends
//! reach the lanes in stream order whoever held them before.
//!
//! Who owns what is the server's pin; this module only spreads the pins.
//! Each worker writes its name to the KV bucket `chat_workers` every second
//! (entries expire after five), aims to own its share of the partitions
//! that have an owner (those that had traffic), rounded up, and releases one
//! partition at a time while it owns more than that for a few seconds in a
//! row.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, kv, AckKind};
use chat_protocol::subjects;
use futures::StreamExt;
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    ctx::Ctx,
    error::WorkerError,
    gate::Gate,
    intake::{self, PullConsumer},
    lanes::Dispatch,
    metrics,
};

/// How long a pull request waits: the owner renews its pin at least this
/// often, well within `priority_timeout`.
const PULL_EXPIRES: Duration = Duration::from_secs(1);
/// How often a gate holding sends above a hole reads the ack floor.
const GATE_POLL: Duration = Duration::from_millis(100);
/// Pause after a failed pull before the next.
const PULL_RETRY: Duration = Duration::from_millis(250);
/// How often a worker says it is alive and weighs what it owns.
const BALANCE_EVERY: Duration = Duration::from_secs(1);
/// How long the bucket keeps a worker's name after its last word.
const ALIVE_FOR: Duration = Duration::from_secs(5);
/// Balance rounds in a row above its share before a worker releases one.
const ABOVE_ROUNDS: u32 = 3;
/// How long a worker leaves a partition it released to the others.
const COOLDOWN: Duration = Duration::from_secs(10);
/// The bucket of workers alive.
const WORKERS_BUCKET: &str = "chat_workers";

/// One partition as this worker sees it.
struct Slot {
    consumer: PullConsumer,
    /// The pin id on the last message this worker got, if any.
    pin: Mutex<Option<String>>,
    /// Told to give the partition up.
    release: Notify,
}

/// The partitions of this worker's view, shared by the owner loops and
/// the balancer.
pub struct Partitions {
    slots: Vec<Slot>,
}

impl Partitions {
    /// Creates (or updates) each partition's consumer with this worker's
    /// settings.
    pub async fn join(ctx: &Ctx) -> Result<Arc<Self>, WorkerError> {
        let (stream, batch) = (&ctx.config.stream, &ctx.config.batch);
        let share = (batch.max_ack_pending / i64::from(stream.partitions)).max(1);
        let mut slots = Vec::with_capacity(stream.partitions as usize);
        for partition in 0..stream.partitions {
            let consumer = ctx
                .js
                .get_stream(subjects::ingest_stream(partition))
                .await
                .map_err(WorkerError::nats)?
                .create_consumer(chat_streams::partition_consumer(
                    partition,
                    batch.ack_wait,
                    share,
                    batch.priority_timeout,
                ))
                .await
                .map_err(WorkerError::nats)?;
            slots.push(Slot {
                consumer,
                pin: Mutex::new(None),
                release: Notify::new(),
            });
        }
        Ok(Arc::new(Self { slots }))
    }

    /// Starts an owner loop per partition in `tasks`.
    pub fn bid(
        self: &Arc<Self>,
        ctx: &Arc<Ctx>,
        tasks: &chat_tasks::Tasks,
        lanes: &Dispatch,
        shutdown: &CancellationToken,
    ) {
        for partition in 0..self.slots.len() {
            let (this, ctx, lanes, shutdown) = (
                Arc::clone(self),
                Arc::clone(ctx),
                lanes.clone(),
                shutdown.clone(),
            );
            // Restarting: a gate holds nothing that JetStream does not
            // redeliver, and a new loop reads the ack floor afresh.
            tasks.spawn_restarting("partition", move || {
                own(
                    Arc::clone(&this),
                    partition,
                    Arc::clone(&ctx),
                    lanes.clone(),
                    shutdown.clone(),
                )
            });
        }
    }

    /// Says this worker is alive and releases a partition while it owns
    /// more than its share, until shutdown.
    pub async fn balance(self: Arc<Self>, ctx: Arc<Ctx>, shutdown: CancellationToken) {
        let name = format!("w{:016x}", rand::random::<u64>());
        let bucket = match workers_bucket(&ctx).await {
            Ok(bucket) => bucket,
            Err(e) => {
                tracing::warn!(error = %e, "no workers bucket; keeping every pin given");
                return shutdown.cancelled().await;
            }
        };
        let mut every = tokio::time::interval(BALANCE_EVERY);
        let mut above = 0;
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let alive = alive(&bucket, &name).await;
            let (owned, pinned) = self.census().await;
            let target = pinned.div_ceil(alive.max(1));
            metrics::partitions_target(target);
            above = if owned.len() > target { above + 1 } else { 0 };
            if above >= ABOVE_ROUNDS {
                above = 0;
                if let Some(&partition) = owned.last() {
                    tracing::info!(
                        partition,
                        owned = owned.len(),
                        target,
                        "releasing a partition"
                    );
                    self.slots[partition].release.notify_one();
                }
            }
        }
        let _ = bucket.purge(&name).await;
    }

    /// The partitions whose current pin is the one this worker last got,
    /// and how many have a pin at all.
    async fn census(&self) -> (Vec<usize>, usize) {
        let (mut owned, mut pinned) = (Vec::new(), 0);
        for (partition, slot) in self.slots.iter().enumerate() {
            let now = pinned_now(&slot.consumer).await;
            pinned += usize::from(now.is_some());
            let mine = now.is_some() && *slot.pin.lock().expect("poisoned") == now;
            metrics::partition_owned(partition as u32, mine);
            if mine {
                owned.push(partition);
            }
        }
        (owned, pinned)
    }
}

/// The pin id the consumer's group has now, if any.
async fn pinned_now(consumer: &PullConsumer) -> Option<String> {
    let info = consumer.get_info().await.ok()?;
    info.priority_groups
        .into_iter()
        .find(|group| group.group == subjects::INGEST_GROUP)
        .and_then(|group| group.pinned_client_id)
}

async fn workers_bucket(ctx: &Ctx) -> Result<kv::Store, async_nats::Error> {
    if let Ok(bucket) = ctx.js.get_key_value(WORKERS_BUCKET).await {
        return Ok(bucket);
    }
    Ok(ctx
        .js
        .create_key_value(kv::Config {
            bucket: WORKERS_BUCKET.into(),
            history: 1,
            max_age: ALIVE_FOR,
            storage: jetstream::stream::StorageType::Memory,
            num_replicas: ctx.config.stream.replicas,
            ..Default::default()
        })
        .await?)
}

/// Writes this worker's name, and counts the names alive (at least one:
/// this worker, whatever the bucket says).
async fn alive(bucket: &kv::Store, name: &str) -> usize {
    if let Err(e) = bucket.put(name, "alive".into()).await {
        tracing::warn!(error = %e, "cannot say this worker is alive");
    }
    match bucket.keys().await {
        Ok(keys) => keys
            .filter(|k| std::future::ready(k.is_ok()))
            .count()
            .await
            .max(1),
        Err(_) => 1,
    }
}

/// A message held by the gate, and when its ack timer last started.
struct Held {
    msg: jetstream::Message,
    since: Instant,
}

/// Bids for one partition until shutdown: pulls as a standby until pinned,
/// then hands what it gets through the gate. Told to release, it gives back
/// what it holds, unpins, and waits `COOLDOWN` before bidding again.
async fn own(
    partitions: Arc<Partitions>,
    partition: usize,
    ctx: Arc<Ctx>,
    lanes: Dispatch,
    shutdown: CancellationToken,
) {
    let slot = &partitions.slots[partition];
    loop {
        let released = tokio::select! {
            released = pull(&ctx, slot, &lanes) => released,
            () = shutdown.cancelled() => false,
        };
        let pin = slot.pin.lock().expect("poisoned").take();
        metrics::partition_owned(partition as u32, false);
        if pin.is_some() && pinned_now(&slot.consumer).await == pin {
            // The standby pulls get the pin at once, not after priority_timeout.
            let name = subjects::ingest_consumer(partition as u32);
            let stream = slot.consumer.cached_info().stream_name.clone();
            if let Ok(stream) = ctx.js.get_stream(stream).await {
                let _ = stream.unpin_consumer(&name, subjects::INGEST_GROUP).await;
            }
            metrics::partition_released();
        }
        if !released {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(COOLDOWN) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Pulls the partition through its gate until told to release it (true);
/// the messages the gate holds are nakked on the way out, for the next
/// owner. Runs until cancelled otherwise.
async fn pull(ctx: &Arc<Ctx>, slot: &Slot, lanes: &Dispatch) -> bool {
    let mut gate: Option<Gate<Held>> = None;
    let released = loop {
        match pull_stream(ctx, slot, lanes, &mut gate).await {
            Ok(true) => break true,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "partition pull failed");
                tokio::select! {
                    () = tokio::time::sleep(PULL_RETRY) => {}
                    () = slot.release.notified() => break true,
                }
            }
        }
    };
    for held in gate.map(Gate::into_held).unwrap_or_default() {
        let _ = held.msg.ack_with(AckKind::Nak(None)).await;
    }
    released
}

/// One pull stream's life: true when told to release, false when the
/// stream ended (it is opened again).
async fn pull_stream(
    ctx: &Arc<Ctx>,
    slot: &Slot,
    lanes: &Dispatch,
    gate: &mut Option<Gate<Held>>,
) -> Result<bool, WorkerError> {
    let max = ctx.config.batch.max_messages;
    let mut messages = slot
        .consumer
        .stream()
        .group(subjects::INGEST_GROUP)
        .max_messages_per_batch(max)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(WorkerError::nats)?
        .ready_chunks(max);
    let ack_wait = ctx.config.batch.ack_wait;
    let mut poll = tokio::time::interval(GATE_POLL);
    loop {
        let holding = gate.as_ref().is_some_and(Gate::holding);
        let ready = tokio::select! {
            ready = messages.next() => match ready {
                Some(ready) => ready,
                None => return Ok(false),
            },
            _ = poll.tick(), if holding => {
                let gate = gate.as_mut().expect("holding");
                let floor = ack_floor(&slot.consumer).await?;
                let out = gate.acked_through(floor);
                keep_alive(gate, ack_wait).await;
                if !intake::hand_over(ctx, lanes, out.into_iter().map(|h| Ok(h.msg)).collect()).await? {
                    return Ok(false);
                }
                continue;
            }
            () = slot.release.notified() => return Ok(true),
        };
        let mut out = Vec::with_capacity(ready.len());
        let mut failed = None;
        for msg in ready {
            let msg = match msg {
                Ok(msg) => msg,
                Err(e) => {
                    failed = Some(e);
                    continue;
                }
            };
            saw(slot, &msg);
            let Ok(seq) = msg.info().map(|info| info.stream_sequence) else {
                continue;
            };
            if gate.is_none() {
                *gate = Some(Gate::new(ack_floor(&slot.consumer).await?));
            }
            let gate = gate.as_mut().expect("set above");
            let released = gate.arrive(
                seq,
                Held {
                    msg,
                    since: Instant::now(),
                },
            );
            if gate.holding() && released.is_empty() {
                metrics::gate_held();
            }
            out.extend(released.into_iter().map(|held| Ok(held.msg)));
        }
        intake::hand_over(ctx, lanes, out).await?;
        if let Some(e) = failed {
            return Err(WorkerError::nats(e));
        }
    }
}

/// Notes the pin a message carries.
fn saw(slot: &Slot, msg: &jetstream::Message) {
    let headers = msg.headers.as_ref();
    if let Some(pin) = headers.and_then(|h| h.get(async_nats::header::NATS_PIN_ID)) {
        *slot.pin.lock().expect("poisoned") = Some(pin.as_str().to_owned());
    }
}

/// Every seq at or below this is acked, by whichever worker.
async fn ack_floor(consumer: &PullConsumer) -> Result<u64, WorkerError> {
    let info = consumer.get_info().await.map_err(WorkerError::nats)?;
    Ok(info.ack_floor.stream_sequence)
}

/// Restarts the ack timers of held messages older than half of `ack_wait`,
/// so that waiting behind a hole does not count as a failed delivery.
async fn keep_alive(gate: &mut Gate<Held>, ack_wait: Duration) {
    let now = Instant::now();
    for held in gate.held_mut().filter(|h| now - h.since >= ack_wait / 2) {
        held.since = now;
        metrics::in_progress_ack();
        let _ = held.msg.ack_with(AckKind::Progress).await;
    }
}
