//! One room's delivery on one gateway: its fan-out subscription, a reorder
//! buffer, gap filling from the store, and its local members.
//!
//! Workers commit a room's messages in seq order but may publish them out of
//! order, and core NATS may drop messages to a slow subscriber. So the room
//! delivers strictly in seq order: a message that arrives early waits in
//! `pending`; a gap that does not close within `gap_fill_after_ms` is filled
//! from Redis (recent messages) or Postgres; a lost tail is found by probing
//! the room's head every `head_probe_ms`.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use chat_proto::v1::{server_frame::Kind, Joined, Message, ServerFrame};
use chat_shared::{cache, subjects, telemetry, RoomId, Seq};
use futures::StreamExt;
use prost::Message as _;
use tokio::{sync::mpsc, time::Instant};

use crate::{
    delivery::{Delivery, Member, Outbound},
    hub::{Hub, RoomCmd, RoomDeps},
    metrics,
};

/// Largest number of messages read from the store in one query.
const PAGE: usize = 500;
/// How long a replay to a resuming socket may wait for room in its queue.
const REPLAY_SEND_TIMEOUT: Duration = Duration::from_secs(5);

struct Slot {
    member: Member,
    /// Highest seq this socket has been given (or had seen, when resuming).
    after: Seq,
}

struct Room {
    id: RoomId,
    deps: RoomDeps,
    members: HashMap<u64, Slot>,
    /// The next seq to deliver; everything below it has been delivered.
    next: Seq,
    pending: BTreeMap<Seq, Arc<Delivery>>,
    /// When the oldest unfilled gap was noticed.
    gap_since: Option<Instant>,
}

/// Runs a room until it has no members left (or the gateway shuts down).
pub async fn run(id: RoomId, deps: RoomDeps, mut rx: mpsc::Receiver<RoomCmd>, hub: Hub) {
    let Some(mut sub) = subscribe(&id, &deps).await else {
        return;
    };
    let Some(head) = initial_head(&id, &deps).await else {
        return;
    };
    let gap_fill_after = Duration::from_millis(deps.config.gap_fill_after_ms);
    let mut probe = tokio::time::interval(Duration::from_millis(deps.config.head_probe_ms));
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = deps.shutdown.clone();
    let mut room = Room {
        id,
        deps,
        members: HashMap::new(),
        next: head + 1,
        pending: BTreeMap::new(),
        gap_since: None,
    };
    loop {
        let gap_deadline = room.gap_since.map(|t| t + gap_fill_after);
        tokio::select! {
            biased;
            cmd = rx.recv() => match cmd {
                // The slow paths are boxed so an idle room's task stays small.
                Some(cmd) => Box::pin(room.handle(cmd)).await,
                None => break,
            },
            msg = sub.next() => match msg {
                Some(msg) => room.on_fanout(msg),
                None => break,
            },
            () = sleep_until(gap_deadline) => Box::pin(room.fill_gap()).await,
            _ = probe.tick() => Box::pin(room.probe()).await,
            () = shutdown.cancelled() => break,
        }
        if room.members.is_empty() && hub.retire(&room.id, &rx) {
            break;
        }
    }
    let _ = sub.unsubscribe().await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
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
        match deps.store.room_head(id).await {
            Ok(head) => return Some(head.unwrap_or(0)),
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
            } => self.join(member, request_id, since).await,
            RoomCmd::Leave { conn, done } => {
                self.members.remove(&conn);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
        }
    }

    async fn join(&mut self, member: Member, request_id: String, since: Option<Seq>) {
        let head = self.next - 1;
        let joined = Outbound::frame(ServerFrame {
            request_id,
            kind: Some(Kind::Joined(Joined {
                room: self.id.to_string(),
                head_seq: head,
            })),
        });
        if let Some(slot) = self.members.get(&member.conn) {
            slot.member.offer(joined);
            return;
        }
        if !member.offer(joined) {
            return;
        }
        let after = match since {
            Some(since) if since < head => {
                if !self.replay(&member, since, head).await {
                    return;
                }
                head
            }
            Some(since) => since,
            None => head,
        };
        self.members.insert(member.conn, Slot { member, after });
    }

    /// Sends a resuming socket what it missed, (since, up_to], from the store.
    async fn replay(&self, member: &Member, since: Seq, up_to: Seq) -> bool {
        let mut after = since;
        while after < up_to {
            let page = match self
                .deps
                .store
                .messages_between(&self.id, after, up_to, PAGE)
                .await
            {
                Ok(page) if !page.is_empty() => page,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(room = %self.id, error = %e, "replay failed");
                    member
                        .close
                        .close(chat_shared::ErrorCode::Unavailable, "replay failed; retry");
                    return false;
                }
            };
            for m in page {
                after = m.seq;
                let sent = member
                    .out
                    .send_timeout(Outbound::Message(Delivery::new(m)), REPLAY_SEND_TIMEOUT);
                if sent.await.is_err() {
                    member.close.close(
                        chat_shared::ErrorCode::SlowConsumer,
                        "replay not read in time",
                    );
                    return false;
                }
            }
        }
        true
    }

    fn on_fanout(&mut self, msg: async_nats::Message) {
        let message = match Message::decode(msg.payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(room = %self.id, error = %e, "undecodable fan-out message");
                return;
            }
        };
        // Continue the sender's trace only when there is one: no span per
        // delivered message otherwise.
        if telemetry::has_trace(msg.headers.as_ref()) {
            let span = tracing::info_span!("deliver", room = %self.id, seq = message.seq);
            telemetry::continue_trace(&span, msg.headers.as_ref());
            let _entered = span.enter();
            self.accept(Delivery::new(message));
        } else {
            self.accept(Delivery::new(message));
        }
    }

    /// Takes a message from any source; delivers everything now in order.
    fn accept(&mut self, delivery: Arc<Delivery>) {
        if delivery.seq() >= self.next {
            self.pending.entry(delivery.seq()).or_insert(delivery);
        }
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            let delivery = entry.remove();
            self.deliver(&delivery);
            self.next += 1;
        }
        if self.pending.is_empty() {
            self.gap_since = None;
        } else if self.gap_since.is_none() {
            self.gap_since = Some(Instant::now());
        }
    }

    fn deliver(&mut self, delivery: &Arc<Delivery>) {
        self.members.retain(|_, slot| {
            if delivery.seq() <= slot.after {
                return true;
            }
            slot.after = delivery.seq();
            slot.member.offer(Outbound::Message(Arc::clone(delivery)))
        });
    }

    async fn fill_gap(&mut self) {
        let Some(&first_pending) = self.pending.keys().next() else {
            self.gap_since = None;
            return;
        };
        self.fetch_up_to(first_pending - 1).await;
        if !self.pending.is_empty() {
            // Still missing (store unreachable?): try again after another wait.
            self.gap_since = Some(Instant::now());
        }
    }

    /// Looks for a lost tail: messages stored but never received here.
    async fn probe(&mut self) {
        if self.members.is_empty() || !self.pending.is_empty() {
            return;
        }
        let mut redis = self.deps.redis.clone();
        // Redis answers cheaply; Postgres when Redis is down or has no copy.
        let head = match cache::head_hint(&mut redis, &self.id).await {
            Ok(hint) if hint > 0 => hint,
            _ => match self.deps.store.room_head(&self.id).await {
                Ok(head) => head.unwrap_or(0),
                Err(_) => return,
            },
        };
        if head >= self.next {
            tracing::debug!(room = %self.id, from = self.next, to = head, "filling lost tail");
            self.fetch_up_to(head).await;
        }
    }

    /// Fetches [next, up_to] from Redis, then Postgres for what Redis lacks.
    async fn fetch_up_to(&mut self, up_to: Seq) {
        let mut redis = self.deps.redis.clone();
        if let Ok(cached) = cache::between(&mut redis, &self.id, self.next - 1, up_to).await {
            let before = self.next;
            for m in cached {
                if m.seq == self.next {
                    self.accept(Delivery::new(m));
                }
            }
            metrics::gap_filled("redis", (self.next - before) as usize);
        }
        while self.next <= up_to {
            let before = self.next;
            match self
                .deps
                .store
                .messages_between(&self.id, self.next - 1, up_to, PAGE)
                .await
            {
                Ok(page) if !page.is_empty() => {
                    for m in page {
                        self.accept(Delivery::new(m));
                    }
                    if self.next == before {
                        tracing::error!(room = %self.id, seq = before, "store has a hole");
                        break;
                    }
                    metrics::gap_filled("postgres", (self.next - before) as usize);
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
