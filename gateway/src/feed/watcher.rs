//! One socket's feed: each of its user's rooms as the socket was last told
//! (a `RoomSummary`), kept true by the rooms' entries as they are fanned
//! out, and the rooms that changed since the socket was last told. Pure:
//! the feed's task feeds it and reads Postgres when it asks.

use std::collections::{BTreeSet, HashMap};

use chat_proto::v1::{Feed, MemberAccess, Message, RoomSummary};
use chat_protocol::{kind::EntryKind, RoomId, Seq, UserId};

/// Rooms per `feed` frame of the answer to `watchFeed`.
pub const PAGE: usize = 100;
/// The unread count stops here, as Postgres counts it.
const MAX_UNREAD: u32 = 1000;
/// Entries held for a room being read from Postgres; past this, the
/// oldest are dropped and the gap they leave is read again.
const MAX_HELD: usize = 256;

/// What the task must do after a change to a room.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// The socket is to be told (at the next flush).
    Changed,
    /// The room's state is to be read from Postgres (`Watcher::loaded`).
    Refresh,
}

enum Slot {
    /// Being read from Postgres: entries that arrived meanwhile, applied
    /// after it; `again` if what is read may already be stale (the read
    /// marker moved meanwhile).
    Loading {
        held: Vec<Message>,
        again: bool,
        access: Option<MemberAccess>,
    },
    Ready(Box<RoomSummary>),
}

pub struct Watcher {
    user: UserId,
    rooms: HashMap<RoomId, Slot>,
    dirty: BTreeSet<RoomId>,
    removed: Vec<String>,
}

impl Watcher {
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            rooms: HashMap::new(),
            dirty: BTreeSet::new(),
            removed: Vec::new(),
        }
    }

    pub fn user(&self) -> &UserId {
        &self.user
    }

    pub fn rooms(&self) -> impl Iterator<Item = &RoomId> {
        self.rooms.keys()
    }

    /// The room is the user's, its state still to be read.
    pub fn expect(&mut self, room: RoomId) {
        self.rooms.entry(room).or_insert(Slot::Loading {
            held: Vec::new(),
            again: false,
            access: None,
        });
    }

    /// The room's state as read from Postgres; what arrived meanwhile is
    /// applied after it. `told`: the socket hears of it with the answer
    /// to `watchFeed`, not as a change.
    pub fn loaded(&mut self, mut summary: RoomSummary, told: bool) -> After {
        let Ok(room) = RoomId::parse(summary.room.clone()) else {
            return After::Nothing;
        };
        let (held, again) = match self.rooms.remove(&room) {
            Some(Slot::Loading {
                held,
                again,
                access,
            }) => {
                summary.access = summary.access.or(access);
                (held, again)
            }
            // Read again while ready (a member added twice): the newer read wins.
            Some(Slot::Ready(_)) | None => (Vec::new(), false),
        };
        self.rooms
            .insert(room.clone(), Slot::Ready(Box::new(summary)));
        if !told {
            self.dirty.insert(room.clone());
        }
        let mut after = if again {
            After::Refresh
        } else {
            After::Nothing
        };
        for message in held {
            match self.apply(&room, &message) {
                After::Refresh => after = After::Refresh,
                After::Changed if after == After::Nothing => after = After::Changed,
                _ => {}
            }
        }
        if after == After::Refresh {
            self.start_loading(&room);
        }
        after
    }

    /// An entry of the room, as fanned out.
    pub fn apply(&mut self, room: &RoomId, message: &Message) -> After {
        let Some(slot) = self.rooms.get_mut(room) else {
            return After::Nothing;
        };
        let summary = match slot {
            Slot::Loading { held, .. } => {
                if held.len() >= MAX_HELD {
                    held.remove(0);
                }
                held.push(message.clone());
                return After::Nothing;
            }
            Slot::Ready(summary) => summary,
        };
        if message.seq <= summary.head_seq {
            return After::Nothing;
        }
        let kind = EntryKind::parse(&message.kind);
        // A gap (a lost fan-out), or a delete that may take an unread
        // message away: counted again by Postgres.
        if message.seq > summary.head_seq + 1 || kind == Some(EntryKind::MessageDeleted) {
            self.start_loading(room);
            if let Some(Slot::Loading { held, .. }) = self.rooms.get_mut(room) {
                held.push(message.clone());
            }
            return After::Refresh;
        }
        summary.head_seq = message.seq;
        let others = message.sender != self.user.as_str();
        if kind == Some(EntryKind::Message) && others && !message.deleted {
            summary.unread = (summary.unread + 1).min(MAX_UNREAD);
        }
        summary.last_message = Some(message.clone());
        self.dirty.insert(room.clone());
        After::Changed
    }

    /// The user's read marker in the room moved to `seq`.
    pub fn read(&mut self, room: &RoomId, seq: Seq) -> After {
        match self.rooms.get_mut(room) {
            None => After::Nothing,
            Some(Slot::Loading { again, .. }) => {
                *again = true;
                After::Nothing
            }
            Some(Slot::Ready(summary)) if seq.get() <= summary.read_seq => After::Nothing,
            Some(Slot::Ready(summary)) if seq.get() >= summary.head_seq => {
                summary.read_seq = seq.get();
                summary.unread = 0;
                self.dirty.insert(room.clone());
                After::Changed
            }
            Some(Slot::Ready(_)) => {
                self.start_loading(room);
                After::Refresh
            }
        }
    }

    /// The user is no longer in the room.
    pub fn remove(&mut self, room: &RoomId) {
        if self.rooms.remove(room).is_some() {
            self.dirty.remove(room);
            self.removed.push(room.to_string());
        }
    }

    fn start_loading(&mut self, room: &RoomId) {
        if let Some(slot) = self.rooms.get_mut(room) {
            if let Slot::Ready(summary) = slot {
                *slot = Slot::Loading {
                    held: Vec::new(),
                    again: false,
                    access: summary.access.take(),
                };
            }
        }
    }

    /// What changed since the last call, if anything did.
    pub fn take_update(&mut self) -> Option<Feed> {
        if self.dirty.is_empty() && self.removed.is_empty() {
            return None;
        }
        let rooms = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|room| match self.rooms.get(&room) {
                Some(Slot::Ready(summary)) => Some((**summary).clone()),
                _ => None,
            })
            .collect();
        Some(Feed {
            rooms,
            removed: std::mem::take(&mut self.removed),
            more: false,
        })
    }

    /// The answer to `watchFeed`: every room read so far, in pages.
    pub fn snapshot(&self) -> Vec<Feed> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(summary) => Some((**summary).clone()),
                Slot::Loading { .. } => None,
            })
            .collect();
        rooms.sort_by(|a, b| a.room.cmp(&b.room));
        let mut pages: Vec<Feed> = rooms
            .chunks(PAGE)
            .map(|page| Feed {
                rooms: page.to_vec(),
                removed: Vec::new(),
                more: true,
            })
            .collect();
        match pages.last_mut() {
            Some(last) => last.more = false,
            None => pages.push(Feed::default()),
        }
        pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        RoomId::parse("r").unwrap()
    }

    fn summary(head: u64, read: u64, unread: u32) -> RoomSummary {
        RoomSummary {
            room: "r".into(),
            head_seq: head,
            read_seq: read,
            unread,
            ..RoomSummary::default()
        }
    }

    fn entry(seq: u64, sender: &str, kind: &str) -> Message {
        Message {
            room: "r".into(),
            seq,
            sender: sender.into(),
            kind: kind.into(),
            ..Message::default()
        }
    }

    fn ready() -> Watcher {
        let mut w = Watcher::new(UserId::parse("bob").unwrap());
        w.expect(room());
        assert_eq!(w.loaded(summary(2, 2, 0), true), After::Nothing);
        assert!(w.take_update().is_none(), "the answer is not a change");
        w
    }

    fn shown(w: &mut Watcher) -> (u64, u64, u32) {
        let update = w.take_update().expect("a change");
        let s = &update.rooms[0];
        (s.head_seq, s.read_seq, s.unread)
    }

    #[test]
    fn others_messages_count_and_ones_own_do_not() {
        let mut w = ready();
        assert_eq!(w.apply(&room(), &entry(3, "ann", "")), After::Changed);
        assert_eq!(w.apply(&room(), &entry(4, "bob", "")), After::Changed);
        assert_eq!(
            w.apply(&room(), &entry(5, "ann", "reaction_added")),
            After::Changed
        );
        assert_eq!(shown(&mut w), (5, 2, 1));
        assert_eq!(
            w.apply(&room(), &entry(4, "ann", "")),
            After::Nothing,
            "seen"
        );
        assert!(w.take_update().is_none());
    }

    #[test]
    fn a_gap_or_a_delete_is_read_again_and_what_came_meanwhile_after_it() {
        let mut w = ready();
        assert_eq!(
            w.apply(&room(), &entry(4, "ann", "")),
            After::Refresh,
            "3 is missing"
        );
        assert_eq!(
            w.apply(&room(), &entry(5, "ann", "")),
            After::Nothing,
            "held"
        );
        assert_eq!(w.loaded(summary(4, 2, 2), false), After::Changed);
        assert_eq!(shown(&mut w), (5, 2, 3));
        assert_eq!(
            w.apply(&room(), &entry(6, "ann", "message_deleted")),
            After::Refresh
        );
        assert_eq!(w.loaded(summary(6, 2, 2), false), After::Nothing);
        assert_eq!(shown(&mut w), (6, 2, 2));
    }

    #[test]
    fn ones_marker_moving_to_the_head_clears_unread_and_below_it_reads_again() {
        let mut w = ready();
        w.apply(&room(), &entry(3, "ann", ""));
        w.apply(&room(), &entry(4, "ann", ""));
        w.take_update();
        assert_eq!(w.read(&room(), Seq::new(3)), After::Refresh);
        assert_eq!(
            w.read(&room(), Seq::new(4)),
            After::Nothing,
            "noted while reading"
        );
        assert_eq!(
            w.loaded(summary(4, 3, 1), false),
            After::Refresh,
            "read again"
        );
        assert_eq!(w.loaded(summary(4, 4, 0), false), After::Nothing);
        assert_eq!(shown(&mut w), (4, 4, 0));
        assert_eq!(w.read(&room(), Seq::new(4)), After::Nothing);
    }

    #[test]
    fn a_room_left_is_reported_removed() {
        let mut w = ready();
        w.remove(&room());
        let update = w.take_update().unwrap();
        assert_eq!(
            (update.rooms.len(), update.removed),
            (0, vec!["r".to_owned()])
        );
        assert_eq!(w.apply(&room(), &entry(3, "ann", "")), After::Nothing);
    }
}
