//! The rooms the application follows: the last seq handed on in each (what a
//! rejoin asks to resume after, and what makes a replayed message a
//! duplicate), and the `join` calls waiting for a room's `joined`.

use std::collections::HashMap;

use chat_proto::v1::{Joined, Message};
use tokio::sync::oneshot;

use super::server_errors::server_error;
use crate::ClientError;

type JoinWaiter = oneshot::Sender<Result<Joined, ClientError>>;

/// A room the application joined.
struct Room {
    /// The last seq handed to the application: a rejoin asks for what
    /// follows it, and anything at or below it is a duplicate. `None` until
    /// the first `joined`, whose head seq then takes its place.
    last_seq: Option<u64>,
    /// `join` calls waiting for the room's `joined`.
    waiters: Vec<JoinWaiter>,
}

/// The rooms the application joined, by name.
#[derive(Default)]
pub(super) struct Rooms(HashMap<String, Room>);

impl Rooms {
    /// Follows `room` from `since`; true if a `join` must be written for it.
    pub(super) fn follow(&mut self, room: String, since: Option<u64>, reply: JoinWaiter) -> bool {
        if let Some(state) = self.0.get_mut(&room) {
            // Already followed: answer from what we know rather than join
            // twice on one socket.
            match state.last_seq {
                Some(head_seq) if state.waiters.is_empty() => {
                    let _ = reply.send(Ok(Joined { room, head_seq }));
                }
                _ => state.waiters.push(reply),
            }
            return false;
        }
        self.0.insert(
            room,
            Room {
                last_seq: since,
                waiters: vec![reply],
            },
        );
        true
    }

    /// Stops following `room`; waiters for its `joined` are dropped.
    pub(super) fn forget(&mut self, room: &str) {
        self.0.remove(room);
    }

    /// Stops following `room` because the server refused or removed us;
    /// waiters for its `joined` get that error.
    pub(super) fn unfollow(&mut self, room: &str, code: &str, message: &str) {
        if let Some(state) = self.0.remove(room) {
            for waiter in state.waiters {
                let _ = waiter.send(Err(server_error(code, message)));
            }
        }
    }

    /// Each followed room with the seq to resume after on a new socket.
    pub(super) fn resume_points(&self) -> Vec<(String, Option<u64>)> {
        self.0
            .iter()
            .map(|(room, state)| (room.clone(), state.last_seq))
            .collect()
    }

    /// Where a followed room resumes after a `resync` from `from_seq`:
    /// just before it; `None` if the room is not followed. Usually that is
    /// the last seq handed on. Past it: retention deleted what lies between.
    /// At or below it: the store was restored from a backup taken before
    /// it, and the seqs from there on will be new messages.
    pub(super) fn resync_from(&mut self, room: &str, from_seq: u64) -> Option<Option<u64>> {
        let state = self.0.get_mut(room)?;
        state.last_seq = Some(from_seq.saturating_sub(1));
        Some(state.last_seq)
    }

    /// The room's `joined` arrived: its waiters learn the head seq.
    pub(super) fn joined(&mut self, room: &str, head_seq: u64) {
        if let Some(state) = self.0.get_mut(room) {
            // On a resume the replay after `last_seq` follows, so only a
            // first join takes the head.
            let last = *state.last_seq.get_or_insert(head_seq);
            for waiter in state.waiters.drain(..) {
                let _ = waiter.send(Ok(Joined {
                    room: room.to_owned(),
                    head_seq: head_seq.max(last),
                }));
            }
        }
    }

    /// Whether `message` is new to the application (not a replay overlapping
    /// what was already seen, nor of a room we left); if so it becomes the
    /// room's last seq.
    pub(super) fn admit(&mut self, message: &Message) -> bool {
        let Some(state) = self.0.get_mut(&message.room) else {
            return false;
        };
        if state.last_seq.is_some_and(|last| message.seq <= last) {
            return false;
        }
        state.last_seq = Some(message.seq);
        true
    }

    /// The client gave up: every waiter learns why.
    pub(super) fn stop(&mut self, reason: &str) {
        for (_, room) in self.0.drain() {
            for waiter in room.waiters {
                let _ = waiter.send(Err(ClientError::Stopped(reason.to_owned())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn following(last: u64) -> Rooms {
        let mut rooms = Rooms::default();
        let (reply, _) = oneshot::channel();
        rooms.follow("r".into(), Some(last), reply);
        rooms
    }

    #[test]
    fn a_resync_from_just_past_the_last_seq_resumes_there() {
        let mut rooms = following(10);
        assert_eq!(rooms.resync_from("r", 11), Some(Some(10)));
    }

    #[test]
    fn a_resync_from_further_on_skips_what_expired() {
        let mut rooms = following(10);
        assert_eq!(rooms.resync_from("r", 201), Some(Some(200)));
        let kept = Message {
            room: "r".into(),
            seq: 201,
            ..Message::default()
        };
        assert!(rooms.admit(&kept));
    }

    #[test]
    fn a_resync_from_at_or_below_the_last_seq_drops_the_copy_past_it() {
        let mut rooms = following(10);
        assert_eq!(rooms.resync_from("r", 8), Some(Some(7)));
        let replayed = Message {
            room: "r".into(),
            seq: 8,
            ..Message::default()
        };
        assert!(rooms.admit(&replayed), "seq 8 is a new message now");
    }

    #[test]
    fn a_resync_of_a_room_not_followed_is_ignored() {
        let mut rooms = following(10);
        assert_eq!(rooms.resync_from("other", 3), None);
    }
}
