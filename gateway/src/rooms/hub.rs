//! The gateway's rooms: one task per room with members on this gateway.
//!
//! A room task exists only while local sockets have joined the room; it owns
//! the room's fan-out subscription (subscribe on the first member, unsubscribe
//! after the last) and delivers to its members in seq order.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use chat_protocol::{access::Access, RoomId, Seq, UserId};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use crate::{
    rooms::ephemeral::Signal,
    rooms::room::{self, Registry, RoomCmd, RoomDeps},
    socket::outbox::Member,
};

/// A running room task, as the registry sees it.
struct Entry {
    tx: mpsc::Sender<RoomCmd>,
    /// The next seq the room will deliver, published by the room task.
    next: Arc<AtomicU64>,
}

/// A room as the prober sees it.
pub struct RoomView {
    pub id: RoomId,
    pub tx: mpsc::Sender<RoomCmd>,
    pub next: Seq,
}

/// Cheap-to-clone handle on the room registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    /// Running room tasks. A task removes its own entry, and closes its
    /// inbox, under this lock, when it has no members and no queued commands.
    rooms: Mutex<HashMap<RoomId, Entry>>,
    deps: RoomDeps,
}

impl Hub {
    pub fn new(deps: RoomDeps) -> Self {
        Self {
            inner: Arc::new(HubInner {
                rooms: Mutex::new(HashMap::new()),
                deps,
            }),
        }
    }

    /// Adds a socket to a room; the room task answers it with `joined`.
    pub async fn join(&self, room: RoomId, member: Member, request_id: String, since: Option<Seq>) {
        let cmd = RoomCmd::Join {
            member,
            request_id,
            since,
        };
        self.route(room, cmd).await
    }

    /// Hands a command to the room's task, starting one if none runs.
    async fn route(&self, room: RoomId, mut cmd: RoomCmd) {
        loop {
            let tx = self.room_task(&room);
            match tx.send(cmd).await {
                Ok(()) => return,
                // The task retired between lookup and send: start another.
                Err(mpsc::error::SendError(back)) => cmd = back,
            }
        }
    }

    /// Removes a socket from a room; returns once nothing more of the room
    /// will be queued for it.
    pub async fn leave(&self, room: &RoomId, conn: u64) {
        if let Some(tx) = self.running(room) {
            let (done, wait) = oneshot::channel();
            let cmd = RoomCmd::Leave {
                conn,
                done: Some(done),
            };
            if tx.send(cmd).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// The user's access in the room changed (`None`: no longer a member,
    /// and their sockets here leave it), if the room runs here at all.
    pub async fn change_access(&self, room: &RoomId, user: UserId, access: Option<Access>) {
        if let Some(tx) = self.running(room) {
            let _ = tx.send(RoomCmd::Access(user, access)).await;
        }
    }

    /// The room is deleted: its sockets here leave it.
    pub async fn room_deleted(&self, room: &RoomId) {
        if let Some(tx) = self.running(room) {
            let _ = tx.send(RoomCmd::Deleted).await;
        }
    }

    /// Signals about members (typing, a read marker moved, online): each
    /// room's task here, if any, tells its sockets. Dropped when the task's
    /// inbox is full (they are ephemeral). One lock for a whole batch.
    pub fn signals(&self, signals: impl Iterator<Item = (RoomId, Signal)>) {
        let rooms = self.inner.rooms.lock().expect("poisoned");
        for (room, signal) in signals {
            if let Some(entry) = rooms.get(&room) {
                let _ = entry.tx.try_send(RoomCmd::Signal(signal));
            }
        }
    }

    /// The room's inbox, if its task runs here.
    fn running(&self, room: &RoomId) -> Option<mpsc::Sender<RoomCmd>> {
        let rooms = self.inner.rooms.lock().expect("poisoned");
        rooms.get(room).map(|e| e.tx.clone())
    }

    /// Rooms with a running task (and so a fan-out subscription) here.
    pub fn room_count(&self) -> usize {
        self.inner.rooms.lock().expect("poisoned").len()
    }

    /// Every running room with its delivery position, for the prober.
    pub fn rooms(&self) -> Vec<RoomView> {
        let rooms = self.inner.rooms.lock().expect("poisoned");
        rooms
            .iter()
            .map(|(id, e)| RoomView {
                id: id.clone(),
                tx: e.tx.clone(),
                next: Seq::new(e.next.load(Ordering::Relaxed)),
            })
            .collect()
    }

    fn room_task(&self, room: &RoomId) -> mpsc::Sender<RoomCmd> {
        let mut rooms = self.inner.rooms.lock().expect("poisoned");
        if let Some(e) = rooms.get(room).filter(|e| !e.tx.is_closed()) {
            return e.tx.clone();
        }
        let (tx, rx) = mpsc::channel(256);
        let next = Arc::new(AtomicU64::new(0));
        rooms.insert(
            room.clone(),
            Entry {
                tx: tx.clone(),
                next: Arc::clone(&next),
            },
        );
        tokio::spawn(room::run(
            room.clone(),
            self.inner.deps.clone(),
            room::Inbox {
                rx,
                tx: tx.downgrade(),
                next,
            },
            self.clone(),
        ));
        tx
    }
}

impl Registry for Hub {
    /// Forgets an idle room unless a command is queued. The inbox is closed
    /// under the registry's lock, so from then on a sender either fails
    /// (and starts a new task) or got in before the close, and the retiring
    /// task hands what it finds to `rejoin`.
    fn retire(&self, room: &RoomId, rx: &mut mpsc::Receiver<RoomCmd>) -> bool {
        let mut rooms = self.inner.rooms.lock().expect("poisoned");
        if rx.is_empty() {
            rx.close();
            rooms.remove(room);
            true
        } else {
            false
        }
    }

    fn rejoin(&self, room: RoomId, join: RoomCmd) -> BoxFuture<'static, ()> {
        let hub = self.clone();
        Box::pin(async move { hub.route(room, join).await })
    }
}
