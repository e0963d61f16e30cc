//! What a room's task tells its sockets besides the room's sequence: who
//! is typing (`typing`), whose read marker moved and who came online or
//! went offline (`coalesce`), all from the room's signals. A socket whose
//! queue is full misses these frames; the next one says it again.

use chat_proto::v1::{
    server_frame::Kind, PresenceNow, ReadBy, Reads, ServerFrame, TypingNow, UserPresence,
};
use chat_protocol::{RoomId, Seq, UserId};
use tokio::time::Instant;

use crate::{
    rooms::{coalesce::Coalesced, members::Members, typing::Typing},
    socket::outbox::Member,
};

/// A signal about a member, as a room task takes it (`signals` brings them).
pub enum Signal {
    Typing(UserId),
    Read(UserId, Seq),
    Online(UserId, bool),
}

pub struct Ephemeral {
    room: RoomId,
    typing: Typing,
    reads: Coalesced<Seq>,
    online: Coalesced<bool>,
}

impl Ephemeral {
    pub fn new(room: RoomId) -> Self {
        Self {
            room,
            typing: Typing::default(),
            reads: Coalesced::new(Seq::max),
            online: Coalesced::new(|_, newest| newest),
        }
    }

    /// When `due` should next be called, if anything waits.
    pub fn next_due(&self) -> Option<Instant> {
        [
            self.typing.next_lapse(),
            self.reads.due(),
            self.online.due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn signal(&mut self, signal: Signal, members: &Members) {
        match signal {
            Signal::Typing(user) => {
                if self.typing.refresh(user, Instant::now()) {
                    self.tell_typing(members);
                }
            }
            Signal::Read(user, seq) => self.reads.note(user, seq),
            Signal::Online(user, online) => self.online.note(user, online),
        }
        self.tell_coalesced(Instant::now(), members);
    }

    /// Typing that lapsed, and reads and presence whose second has come.
    pub fn due(&mut self, members: &Members) {
        let now = Instant::now();
        if self.typing.expire(now) {
            self.tell_typing(members);
        }
        self.tell_coalesced(now, members);
    }

    /// A socket that just joined hears who is typing now, if anyone is.
    pub fn joined(&self, member: &Member) {
        if !self.typing.is_empty() {
            member.offer_ephemeral(self.typing_now());
        }
    }

    fn typing_now(&self) -> ServerFrame {
        self.frame(Kind::TypingNow(TypingNow {
            room: self.room.to_string(),
            users: self.typing.users(),
        }))
    }

    fn tell_typing(&self, members: &Members) {
        members.tell(|| self.typing_now());
    }

    fn tell_coalesced(&mut self, now: Instant, members: &Members) {
        let room = self.room.to_string();
        if let Some(reads) = self.reads.take(now) {
            let reads = reads
                .into_iter()
                .map(|(user, seq)| ReadBy {
                    user: user.into(),
                    seq: seq.get(),
                })
                .collect();
            let room = room.clone();
            self.tell(members, &Kind::Reads(Reads { room, reads }));
        }
        if let Some(online) = self.online.take(now) {
            let users = online
                .into_iter()
                .map(|(user, online)| UserPresence {
                    user: user.into(),
                    online,
                })
                .collect();
            self.tell(members, &Kind::PresenceNow(PresenceNow { room, users }));
        }
    }

    fn tell(&self, members: &Members, kind: &Kind) {
        members.tell(|| self.frame(kind.clone()));
    }

    fn frame(&self, kind: Kind) -> ServerFrame {
        ServerFrame {
            request_id: String::new(),
            kind: Some(kind),
        }
    }
}
