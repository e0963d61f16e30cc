//! The gateway's rooms: one task per room with members on this gateway.
//!
//! A room task exists only while local sockets have joined the room; it owns
//! the room's fan-out subscription (subscribe on the first member, unsubscribe
//! after the last) and delivers to its members in seq order.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chat_shared::{store::Store, RoomId, Seq};
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{config::DeliveryConfig, delivery::Member, room};

/// What a room task needs from the outside world.
#[derive(Clone)]
pub struct RoomDeps {
    pub nats: async_nats::Client,
    pub store: Store,
    pub redis: ConnectionManager,
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
}

/// Cheap-to-clone handle on the room registry.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    /// Senders of running room tasks. A task removes its own entry, under
    /// this lock, when it has no members and no queued commands.
    rooms: Mutex<HashMap<RoomId, mpsc::Sender<RoomCmd>>>,
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
        let mut cmd = RoomCmd::Join {
            member,
            request_id,
            since,
        };
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
        let tx = self
            .inner
            .rooms
            .lock()
            .expect("poisoned")
            .get(room)
            .cloned();
        if let Some(tx) = tx {
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

    /// Rooms with a running task (and so a fan-out subscription) here.
    pub fn room_count(&self) -> usize {
        self.inner.rooms.lock().expect("poisoned").len()
    }

    fn room_task(&self, room: &RoomId) -> mpsc::Sender<RoomCmd> {
        let mut rooms = self.inner.rooms.lock().expect("poisoned");
        if let Some(tx) = rooms.get(room).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(256);
        rooms.insert(room.clone(), tx.clone());
        tokio::spawn(room::run(
            room.clone(),
            self.inner.deps.clone(),
            rx,
            self.clone(),
        ));
        tx
    }

    /// Called by an idle room task: forgets it unless a command is queued.
    pub(crate) fn retire(&self, room: &RoomId, rx: &mpsc::Receiver<RoomCmd>) -> bool {
        let mut rooms = self.inner.rooms.lock().expect("poisoned");
        if rx.is_empty() {
            rooms.remove(room);
            true
        } else {
            false
        }
    }
}
