//! The feed's one task per gateway: the watching sockets, one fan-out
//! subscription per room any of them is in (`chat.room.<room>`, as room
//! tasks have, but no room task), and each room's latest entries.
//! Postgres is read by tasks of their own, which report back here, so the
//! task never waits on Postgres.
//!
//! A room's state is read after its subscription is made (and flushed),
//! so an entry is either in what was read or arrives after it; entries
//! that came through an older subscription meanwhile are replayed from the
//! room's latest (`recent`), and a gap left by a lost fan-out is read
//! again.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, RwLock},
    time::Duration,
};

use async_nats::Subscriber;
use chat_proto::{
    internal::Fanout,
    v1::{server_frame::Kind, Error as ErrorFrame, Message, RoomSummary, ServerFrame},
};
use chat_protocol::{ErrorCode, RoomId, Seq, UserId};
use chat_store::Store;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, StreamMap};
use tokio_util::sync::CancellationToken;

use super::{
    read::read,
    watcher::{After, Watcher},
};
use crate::socket::outbox::{Member, Outbound};

/// How often changed rooms are told to their sockets: at most this many
/// `feed` frames a second each.
const FLUSH: Duration = Duration::from_millis(250);
/// Entries kept per room, replayed to a socket whose read of the room
/// raced them.
const RECENT: usize = 32;
/// Rooms one feed may hold.
pub const MAX_ROOMS: usize = 5000;

pub(super) enum Cmd {
    Watch {
        member: Member,
        request_id: String,
    },
    Unwatch {
        conn: u64,
        done: tokio::sync::oneshot::Sender<()>,
    },
    /// A user's read marker in a room moved.
    Read {
        room: RoomId,
        user: UserId,
        seq: Seq,
    },
    /// A user became a member of a room, or is one no longer.
    Member {
        room: RoomId,
        user: UserId,
        added: bool,
    },
    /// Rooms read for a socket, their subscriptions made first. `answer`:
    /// the request of `watchFeed` these answer.
    Loaded {
        conn: u64,
        subs: Vec<(RoomId, Subscriber)>,
        rooms: Vec<RoomSummary>,
        answer: Option<String>,
    },
    /// Reading failed: a refresh is tried again, a watch is refused.
    Failed {
        conn: u64,
        room: Option<RoomId>,
        answer: Option<String>,
        code: ErrorCode,
        why: String,
    },
}

struct Watching {
    member: Member,
    watcher: Watcher,
}

#[derive(Default)]
struct RoomFeed {
    recent: VecDeque<Message>,
    conns: Vec<u64>,
}

pub(super) struct Task {
    nats: async_nats::Client,
    store: Store,
    tx: mpsc::Sender<Cmd>,
    watching: HashMap<u64, Watching>,
    by_user: HashMap<UserId, Vec<u64>>,
    rooms: HashMap<RoomId, RoomFeed>,
    subs: StreamMap<RoomId, Subscriber>,
    /// The users watched here, for the handle to filter signals by.
    users: Arc<RwLock<HashSet<UserId>>>,
}

impl Task {
    pub(super) fn new(
        nats: async_nats::Client,
        store: Store,
        tx: mpsc::Sender<Cmd>,
        users: Arc<RwLock<HashSet<UserId>>>,
    ) -> Self {
        Self {
            nats,
            store,
            tx,
            users,
            watching: HashMap::new(),
            by_user: HashMap::new(),
            rooms: HashMap::new(),
            subs: StreamMap::new(),
        }
    }

    fn watched_users_changed(&self) {
        let users = self.by_user.keys().cloned().collect();
        *self.users.write().expect("poisoned") = users;
        crate::metrics::feeds(self.watching.len(), self.rooms.len());
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Cmd>, shutdown: CancellationToken) {
        let mut flush = tokio::time::interval(FLUSH);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd),
                    None => return,
                },
                Some((room, msg)) = self.subs.next(), if !self.subs.is_empty() => {
                    self.fanned_out(&room, &msg.payload);
                }
                // Nothing to tell while nobody watches: no wake-ups.
                _ = flush.tick(), if !self.watching.is_empty() => self.flush(),
                () = shutdown.cancelled() => return,
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Watch { member, request_id } => self.watch(member, request_id),
            Cmd::Unwatch { conn, done } => {
                self.unwatch(conn);
                let _ = done.send(());
            }
            Cmd::Read { room, user, seq } => {
                for conn in self.by_user.get(&user).cloned().unwrap_or_default() {
                    self.each(conn, &room, |w| w.read(&room, seq));
                }
            }
            Cmd::Member { room, user, added } => {
                for conn in self.by_user.get(&user).cloned().unwrap_or_default() {
                    if added {
                        self.load(conn, user.clone(), Some(vec![room.clone()]), None);
                    } else if let Some(w) = self.watching.get_mut(&conn) {
                        w.watcher.remove(&room);
                        self.forget(conn, &room);
                    }
                }
            }
            Cmd::Loaded {
                conn,
                subs,
                rooms,
                answer,
            } => self.loaded(conn, subs, rooms, answer),
            Cmd::Failed {
                conn,
                room,
                answer,
                code,
                why,
            } => {
                tracing::warn!(conn, ?room, why = %why, "reading a feed failed");
                let Some(w) = self.watching.get(&conn) else {
                    return;
                };
                match (room, answer) {
                    (_, Some(request_id)) => {
                        let error = Kind::Error(ErrorFrame {
                            code: code.as_str().into(),
                            message: why,
                        });
                        w.member.offer(Outbound::frame(ServerFrame {
                            request_id,
                            kind: Some(error),
                        }));
                        self.unwatch(conn);
                    }
                    (Some(room), None) => {
                        let user = w.watcher.user().clone();
                        self.load(conn, user, Some(vec![room]), None);
                    }
                    (None, None) => {}
                }
            }
        }
    }

    fn watch(&mut self, member: Member, request_id: String) {
        let conn = member.conn;
        self.unwatch(conn);
        let user = member.user.clone();
        self.by_user.entry(user.clone()).or_default().push(conn);
        let watcher = Watcher::new(user.clone());
        self.watching.insert(conn, Watching { member, watcher });
        self.watched_users_changed();
        self.load(conn, user, None, Some(request_id));
    }

    fn unwatch(&mut self, conn: u64) {
        let Some(w) = self.watching.remove(&conn) else {
            return;
        };
        if let Some(conns) = self.by_user.get_mut(w.watcher.user()) {
            conns.retain(|c| *c != conn);
            if conns.is_empty() {
                self.by_user.remove(w.watcher.user());
            }
        }
        for room in w.watcher.rooms() {
            self.forget(conn, room);
        }
        self.watched_users_changed();
    }

    /// `conn` no longer watches `room`: its subscription goes with the last.
    fn forget(&mut self, conn: u64, room: &RoomId) {
        if let Some(feed) = self.rooms.get_mut(room) {
            feed.conns.retain(|c| *c != conn);
            if feed.conns.is_empty() {
                self.rooms.remove(room);
                self.subs.remove(room);
            }
        }
    }

    /// Reads `rooms` (all of the user's when `None`) for `conn` in a task
    /// of its own: subscribes to the rooms not subscribed yet, flushes,
    /// then reads Postgres, and reports `Loaded`.
    fn load(&self, conn: u64, user: UserId, rooms: Option<Vec<RoomId>>, answer: Option<String>) {
        let subscribed: HashSet<RoomId> = self.rooms.keys().cloned().collect();
        let (nats, store, tx) = (self.nats.clone(), self.store.clone(), self.tx.clone());
        tokio::spawn(async move {
            let cmd = match read(&nats, &store, &user, rooms.as_deref(), &subscribed).await {
                Ok((subs, rooms)) => Cmd::Loaded {
                    conn,
                    subs,
                    rooms,
                    answer,
                },
                Err((code, why)) => {
                    let room = rooms.and_then(|r| r.into_iter().next());
                    Cmd::Failed {
                        conn,
                        room,
                        answer,
                        code,
                        why,
                    }
                }
            };
            let _ = tx.send(cmd).await;
        });
    }

    fn loaded(
        &mut self,
        conn: u64,
        subs: Vec<(RoomId, Subscriber)>,
        rooms: Vec<RoomSummary>,
        answer: Option<String>,
    ) {
        for (room, sub) in subs {
            if !self.subs.contains_key(&room) {
                self.subs.insert(room, sub);
            }
        }
        let Some(w) = self.watching.get_mut(&conn) else {
            return;
        };
        let mut refresh = Vec::new();
        for summary in rooms {
            let Ok(room) = RoomId::parse(summary.room.clone()) else {
                continue;
            };
            w.watcher.expect(room.clone());
            let feed = self.rooms.entry(room.clone()).or_default();
            if !feed.conns.contains(&conn) {
                feed.conns.push(conn);
            }
            let mut after = w.watcher.loaded(summary, answer.is_some());
            for message in &feed.recent {
                if w.watcher.apply(&room, message) == After::Refresh {
                    after = After::Refresh;
                }
            }
            if after == After::Refresh {
                refresh.push(room);
            }
        }
        if let Some(request_id) = answer {
            for page in w.watcher.snapshot() {
                let frame = ServerFrame {
                    request_id: request_id.clone(),
                    kind: Some(Kind::Feed(page)),
                };
                w.member.offer(Outbound::frame(frame));
            }
        }
        let user = w.watcher.user().clone();
        for room in refresh {
            self.load(conn, user.clone(), Some(vec![room]), None);
        }
        crate::metrics::feeds(self.watching.len(), self.rooms.len());
    }

    /// A room's fan-out: its entries, applied in seq order to each watcher.
    fn fanned_out(&mut self, room: &RoomId, payload: &[u8]) {
        let Ok(mut fanout) = Fanout::decode(payload) else {
            return;
        };
        fanout.messages.sort_by_key(|m| m.seq);
        let Some(feed) = self.rooms.get_mut(room) else {
            return;
        };
        for message in &fanout.messages {
            if feed.recent.len() == RECENT {
                feed.recent.pop_front();
            }
            feed.recent.push_back(message.clone());
        }
        for conn in feed.conns.clone() {
            for message in &fanout.messages {
                self.each(conn, room, |w| w.apply(room, message));
            }
        }
    }

    /// Applies a change to `conn`'s watcher, reading the room again if it asks.
    fn each(&mut self, conn: u64, room: &RoomId, change: impl FnOnce(&mut Watcher) -> After) {
        let Some(w) = self.watching.get_mut(&conn) else {
            return;
        };
        if change(&mut w.watcher) == After::Refresh {
            let user = w.watcher.user().clone();
            self.load(conn, user, Some(vec![room.clone()]), None);
        }
    }

    /// Tells each socket the rooms that changed since the last flush.
    fn flush(&mut self) {
        for w in self.watching.values_mut() {
            if let Some(update) = w.watcher.take_update() {
                crate::metrics::feed_update();
                w.member.offer_ephemeral(ServerFrame {
                    request_id: String::new(),
                    kind: Some(Kind::Feed(update)),
                });
            }
        }
    }
}
