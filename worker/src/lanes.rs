//! Lanes: pulled sends are spread over `batch.concurrency` lanes by their
//! room's ingest partition, so one worker stores and publishes each room's
//! sends in the order it pulled them while partitions on other lanes
//! proceed in parallel. A lane's transaction holds whatever its partitions
//! queued: one partition per transaction cost sends' latency four times
//! over at 1,200 sends/s (bench/RESULTS.md §10); with `batch.concurrency`
//! at least P, a lane holds one partition (docs/scaling.md).
//!
//! Handing a send to its lane never waits: a lane queues whatever it is
//! given. A busy room (a flood, a slow transaction) therefore delays only its
//! own lane, never the dispatch of other rooms. What the lanes hold is
//! bounded by the consumer's `max_ack_pending` (JetStream stops delivering
//! at that many unacknowledged sends), not by a channel.
//!
//! A send may wait in a lane, or in a slow transaction, for longer than
//! `ack_wait`; the lane then sends in-progress acks (for the message it came
//! in) so that JetStream does not redeliver work that is still under way.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chat_protocol::{subjects, RoomId};
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};

use chat_tasks::{Ends, Tasks};

use crate::{
    ctx::Ctx,
    persist,
    pulled::{keep_alive, Alive, Pulled},
};

/// Which of `lanes` lanes stores the sends of `room`: always the same one,
/// the one of its partition (of `partitions`), so a room's sends are stored
/// in the order they were pulled.
pub fn lane_of(room: &RoomId, partitions: u32, lanes: usize) -> usize {
    subjects::partition(room, partitions) as usize % lanes
}

/// The lanes of one worker, fed by its pull loops through `Dispatch`es.
pub struct Lanes {
    dispatch: Dispatch,
    tasks: Tasks,
}

/// Hands sends to a worker's lanes; the lanes finish what they hold once
/// every copy of it is dropped.
#[derive(Clone)]
pub struct Dispatch {
    /// One per lane.
    senders: Vec<mpsc::UnboundedSender<Vec<Pulled>>>,
    partitions: u32,
}

impl Lanes {
    /// Starts `count` lanes, each a task called `name`. `ack_wait` is the
    /// consumer's: held sends are kept alive well within it.
    pub fn start(ctx: &Arc<Ctx>, name: &'static str, count: usize, ack_wait: Duration) -> Self {
        let tasks = ctx.tasks.group();
        let senders = (0..count)
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                // Critical: a lane that died took its queue with it, and the
                // dispatcher cannot replace it. The worker stops (the other
                // lanes store what they hold), JetStream redelivers what the
                // dead lane held, and Kubernetes starts a new worker.
                // A lane ends on its own once its dispatcher lets go of it.
                tasks.spawn_critical(name, Ends::OnItsOwn, lane(Arc::clone(ctx), rx, ack_wait));
                tx
            })
            .collect();
        Self {
            dispatch: Dispatch {
                senders,
                partitions: ctx.config.stream.partitions,
            },
            tasks,
        }
    }

    /// A handle that feeds these lanes.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Lets every lane store what it holds, once every other `Dispatch` is
    /// gone too, then returns.
    pub async fn finish(self) {
        drop(self.dispatch);
        self.tasks.wait().await;
    }
}

impl Dispatch {
    /// Hands sends that were ready together to their lanes, one group per
    /// lane, without waiting. False once a lane has stopped.
    pub fn dispatch(&self, ready: Vec<Pulled>) -> bool {
        let mut groups: Vec<Vec<Pulled>> = self.senders.iter().map(|_| Vec::new()).collect();
        for send in ready {
            groups[lane_of(&send.room, self.partitions, self.senders.len())].push(send);
        }
        groups
            .into_iter()
            .zip(&self.senders)
            .filter(|(group, _)| !group.is_empty())
            .all(|(group, lane)| lane.send(group).is_ok())
    }
}

/// A send a lane holds, and when its ack timer last started: at delivery
/// (approximately: when the lane got it) or at its last in-progress ack.
struct Held {
    send: Pulled,
    alive: Alive,
    since: Instant,
}

/// Stores whatever sends are queued on this lane (up to a batch) in one
/// transaction, then the next batch; meanwhile queues what arrives and keeps
/// every held send alive. Once the dispatcher stops, stores what it still
/// holds and returns.
async fn lane(ctx: Arc<Ctx>, mut rx: mpsc::UnboundedReceiver<Vec<Pulled>>, ack_wait: Duration) {
    let max = ctx.config.batch.max_messages;
    // A held send is refreshed once half of ack_wait has passed, checked
    // every quarter: at most three quarters of ack_wait go by unrefreshed.
    let stale = ack_wait / 2;
    let mut check = tokio::time::interval(ack_wait / 4);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut queue: VecDeque<Held> = VecDeque::new();
    let mut open = true;
    let receive = |queue: &mut VecDeque<Held>, group: Vec<Pulled>| {
        let since = Instant::now();
        queue.extend(group.into_iter().map(|send| Held {
            alive: send.alive(),
            send,
            since,
        }));
    };
    loop {
        while let Ok(group) = rx.try_recv() {
            receive(&mut queue, group);
        }
        if queue.is_empty() {
            match rx.recv().await {
                Some(group) => {
                    receive(&mut queue, group);
                    continue;
                }
                None => return,
            }
        }
        let take = queue.len().min(max);
        let mut batch_since = queue
            .iter()
            .take(take)
            .map(|h| h.since)
            .min()
            .unwrap_or_else(Instant::now);
        let (batch, storing): (Vec<Pulled>, Vec<Alive>) =
            queue.drain(..take).map(|h| (h.send, h.alive)).unzip();
        let store = persist::handle_batch(&ctx, batch);
        tokio::pin!(store);
        loop {
            tokio::select! {
                () = &mut store => break,
                group = rx.recv(), if open => match group {
                    Some(group) => receive(&mut queue, group),
                    None => open = false,
                },
                _ = check.tick() => {
                    let now = Instant::now();
                    let mut refresh = Vec::new();
                    if now - batch_since >= stale {
                        refresh.extend(&storing);
                        batch_since = now;
                    }
                    for held in queue.iter_mut().filter(|h| now - h.since >= stale) {
                        refresh.push(&held.alive);
                        held.since = now;
                    }
                    keep_alive(refresh).await;
                }
            }
        }
    }
}
