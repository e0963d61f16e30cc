//! The feed of a user's rooms: a socket that watches it hears, for every
//! room the user is in, the head, the last entry, the read marker and the
//! unread count as they change, without joining the rooms (a socket may
//! join at most `max_rooms_per_connection`). In: `watchFeed` and
//! `unwatchFeed` from sockets, read markers moved (`signals`),
//! members added and removed (`rooms::announcements`). Out: `feed` frames.

mod read;
mod task;
mod watcher;

use std::{
    collections::HashSet,
    future::Future,
    sync::{Arc, RwLock},
};

use chat_protocol::{RoomId, Seq, UserId};
use chat_store::Store;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::socket::outbox::Member;
use task::{Cmd, Task};

pub use task::MAX_ROOMS;

/// Commands queued for the feed's task: plenty, since markers moved and
/// members changed anywhere come through here for the users watched.
const INBOX: usize = 4096;

/// The handle sockets and listeners hold; cheap to clone.
#[derive(Clone)]
pub struct Feeds {
    tx: mpsc::Sender<Cmd>,
    /// Users with a socket watching here: what is not about them is not
    /// even queued.
    users: Arc<RwLock<HashSet<UserId>>>,
}

impl Feeds {
    /// The handle, and the task to run until shutdown.
    pub fn start(
        nats: async_nats::Client,
        store: Store,
        shutdown: CancellationToken,
    ) -> (Self, impl Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(INBOX);
        let users = Arc::new(RwLock::new(HashSet::new()));
        let task = Task::new(nats, store, tx.clone(), Arc::clone(&users));
        (Self { tx, users }, task.run(rx, shutdown))
    }

    /// The socket watches its user's feed; answered by the task.
    pub async fn watch(&self, member: Member, request_id: String) {
        let _ = self.tx.send(Cmd::Watch { member, request_id }).await;
    }

    /// The socket stops watching (or is gone); once this returns, nothing
    /// more of the feed is queued for it.
    pub async fn unwatch(&self, conn: u64) {
        let (done, stopped) = tokio::sync::oneshot::channel();
        if self.tx.send(Cmd::Unwatch { conn, done }).await.is_ok() {
            let _ = stopped.await;
        }
    }

    fn watched(&self, user: &UserId) -> bool {
        self.users.read().expect("poisoned").contains(user)
    }

    /// `user`'s read marker in `room` moved to `seq`.
    pub fn read(&self, room: &RoomId, user: &UserId, seq: Seq) {
        if self.watched(user) {
            let cmd = Cmd::Read {
                room: room.clone(),
                user: user.clone(),
                seq,
            };
            if self.tx.try_send(cmd).is_err() {
                tracing::warn!("feed inbox full: a read marker was not applied");
            }
        }
    }

    /// `user` became a member of `room` (`added`), or is one no longer.
    pub async fn member(&self, room: &RoomId, user: &UserId, added: bool) {
        if self.watched(user) {
            let cmd = Cmd::Member {
                room: room.clone(),
                user: user.clone(),
                added,
            };
            let _ = self.tx.send(cmd).await;
        }
    }
}
