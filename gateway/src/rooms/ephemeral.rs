//! What a room's task tells its sockets besides the room's sequence: who
//! is typing (`typing`) and whose read marker moved (`reads`), both from
//! the room's signals. A socket whose queue is full misses these frames;
//! the next one says it all again.

use chat_proto::v1::{server_frame::Kind, Reads as ReadsFrame, ServerFrame, TypingNow};
use chat_protocol::{RoomId, Seq, UserId};
use tokio::time::Instant;

use crate::{
    rooms::{members::Members, reads::Reads, typing::Typing},
    socket::outbox::{Member, Outbound},
};

/// A signal about a member, as a room task takes it (`signals` brings them).
pub enum Signal {
    Typing(UserId),
    Read(UserId, Seq),
}

pub struct Ephemeral {
    room: RoomId,
    typing: Typing,
    reads: Reads,
}

impl Ephemeral {
    pub fn new(room: RoomId) -> Self {
        Self {
            room,
            typing: Typing::default(),
            reads: Reads::default(),
        }
    }

    /// When `due` should next be called, if anything waits.
    pub fn next_due(&self) -> Option<Instant> {
        match (self.typing.next_lapse(), self.reads.due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn signal(&mut self, signal: Signal, members: &Members) {
        let now = Instant::now();
        match signal {
            Signal::Typing(user) => {
                if self.typing.refresh(user, now) {
                    self.tell_typing(members);
                }
            }
            Signal::Read(user, seq) => {
                self.reads.moved(user, seq);
                self.tell_reads(now, members);
            }
        }
    }

    /// Typing that lapsed, and reads whose second has come.
    pub fn due(&mut self, members: &Members) {
        let now = Instant::now();
        if self.typing.expire(now) {
            self.tell_typing(members);
        }
        self.tell_reads(now, members);
    }

    /// A socket that just joined hears who is typing now, if anyone is.
    pub fn joined(&self, member: &Member) {
        if !self.typing.is_empty() {
            member.offer_ephemeral(self.typing_now());
        }
    }

    fn typing_now(&self) -> Outbound {
        Outbound::frame(ServerFrame {
            request_id: String::new(),
            kind: Some(Kind::TypingNow(TypingNow {
                room: self.room.to_string(),
                users: self.typing.users(),
            })),
        })
    }

    fn tell_typing(&self, members: &Members) {
        members.tell(|| self.typing_now());
    }

    fn tell_reads(&mut self, now: Instant, members: &Members) {
        if let Some(reads) = self.reads.take(now) {
            members.tell(|| {
                Outbound::frame(ServerFrame {
                    request_id: String::new(),
                    kind: Some(Kind::Reads(ReadsFrame {
                        room: self.room.to_string(),
                        reads: reads.clone(),
                    })),
                })
            });
        }
    }
}
