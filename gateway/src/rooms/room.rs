//! One room's delivery on one gateway: its fan-out subscription, a reorder
//! buffer, gap filling from the store, and its local members.
//!
//! Workers commit a room's messages in seq order but may publish them out of
//! order, and core NATS may drop messages to a slow subscriber. So the room
//! delivers strictly in seq order: a message that arrives early waits in
//! `pending`; a gap that does not close within `gap_fill_after_ms` is filled
//! from Redis (recent messages) or Postgres; a lost tail is found by the
//! gateway's prober (`probe`), which sends the room the head it saw.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use chat_proto::{
    internal::Fanout,
    v1::{server_frame::Kind, Joined, Left, ServerFrame},
};
use chat_protocol::{access::Access, kind, subjects, RoomId, Seq, UserId};
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
    rooms::history::History,
    rooms::replay::{CaughtUp, Replay},
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

struct Slot {
    member: Member,
    /// Highest seq this socket has been given (or had seen, when resuming).
    after: Seq,
    /// Set while the socket replays what it missed: live delivery skips it
    /// until the replay hands over. Cancelled when the socket leaves.
    replay: Option<CancellationToken>,
}

struct Room {
    id: RoomId,
    deps: RoomDeps,
    /// Where replays send `CaughtUp`.
    tx: mpsc::WeakSender<RoomCmd>,
    members: HashMap<u64, Slot>,
    /// The next seq to deliver; everything below it has been delivered.
    next: Seq,
    shared_next: Arc<AtomicU64>,
    pending: BTreeMap<Seq, Arc<Delivery>>,
    /// The highest seq known to exist (received, or seen by the prober).
    known_head: Seq,
    /// When the oldest unfilled gap was noticed.
    gap_since: Option<Instant>,
    /// Users whose removal this task delivered (and no re-adding since): a
    /// join of theirs that was checked before the removal committed is
    /// refused here.
    removed: HashSet<UserId>,
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
        id,
        deps,
        tx,
        members: HashMap::new(),
        next: head.next(),
        shared_next: next,
        pending: BTreeMap::new(),
        known_head: head,
        gap_since: None,
        removed: HashSet::new(),
    };
    loop {
        let gap_deadline = room.gap_since.map(|t| t + gap_fill_after);
        // Gap fill comes before fan-out: under a steady stream fan-out is
        // always ready, and a gap must still be filled.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            cmd = rx.recv() => match cmd {
                // The slow paths are boxed so an idle room's task stays small.
                Some(cmd) => Box::pin(room.handle(cmd)).await,
                None => break,
            },
            () = tokio::time::sleep_until(gap_deadline.unwrap_or_else(Instant::now)), if gap_deadline.is_some() => {
                Box::pin(room.fill_gap()).await
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
                if let Some(replay) = self.members.remove(&conn).and_then(|s| s.replay) {
                    replay.cancel();
                }
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            RoomCmd::CaughtUp(CaughtUp { conn, after, reply }) => {
                self.caught_up(conn, after, reply)
            }
            RoomCmd::Access(user, Some(access)) => self.change_access(&user, access),
            RoomCmd::Access(user, None) => self.remove(&user),
            RoomCmd::Head(head) => {
                if head >= self.next {
                    self.known_head = self.known_head.max(head);
                    self.fetch_up_to(head).await;
                }
            }
        }
    }

    fn join(&mut self, member: Member, request_id: String, since: Option<Seq>) {
        if self.removed.contains(&member.user) {
            member.changes.add(self.id.clone(), None);
            member.offer(Outbound::frame(ServerFrame {
                request_id,
                kind: Some(GatewayError::Forbidden("not a member of this room").to_kind()),
            }));
            return;
        }
        let head = self.next.prev();
        let joined = Outbound::frame(ServerFrame {
            request_id,
            kind: Some(Kind::Joined(Joined {
                room: self.id.to_string(),
                head_seq: head.get(),
            })),
        });
        if let Some(slot) = self.members.get(&member.conn) {
            slot.member.offer(joined);
            return;
        }
        if !member.offer(joined) {
            return;
        }
        let slot = match since {
            Some(since) if since < head => {
                let cancel = CancellationToken::new();
                let Some(room_tx) = self.tx.upgrade() else {
                    return;
                };
                tokio::spawn(
                    Replay {
                        member: member.clone(),
                        room: self.id.clone(),
                        after: since,
                        target: head,
                        history: self.deps.history.clone(),
                        page: self.deps.config.replay_page.get(),
                        room_tx,
                        cancel: cancel.clone(),
                    }
                    .run(),
                );
                Slot {
                    member,
                    after: since,
                    replay: Some(cancel),
                }
            }
            Some(since) => Slot {
                member,
                after: since,
                replay: None,
            },
            None => Slot {
                member,
                after: head,
                replay: None,
            },
        };
        self.members.insert(slot.member.conn, slot);
    }

    /// Drops the user's sockets: each hears `left` (with no request id: the
    /// server's doing) and gets nothing more of the room; its session
    /// forgets the room, so its next send is checked and refused.
    fn remove(&mut self, user: &UserId) {
        self.members.retain(|_, slot| {
            if slot.member.user != *user {
                return true;
            }
            if let Some(replay) = slot.replay.take() {
                replay.cancel();
            }
            slot.member.changes.add(self.id.clone(), None);
            slot.member.offer(Outbound::frame(ServerFrame {
                request_id: String::new(),
                kind: Some(Kind::Left(Left {
                    room: self.id.to_string(),
                })),
            }));
            false
        });
    }

    /// The user's sockets obey their new role and flags from their next frame.
    fn change_access(&self, user: &UserId, access: Access) {
        for slot in self.members.values().filter(|s| s.member.user == *user) {
            slot.member.changes.add(self.id.clone(), Some(access));
        }
    }

    /// A replay reached `after`: live from here if the room has delivered
    /// nothing beyond it, else the replay goes on to what the room has.
    fn caught_up(&mut self, conn: u64, after: Seq, reply: oneshot::Sender<Option<Seq>>) {
        let Some(slot) = self.members.get_mut(&conn) else {
            let _ = reply.send(None);
            return;
        };
        let delivered = self.next.prev();
        if after < delivered {
            let _ = reply.send(Some(delivered));
        } else {
            slot.after = after;
            slot.replay = None;
            let _ = reply.send(None);
        }
    }

    /// A worker batch's messages of this room (or one change's event).
    fn on_fanout(&mut self, msg: async_nats::Message) {
        let messages = match Fanout::decode(msg.payload) {
            Ok(batch) => batch.messages,
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
        let seq = delivery.seq();
        self.known_head = self.known_head.max(seq);
        if seq >= self.next {
            self.pending.entry(seq).or_insert(delivery);
        }
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let delivery = entry.remove();
            self.deliver(&delivery);
            self.next = self.next.next();
        }
        self.shared_next.store(self.next.get(), Ordering::Relaxed);
        if !self.behind() {
            self.gap_since = None;
            return;
        }
        if self.pending.len() > self.deps.config.max_pending.get() {
            // Far behind (the store unreachable for long?): drop the newest
            // and fill from the store now; `known_head` remembers they exist.
            metrics::pending_overflow();
            while self.pending.len() > self.deps.config.max_pending.get() {
                self.pending.pop_last();
            }
            self.gap_since = Some(Instant::now() - self.gap_fill_after());
        } else if self.gap_since.is_none() {
            self.gap_since = Some(Instant::now());
        }
    }

    /// Whether messages known to exist are not delivered yet.
    fn behind(&self) -> bool {
        !self.pending.is_empty() || self.known_head >= self.next
    }

    fn gap_fill_after(&self) -> Duration {
        self.deps.config.gap_fill_after
    }

    fn deliver(&mut self, delivery: &Arc<Delivery>) {
        self.members.retain(|_, slot| {
            if slot.replay.is_some() || delivery.seq() <= slot.after {
                return true;
            }
            slot.after = delivery.seq();
            slot.member.offer(Outbound::Message(Arc::clone(delivery)))
        });
        // The member hears of a change to them, then it applies: a removed
        // member gets nothing after it.
        let message = &delivery.message;
        if message.kind.is_empty() {
            return;
        }
        let Ok(user) = UserId::parse(message.member.clone()) else {
            return;
        };
        match message.kind.as_str() {
            kind::MEMBER_LEFT => {
                self.remove(&user);
                self.removed.insert(user);
            }
            kind::MEMBER_JOINED => {
                self.removed.remove(&user);
            }
            kind::ROLE_CHANGED => {
                let access = message.access.as_ref().and_then(Access::from_proto);
                if let Some(access) = access {
                    self.change_access(&user, access);
                }
            }
            _ => {}
        }
    }

    async fn fill_gap(&mut self) {
        // Up to the first buffered message; after an overflow dropped the
        // newest, up to the highest known.
        let up_to = match (
            self.pending.first_key_value(),
            self.pending.last_key_value(),
        ) {
            (Some((&first, _)), Some((&last, _))) if self.known_head <= last => first.prev(),
            _ => self.known_head,
        };
        self.fetch_up_to(up_to).await;
        // Still behind (store unreachable?): try again after another wait.
        self.gap_since = self.behind().then(Instant::now);
    }

    /// Fetches [next, up_to] from Redis, then Postgres for what Redis lacks.
    async fn fetch_up_to(&mut self, up_to: Seq) {
        while self.next <= up_to {
            let before = self.next;
            let page = self
                .deps
                .history
                .page(&self.id, self.next.prev(), up_to, PAGE)
                .await;
            match page {
                Ok((page, source)) if !page.is_empty() => {
                    for m in page {
                        self.accept(Delivery::new(m));
                    }
                    if self.next == before {
                        tracing::error!(room = %self.id, seq = %before, "store has a hole");
                        break;
                    }
                    metrics::gap_filled(source, self.next.since(before) as usize);
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
