//! The sockets of this gateway that joined one room, as its room task
//! sees them: where each one is in the room's sequence, whether it is still
//! replaying, and the changes to members that the sequence carries (a
//! removed member hears `left` and gets nothing after it).

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use chat_proto::v1::{server_frame::Kind, Left, ServerFrame};
use chat_protocol::{access::Access, kind::EntryKind, RoomId, Seq, UserId};
use tokio::{sync::oneshot, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::socket::outbox::{Delivery, Member, Offered, Outbound};

pub struct Slot {
    pub member: Member,
    /// Highest seq this socket has been given (or had seen, when resuming).
    pub after: Seq,
    /// Set while the socket replays what it missed: live delivery skips it
    /// until the replay hands over. Cancelled when the socket leaves.
    pub replay: Option<CancellationToken>,
}

pub struct Members {
    room: RoomId,
    slots: HashMap<u64, Slot>,
    /// Users whose removal this room delivered (and no re-adding since): a
    /// join of theirs that was checked before the removal committed is
    /// refused.
    removed: HashSet<UserId>,
    /// Sockets told to resync (their queue was full), until they join
    /// again or leave: past the deadline they are closed.
    resynced: HashMap<u64, (Member, Instant)>,
    resync_timeout: Duration,
}

impl Members {
    pub fn new(room: RoomId, resync_timeout: Duration) -> Self {
        Self {
            room,
            slots: HashMap::new(),
            removed: HashSet::new(),
            resynced: HashMap::new(),
            resync_timeout,
        }
    }

    /// No socket here gets the room, and none told to resync it is awaited.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty() && self.resynced.is_empty()
    }

    pub fn is_removed(&self, user: &UserId) -> bool {
        self.removed.contains(user)
    }

    pub fn get(&self, conn: u64) -> Option<&Slot> {
        self.slots.get(&conn)
    }

    /// An ephemeral frame for every socket of the room (one each, made by
    /// `frame`); a socket whose queue is full gets it later, as the latest
    /// state of its kind (`outbox`).
    pub fn tell(&self, frame: impl Fn() -> ServerFrame) {
        for slot in self.slots.values() {
            slot.member.offer_ephemeral(frame());
        }
    }

    pub fn insert(&mut self, slot: Slot) {
        self.resynced.remove(&slot.member.conn);
        self.slots.insert(slot.member.conn, slot);
    }

    pub fn leave(&mut self, conn: u64) {
        self.resynced.remove(&conn);
        if let Some(replay) = self.slots.remove(&conn).and_then(|s| s.replay) {
            replay.cancel();
        }
    }

    /// Drops the user's sockets: each hears `left` (with no request id: the
    /// server's doing) and gets nothing more of the room; its session
    /// forgets the room, so its next send is checked and refused.
    pub fn remove(&mut self, user: &UserId) {
        self.drop_where(|member| member.user == *user, Left::REMOVED);
    }

    /// The room is deleted: every socket hears `left` (reason `deleted`),
    /// as in `remove`, and none told to resync is awaited.
    pub fn remove_all(&mut self) {
        self.drop_where(|_| true, Left::DELETED);
        self.resynced.clear();
    }

    fn drop_where(&mut self, which: impl Fn(&Member) -> bool, reason: &str) {
        self.slots.retain(|_, slot| {
            if !which(&slot.member) {
                return true;
            }
            if let Some(replay) = slot.replay.take() {
                replay.cancel();
            }
            slot.member.changes.add(self.room.clone(), None);
            slot.member.offer(Outbound::frame(ServerFrame {
                request_id: String::new(),
                kind: Some(Kind::Left(Left {
                    room: self.room.to_string(),
                    reason: reason.to_owned(),
                })),
            }));
            false
        });
    }

    /// Sockets told to resync that neither joined again nor left in time:
    /// closed as slow consumers.
    fn close_unresynced(&mut self) {
        if self.resynced.is_empty() {
            return;
        }
        let now = Instant::now();
        self.resynced.retain(|_, (member, deadline)| {
            if *deadline > now {
                return true;
            }
            member.slow_consumer("told to resync and did not join again; resume with since_seq");
            false
        });
    }

    /// The user's sockets obey their new role and flags from their next frame.
    pub fn change_access(&self, user: &UserId, access: Access) {
        for slot in self.slots.values().filter(|s| s.member.user == *user) {
            slot.member.changes.add(self.room.clone(), Some(access));
        }
    }

    /// A replay reached `after`: live from here if the room has delivered
    /// nothing beyond it, else the replay goes on to what the room has.
    pub fn caught_up(
        &mut self,
        conn: u64,
        after: Seq,
        delivered: Seq,
        reply: oneshot::Sender<Option<Seq>>,
    ) {
        let Some(slot) = self.slots.get_mut(&conn) else {
            let _ = reply.send(None);
            return;
        };
        if after < delivered {
            let _ = reply.send(Some(delivered));
        } else {
            slot.after = after;
            slot.replay = None;
            let _ = reply.send(None);
        }
    }

    /// Gives a message to every socket that has not had it, then applies
    /// the change to a member it carries.
    pub fn deliver(&mut self, delivery: &Arc<Delivery>) {
        self.close_unresynced();
        let seq = delivery.seq();
        self.slots.retain(|conn, slot| {
            if slot.replay.is_some() || seq <= slot.after {
                return true;
            }
            match slot.member.offer_delivery(delivery) {
                Offered::Queued => {
                    slot.after = seq;
                    true
                }
                // The socket stops getting the room until it joins again
                // from where it fell behind.
                Offered::Full => {
                    slot.member.offer_resync(&self.room, seq);
                    let deadline = Instant::now() + self.resync_timeout;
                    self.resynced.insert(*conn, (slot.member.clone(), deadline));
                    false
                }
                Offered::Closed => false,
            }
        });

        // The member hears of a change to them, then it applies: a removed
        // member gets nothing after it.
        let message = &delivery.message;
        let kind = match EntryKind::parse(&message.kind) {
            Some(
                kind @ (EntryKind::MemberJoined | EntryKind::MemberLeft | EntryKind::RoleChanged),
            ) => kind,
            _ => return,
        };
        let Ok(user) = UserId::parse(message.member.clone()) else {
            return;
        };
        match kind {
            EntryKind::MemberLeft => {
                self.remove(&user);
                self.removed.insert(user);
            }
            EntryKind::MemberJoined => {
                self.removed.remove(&user);
            }
            EntryKind::RoleChanged => {
                let access = message.access.as_ref().and_then(Access::from_proto);
                if let Some(access) = access {
                    self.change_access(&user, access);
                }
            }
            _ => {}
        }
    }
}
