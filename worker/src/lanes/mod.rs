//! Lanes: pulled sends queue by their room's ingest partition, one lane
//! each, and a lane has at most one transaction in flight, so one worker
//! stores and publishes each room's sends in the order it pulled them. Up to
//! `batch.concurrency` transactions run at once, each holding whatever its
//! idle lanes queued, up to a batch; `queues` decides when another starts.
//!
//! Handing sends to the lanes never waits: a lane queues whatever it is
//! given. A busy room (a flood, a slow transaction) therefore delays only its
//! own lane, never the dispatch of other rooms, and other lanes' sends wait
//! for its transaction at most `batch.patience_ms`. What the lanes hold is
//! bounded by the consumer's `max_ack_pending` (JetStream stops delivering
//! at that many unacknowledged sends), not by a channel.
//!
//! A send may wait in a lane, or in a slow transaction, for longer than
//! `ack_wait`; the lanes then send in-progress acks (for the message it came
//! in) so that JetStream does not redeliver work that is still under way.

mod queues;

use std::{panic, sync::Arc, time::Duration};

use chat_protocol::{subjects, RoomId};
use tokio::{
    sync::mpsc,
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};

use chat_tasks::{Ends, Tasks};

use crate::{
    ctx::Ctx,
    persist,
    pulled::{keep_alive, Alive, Pulled},
};
use queues::{Queues, Start};

/// The lane of `room`'s sends: its partition's (of `partitions`), so a
/// room's sends are stored in the order they were pulled.
pub fn lane_of(room: &RoomId, partitions: u32) -> usize {
    subjects::partition(room, partitions) as usize
}

/// The lanes of one worker, fed by its pull loops through `Dispatch`es.
pub struct Lanes {
    dispatch: Dispatch,
    tasks: Tasks,
}

/// Hands sends to a worker's lanes; the lanes finish what they hold once
/// every copy of it is dropped.
#[derive(Clone)]
pub struct Dispatch(mpsc::UnboundedSender<Vec<Pulled>>);

impl Lanes {
    /// Starts the lanes in a task called `name`, with at most `concurrency`
    /// transactions at once. `ack_wait` is the consumer's: held sends are
    /// kept alive well within it.
    pub fn start(
        ctx: &Arc<Ctx>,
        name: &'static str,
        concurrency: usize,
        ack_wait: Duration,
    ) -> Self {
        let tasks = ctx.tasks.group();
        let (tx, rx) = mpsc::unbounded_channel();
        // Critical: the lanes hold their queues, and nothing can replace
        // them. The worker stops, JetStream redelivers what they held, and
        // Kubernetes starts a new worker. They end on their own once their
        // dispatchers let go of them.
        let run = run(Arc::clone(ctx), rx, concurrency, ack_wait);
        tasks.spawn_critical(name, Ends::OnItsOwn, run);
        Self {
            dispatch: Dispatch(tx),
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
    /// Hands sends that were ready together to the lanes, without waiting.
    /// False once the lanes have stopped.
    pub fn dispatch(&self, ready: Vec<Pulled>) -> bool {
        self.0.send(ready).is_ok()
    }
}

/// A send a lane holds, and when its ack timer last started: at delivery
/// (approximately: when the lane got it) or at its last in-progress ack.
struct Held {
    send: Pulled,
    alive: Alive,
    since: Instant,
}

/// A transaction in flight: the lanes it holds and the sends it stores.
struct InFlight {
    lanes: Vec<usize>,
    storing: Vec<Alive>,
    since: Instant,
}

/// What the lanes hold: the queues and the transactions in flight.
struct State {
    ctx: Arc<Ctx>,
    queues: Queues<Held>,
    /// By slot; a finished transaction's task returns its slot.
    in_flight: Vec<Option<InFlight>>,
    running: JoinSet<usize>,
    concurrency: usize,
}

/// Queues what arrives, starts transactions as `Queues::start` says,
/// keeps every held send alive, and once the dispatchers are gone stores
/// what it still holds and returns.
async fn run(
    ctx: Arc<Ctx>,
    mut rx: mpsc::UnboundedReceiver<Vec<Pulled>>,
    concurrency: usize,
    ack_wait: Duration,
) {
    // A held send is refreshed once half of ack_wait has passed, checked
    // every quarter: at most three quarters of ack_wait go by unrefreshed.
    let stale = ack_wait / 2;
    let mut check = tokio::time::interval(ack_wait / 4);
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = State {
        queues: Queues::new(ctx.config.stream.partitions as usize),
        ctx,
        in_flight: Vec::new(),
        running: JoinSet::new(),
        concurrency,
    };
    let mut open = true;
    loop {
        let wake = state.start_due(!open);
        if !open && state.running.is_empty() && state.queues.is_empty() {
            return;
        }
        tokio::select! {
            group = rx.recv(), if open => match group {
                Some(group) => {
                    state.receive(group);
                    while let Ok(group) = rx.try_recv() {
                        state.receive(group);
                    }
                }
                None => open = false,
            },
            Some(done) = state.running.join_next() => match done {
                Ok(slot) => {
                    let done = state.in_flight[slot].take().expect("a transaction's slot");
                    state.queues.release(&done.lanes);
                }
                // A transaction that panicked ends the lanes the same way.
                Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
                // Cancelled: the runtime is going down.
                Err(_) => return,
            },
            () = sleep_until(wake) => {}
            _ = check.tick() => state.keep_alive(stale).await,
        }
    }
}

impl State {
    fn receive(&mut self, group: Vec<Pulled>) {
        let now = Instant::now();
        let partitions = self.ctx.config.stream.partitions;
        for send in group {
            let lane = lane_of(&send.room, partitions);
            let held = Held {
                alive: send.alive(),
                since: now,
                send,
            };
            self.queues.push(lane, held, now);
        }
    }

    /// Starts the transactions that are due (all that are, with `flush`);
    /// when the next one will be, if one waits.
    fn start_due(&mut self, flush: bool) -> Option<Instant> {
        let batch = &self.ctx.config.batch;
        let (max, patience) = (batch.max_messages, batch.patience);
        while self.running.len() < self.concurrency {
            let in_flight = self.running.len();
            match self
                .queues
                .start(in_flight, max, patience, flush, Instant::now())
            {
                Start::Now => self.start(max),
                Start::At(at) => return Some(at),
                Start::Nothing => return None,
            }
        }
        None
    }

    fn start(&mut self, max: usize) {
        let (batch, lanes) = self.queues.take(max);
        let since = batch.iter().map(|q| q.item.since).min();
        let (batch, storing): (Vec<Pulled>, Vec<Alive>) = batch
            .into_iter()
            .map(|q| (q.item.send, q.item.alive))
            .unzip();
        let slot = match self.in_flight.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.in_flight.push(None);
                self.in_flight.len() - 1
            }
        };
        self.in_flight[slot] = Some(InFlight {
            lanes,
            storing,
            since: since.unwrap_or_else(Instant::now),
        });
        let ctx = Arc::clone(&self.ctx);
        self.running.spawn(async move {
            persist::handle_batch(&ctx, batch).await;
            slot
        });
    }

    /// In-progress acks for every send held `stale` or longer since its
    /// last one, in flight or queued.
    async fn keep_alive(&mut self, stale: Duration) {
        let now = Instant::now();
        let mut refresh = Vec::new();
        for t in self.in_flight.iter_mut().flatten() {
            if now - t.since >= stale {
                refresh.extend(&t.storing);
                t.since = now;
            }
        }
        for held in self.queues.queued_mut().map(|q| &mut q.item) {
            if now - held.since >= stale {
                refresh.push(&held.alive);
                held.since = now;
            }
        }
        keep_alive(refresh).await;
    }
}

/// Sleeps until `at`, or for ever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
