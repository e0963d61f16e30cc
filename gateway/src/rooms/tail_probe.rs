//! Finds lost tails: messages stored but whose fan-out never reached this
//! gateway, with nothing after them to reveal the gap.
//!
//! One task per gateway probes the heads of all its rooms together: one
//! pipelined Redis round trip, and one Postgres query for the rooms Redis
//! knows nothing of. A room is probed `head_probe_ms` after its last
//! activity, then at doubling intervals up to `idle_probe_max_ms`, so idle
//! rooms cost almost nothing. The events that actually lose fan-out (the
//! NATS client dropping messages as a slow consumer, a reconnect) probe
//! every room at once. A room found in neither was deleted: its sockets
//! leave it, as when the deletion's announcement arrives.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chat_protocol::{RoomId, Seq};
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    config::DeliveryConfig,
    metrics,
    rooms::history::History,
    rooms::hub::{Hub, RoomView},
    rooms::room::RoomCmd,
};

/// Rooms per Redis pipeline and Postgres query.
const CHUNK: usize = 1000;

struct Schedule {
    /// The room's delivery position when last looked at; a change is activity.
    seen_next: Seq,
    interval: Duration,
    due: Instant,
}

pub struct Prober {
    hub: Hub,
    history: History,
    base: Duration,
    max: Duration,
    schedules: HashMap<RoomId, Schedule>,
}

impl Prober {
    pub fn new(hub: Hub, history: History, config: &DeliveryConfig) -> Self {
        Self {
            hub,
            history,
            base: config.head_probe,
            max: config.idle_probe_max,
            schedules: HashMap::new(),
        }
    }

    /// Probes until shutdown; `resync` probes every room at once.
    pub async fn run(mut self, resync: Arc<Notify>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.base);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let all = tokio::select! {
                _ = tick.tick() => false,
                () = resync.notified() => true,
                () = shutdown.cancelled() => return,
            };
            let due = self.due(all);
            for chunk in due.chunks(CHUNK) {
                self.probe(chunk).await;
            }
        }
    }

    /// The rooms to probe now; reschedules them.
    fn due(&mut self, all: bool) -> Vec<RoomView> {
        let now = Instant::now();
        let rooms = self.hub.rooms();
        let running: HashSet<&RoomId> = rooms.iter().map(|r| &r.id).collect();
        self.schedules.retain(|id, _| running.contains(id));
        let (base, max) = (self.base, self.max);
        let mut due = Vec::new();
        for room in rooms {
            // Not started yet: the room reads its head itself.
            if room.next == Seq::ZERO {
                continue;
            }
            let s = self
                .schedules
                .entry(room.id.clone())
                .or_insert_with(|| Schedule {
                    seen_next: room.next,
                    interval: base,
                    due: now + base,
                });
            if s.seen_next != room.next {
                s.seen_next = room.next;
                s.interval = base;
                s.due = now + base;
            }
            if all || s.due <= now {
                s.interval = (s.interval * 2).min(max);
                s.due = now + s.interval;
                due.push(room);
            }
        }
        due
    }

    async fn probe(&self, rooms: &[RoomView]) {
        let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
        let mut redis = self.history.redis.clone();
        let hints = chat_cache::head_hints(&mut redis, &ids)
            .await
            .unwrap_or_else(|_| vec![None; ids.len()]);
        let unknown: Vec<RoomId> = ids
            .iter()
            .zip(&hints)
            .filter(|(_, hint)| hint.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        // `None`: Postgres could not be asked, so a room it lacks is not
        // known to be gone.
        let stored: Option<HashMap<RoomId, Seq>> = if unknown.is_empty() {
            Some(HashMap::new())
        } else {
            match self.history.store.room_heads(&unknown).await {
                Ok(heads) => Some(heads.into_iter().collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "probing room heads in Postgres failed");
                    None
                }
            }
        };
        metrics::probed(ids.len(), unknown.len());
        for (room, hint) in rooms.iter().zip(hints) {
            let head = hint.or_else(|| stored.as_ref()?.get(&room.id).copied());
            if head.is_none() && stored.is_some() {
                // Deleted, and this gateway missed the announcement.
                tracing::info!(room = %room.id, "probed room is gone");
                let _ = room.tx.try_send(RoomCmd::Deleted);
                continue;
            }
            if let Some(head) = head.filter(|&h| h >= room.next) {
                tracing::debug!(room = %room.id, from = %room.next, to = %head, "lost tail");
                // A full inbox means a busy room: the next probe will do.
                let _ = room.tx.try_send(RoomCmd::Head(head));
            }
        }
    }
}
