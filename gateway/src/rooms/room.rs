//! One room's delivery on one gateway: its fan-out subscription, its
//! order (`reorder`), gap filling from the store, and its local members
//! (`members`). A lost tail is found by the gateway's prober
//! (`tail_probe`), which sends the room the head it saw.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use chat_proto::{
    internal::Fanout,
    v1::{server_frame::Kind, Joined, ServerFrame},
};
use chat_protocol::{access::Access, subjects, RoomId, Seq, UserId};
use futures::{future::BoxFuture, StreamExt};
use prost::Message as _;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::{
    config::DeliveryConfig,
    error::GatewayError,
    metrics,
    rooms::{
        ephemeral::{Ephemeral, Signal},
        history::History,
        members::{Members, Slot},
        reorder::Reorder,
        replay::{CaughtUp, Replay},
    },
    socket::outbox::{Delivery, Member, Outbound},
};

/// What a room task needs from the outside world.
#[derive(Clone)]
pub struct RoomDeps {
    pub nats: async_nats::Client,
    pub history: History,
    pub config: DeliveryConfig,
    pub shutdown: CancellationToken,
}

/// A request to a room task.
pub enum RoomCmd {
    Join {
        member: Member,
        request_id: String,
        since: Option<Seq>,
    },
    Leave {
        conn: u64,
        done: Option<oneshot::Sender<()>>,
    },
    /// A replaying socket caught up (see `replay`).
    CaughtUp(CaughtUp),
    /// The prober saw the room's head at this seq (messages up to it exist).
    Head(Seq),
    /// The user's access changed (`None`: no longer a member, and their
    /// sockets leave the room).
    Access(UserId, Option<Access>),
    /// A member typing, their read marker moved, or online (`crate::signals`).
    Signal(Signal),
    /// The room is deleted: every socket leaves it, and the task retires
    /// (a room made again under its id gets a new task, from its head).
    Deleted,
}

impl From<CaughtUp> for RoomCmd {
    fn from(caught_up: CaughtUp) -> Self {
        Self::CaughtUp(caught_up)
    }
}

/// What a room task needs from the registry that started it. A trait, so
/// the room knows the registry only through these two calls.
pub trait Registry: Send + Sync + 'static {
    /// Called by an idle room: forgets it (and closes its inbox) unless a
    /// command is queued.
    fn retire(&self, room: &RoomId, rx: &mut mpsc::Receiver<RoomCmd>) -> bool;
    /// Hands a `Join` that reached a retiring room to the room's next task.
    fn rejoin(&self, room: RoomId, join: RoomCmd) -> BoxFuture<'static, ()>;
}

/// Largest number of messages read from the store in one query.
const PAGE: usize = 500;

/// A room task's end of the registry: its commands, and where it publishes
/// its delivery position for the prober.
pub struct Inbox {
    pub rx: mpsc::Receiver<RoomCmd>,
    /// The inbox's own sender, for replays; weak so it never keeps it open.
    pub tx: mpsc::WeakSender<RoomCmd>,
    pub next: Arc<AtomicU64>,
}

struct Room {
    id: RoomId,
    deps: RoomDeps,
    /// Where replays send `CaughtUp`.
    tx: mpsc::WeakSender<RoomCmd>,
    members: Members,
    order: Reorder<Arc<Delivery>>,
    /// `order`'s next seq, for the prober.
    shared_next: Arc<AtomicU64>,
    /// Who is typing, whose marker moved.
    ephemeral: Ephemeral,
}

/// Runs a room until it has no members left (or the gateway shuts down).
pub async fn run(id: RoomId, deps: RoomDeps, inbox: Inbox, registry: impl Registry) {
    let Inbox { mut rx, tx, next } = inbox;
    let Some(mut sub) = subscribe(&id, &deps).await else {
        return;
    };
    let Some(head) = initial_head(&id, &deps).await else {
        return;
    };
    let gap_fill_after = deps.config.gap_fill_after;
    let shutdown = deps.shutdown.clone();
    next.store(head.next().get(), Ordering::Relaxed);
    let mut room = Room {
        members: Members::new(id.clone(), deps.config.resync_timeout),
        ephemeral: Ephemeral::new(id.clone()),
        order: Reorder::new(head, gap_fill_after, deps.config.max_pending.get()),
        id,
        deps,
        tx,
        shared_next: next,
    };
    // Made once, not per message: it registers a waiter under a lock.
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    loop {
        let gap_deadline = room.order.gap_due();
        let ephemeral_due = room.ephemeral.next_due();
        // Gap fill comes before fan-out: under a steady stream fan-out is
        // always ready, and a gap must still be filled.
        tokio::select! {
            biased;
            () = &mut stopping => break,
            cmd = rx.recv() => match cmd {
                // The slow paths are boxed so an idle room's task stays small.
                Some(cmd) => Box::pin(room.handle(cmd)).await,
                None => break,
            },
            () = tokio::time::sleep_until(gap_deadline.unwrap_or_else(Instant::now)), if gap_deadline.is_some() => {
                Box::pin(room.fill_gap()).await
            }
            () = tokio::time::sleep_until(ephemeral_due.unwrap_or_else(Instant::now)), if ephemeral_due.is_some() => {
                room.ephemeral.due(&room.members);
            }
            msg = sub.next() => match msg {
                Some(msg) => room.on_fanout(msg),
                None => break,
            },
        }
        if room.members.is_empty() && registry.retire(&room.id, &mut rx) {
            // Commands that got in before the inbox closed go to the room's
            // next task. `recv` (not `try_recv`) until `None`: a sender that
            // reserved its slot before the close may still be writing to it.
            while let Some(cmd) = rx.recv().await {
                if matches!(cmd, RoomCmd::Join { .. }) {
                    registry.rejoin(room.id.clone(), cmd).await;
                }
            }
            break;
        }
    }
    let _ = sub.unsubscribe().await;
}

async fn subscribe(id: &RoomId, deps: &RoomDeps) -> Option<async_nats::Subscriber> {
    loop {
        match deps.nats.subscribe(subjects::fanout(id)).await {
            // The subscription must be live on the server before the head is
            // read, or a message committed in between would be missed.
            Ok(sub) => match deps.nats.flush().await {
                Ok(()) => return Some(sub),
                Err(e) => tracing::warn!(room = %id, error = %e, "flush after subscribe failed"),
            },
            Err(e) => tracing::warn!(room = %id, error = %e, "subscribe failed"),
        }
        if !retry_pause(deps).await {
            return None;
        }
    }
}

async fn initial_head(id: &RoomId, deps: &RoomDeps) -> Option<Seq> {
    loop {
        match deps.history.store.room_head(id).await {
            Ok(head) => return Some(head.unwrap_or(Seq::ZERO)),
            Err(e) => tracing::warn!(room = %id, error = %e, "reading room head failed"),
        }
        if !retry_pause(deps).await {
            return None;
        }
    }
}

/// Waits before a retry; false if the gateway is shutting down.
async fn retry_pause(deps: &RoomDeps) -> bool {
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(200)) => true,
        () = deps.shutdown.cancelled() => false,
    }
}

impl Room {
    async fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Join {
                member,
                request_id,
                since,
            } => self.join(member, request_id, since),
            RoomCmd::Leave { conn, done } => {
                self.members.leave(conn);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            RoomCmd::CaughtUp(CaughtUp { conn, after, reply }) => {
                let delivered = self.order.delivered();
                self.members.caught_up(conn, after, delivered, reply)
            }
            RoomCmd::Access(user, Some(access)) => self.members.change_access(&user, access),
            RoomCmd::Access(user, None) => self.members.remove(&user),
            RoomCmd::Signal(signal) => self.ephemeral.signal(signal, &self.members),
            RoomCmd::Deleted => {
                tracing::info!(room = %self.id, "room deleted: its sockets leave it");
                self.members.remove_all()
            }
            RoomCmd::Head(head) => {
                if self.order.saw_head(head) {
                    self.fetch_up_to(head).await;
                    // Still behind (store unreachable?): a fill is due later.
                    self.order.filled(Instant::now());
                }
            }
        }
    }

    /// Answers a join with `joined`, then hands the socket to a replay of
    /// its own, which tells it its read marker and what it missed (after
    /// `since`) before it goes live.
    fn join(&mut self, member: Member, request_id: String, since: Option<Seq>) {
        if self.members.is_removed(&member.user) {
            member.changes.add(self.id.clone(), None);
            member.offer(Outbound::frame(ServerFrame {
                request_id,
                kind: Some(GatewayError::Forbidden("not a member of this room").to_kind()),
            }));
            return;
        }
        let head = self.order.delivered();
        let joined = Outbound::frame(ServerFrame {
            request_id,
            kind: Some(Kind::Joined(Joined {
                room: self.id.to_string(),
                head_seq: head.get(),
            })),
        });
        if let Some(slot) = self.members.get(member.conn) {
            slot.member.offer(joined);
            return;
        }
        if !member.offer(joined) {
            return;
        }
        let Some(room_tx) = self.tx.upgrade() else {
            return;
        };
        let after = since.unwrap_or(head);
        let cancel = CancellationToken::new();
        tokio::spawn(
            Replay {
                member: member.clone(),
                room: self.id.clone(),
                after,
                target: head,
                history: self.deps.history.clone(),
                page: self.deps.config.replay_page.get(),
                room_tx,
                cancel: cancel.clone(),
            }
            .run(),
        );
        self.ephemeral.joined(&member);
        self.members.insert(Slot {
            member,
            after,
            replay: Some(cancel),
        });
    }

    /// A worker batch's messages of this room (or one change's event).
    fn on_fanout(&mut self, msg: async_nats::Message) {
        let messages = match Fanout::decode(msg.payload) {
            Ok(batch) => {
                if batch.published_us > 0 {
                    let transit = chat_protocol::secs_since_us(batch.published_us);
                    metrics::stage(metrics::Stage::FanoutTransit, transit);
                }
                batch.messages
            }
            Err(e) => {
                tracing::warn!(room = %self.id, error = %e, "undecodable fan-out");
                return;
            }
        };
        // Continue the sender's trace only when there is one: no span per
        // delivered batch otherwise.
        let span = chat_telemetry::has_trace(msg.headers.as_ref()).then(|| {
            let span = tracing::info_span!("deliver", room = %self.id, messages = messages.len());
            chat_telemetry::continue_trace(&span, msg.headers.as_ref());
            span
        });
        let _entered = span.as_ref().map(Span::enter);
        for message in messages {
            self.accept(Delivery::new(message));
        }
    }

    /// Takes a message from any source; delivers everything now in order.
    fn accept(&mut self, delivery: Arc<Delivery>) {
        let members = &mut self.members;
        let overflowed = self
            .order
            .accept(delivery.seq(), delivery, Instant::now(), |d| {
                members.deliver(&d)
            });
        if overflowed {
            metrics::pending_overflow();
        }
        self.shared_next
            .store(self.order.next().get(), Ordering::Relaxed);
    }

    async fn fill_gap(&mut self) {
        self.fetch_up_to(self.order.fill_target()).await;
        self.order.filled(Instant::now());
    }

    /// Fetches [next, up_to] from Redis, then Postgres for what Redis lacks.
    async fn fetch_up_to(&mut self, up_to: Seq) {
        while self.order.next() <= up_to {
            let before = self.order.next();
            let page = self
                .deps
                .history
                .page(&self.id, self.order.delivered(), up_to, PAGE)
                .await;
            match page {
                Ok((page, source)) if !page.is_empty() => {
                    for m in page {
                        self.accept(Delivery::new(m));
                    }
                    if self.order.next() == before {
                        tracing::error!(room = %self.id, seq = %before, "store has a hole");
                        break;
                    }
                    metrics::gap_filled(source, self.order.next().since(before) as usize);
                }
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(room = %self.id, error = %e, "gap fill from store failed");
                    break;
                }
            }
        }
    }
}
