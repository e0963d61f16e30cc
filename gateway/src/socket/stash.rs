//! What a socket must hear but found its queue full: its resyncs (a room
//! whose next message did not fit) and the ephemeral frames (who is typing,
//! who is online, whose marker moved). Kept as their latest state, one
//! frame per kind and room, merged as more come, for the writer to send
//! after what the queue holds; so a slow socket costs at most one of each,
//! and never has to wait for a free slot to be told to resync.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex,
};

use chat_proto::v1::{server_frame::Kind, ServerFrame};

#[derive(Default)]
pub struct Stash {
    any: AtomicBool,
    frames: Mutex<Vec<ServerFrame>>,
}

impl Stash {
    /// Keeps `frame`'s news, merged into what is kept for its kind and room.
    pub fn keep(&self, frame: ServerFrame) {
        let mut frames = self.frames.lock().expect("poisoned");
        merge(&mut frames, frame);
        self.any.store(true, Ordering::Release);
    }

    /// What is kept, in the order first kept; a flag read when none is.
    pub fn take(&self) -> Vec<ServerFrame> {
        if !self.any.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.frames.lock().expect("poisoned"))
    }
}

/// Folds `frame` into the kept frame of its kind and room, if any.
fn merge(frames: &mut Vec<ServerFrame>, frame: ServerFrame) {
    let Some(kind) = frame.kind else { return };
    for kept in frames.iter_mut() {
        match (&mut kept.kind, &kind) {
            // Each says who is typing now: the newest says it all.
            (Some(Kind::TypingNow(old)), Kind::TypingNow(new)) if old.room == new.room => {
                *old = new.clone();
                return;
            }
            (Some(Kind::PresenceNow(old)), Kind::PresenceNow(new)) if old.room == new.room => {
                for user in &new.users {
                    match old.users.iter_mut().find(|u| u.user == user.user) {
                        Some(kept) => kept.online = user.online,
                        None => old.users.push(user.clone()),
                    }
                }
                return;
            }
            // A room resyncs from the first message the socket missed.
            (Some(Kind::Resync(old)), Kind::Resync(new)) if old.room == new.room => {
                old.from_seq = old.from_seq.min(new.from_seq);
                return;
            }
            // A room's newest summary says it all; removals add up.
            (Some(Kind::Feed(old)), Kind::Feed(new)) if frame.request_id.is_empty() => {
                for room in &new.rooms {
                    old.removed.retain(|r| *r != room.room);
                    match old.rooms.iter_mut().find(|r| r.room == room.room) {
                        Some(kept) => *kept = room.clone(),
                        None => old.rooms.push(room.clone()),
                    }
                }
                for room in &new.removed {
                    old.rooms.retain(|r| r.room != *room);
                    if !old.removed.contains(room) {
                        old.removed.push(room.clone());
                    }
                }
                return;
            }
            (Some(Kind::Reads(old)), Kind::Reads(new)) if old.room == new.room => {
                for read in &new.reads {
                    match old.reads.iter_mut().find(|r| r.user == read.user) {
                        Some(kept) => kept.seq = kept.seq.max(read.seq),
                        None => old.reads.push(read.clone()),
                    }
                }
                return;
            }
            _ => {}
        }
    }
    frames.push(ServerFrame {
        request_id: frame.request_id,
        kind: Some(kind),
    });
}

#[cfg(test)]
mod tests {
    use chat_proto::v1::{PresenceNow, ReadBy, Reads, TypingNow, UserPresence};

    use super::*;

    fn frame(kind: Kind) -> ServerFrame {
        ServerFrame {
            request_id: String::new(),
            kind: Some(kind),
        }
    }

    fn typing(room: &str, users: &[&str]) -> ServerFrame {
        frame(Kind::TypingNow(TypingNow {
            room: room.into(),
            users: users.iter().map(|u| u.to_string()).collect(),
        }))
    }

    fn reads(room: &str, reads: &[(&str, u64)]) -> ServerFrame {
        frame(Kind::Reads(Reads {
            room: room.into(),
            reads: reads
                .iter()
                .map(|(user, seq)| ReadBy {
                    user: user.to_string(),
                    seq: *seq,
                })
                .collect(),
        }))
    }

    fn presence(room: &str, users: &[(&str, bool)]) -> ServerFrame {
        frame(Kind::PresenceNow(PresenceNow {
            room: room.into(),
            users: users
                .iter()
                .map(|(user, online)| UserPresence {
                    user: user.to_string(),
                    online: *online,
                })
                .collect(),
        }))
    }

    #[test]
    fn one_frame_per_kind_and_room_holds_the_latest_of_everything() {
        let stash = Stash::default();
        assert!(stash.take().is_empty());
        stash.keep(typing("a", &["ann"]));
        stash.keep(reads("a", &[("ann", 3), ("bob", 9)]));
        stash.keep(typing("b", &["cat"]));
        stash.keep(typing("a", &["ann", "bob"]));
        stash.keep(reads("a", &[("ann", 5), ("bob", 7)]));
        stash.keep(presence("a", &[("bob", true)]));
        stash.keep(presence("a", &[("bob", false), ("cat", true)]));
        let kept = stash.take();
        assert_eq!(
            kept,
            [
                typing("a", &["ann", "bob"]),
                reads("a", &[("ann", 5), ("bob", 9)]),
                typing("b", &["cat"]),
                presence("a", &[("bob", false), ("cat", true)]),
            ]
        );
        assert!(stash.take().is_empty(), "taken once");
    }
}
