//! Member signals a room's task passes on to its sockets at most once a
//! second (read markers that moved, users online or not): each member's
//! newest value since the last time. The first after a quiet second goes
//! at once.

use std::{collections::BTreeMap, time::Duration};

use chat_protocol::UserId;
use tokio::time::Instant;

/// Shortest time between two frames of one kind to a room's sockets.
pub const EVERY: Duration = Duration::from_secs(1);

/// The values waiting for the room's next frame of their kind.
pub struct Coalesced<V> {
    waiting: BTreeMap<UserId, V>,
    last_sent: Option<Instant>,
    /// Which of a member's old and new value the frame carries.
    keep: fn(V, V) -> V,
}

impl<V: Copy> Coalesced<V> {
    pub fn new(keep: fn(V, V) -> V) -> Self {
        Self {
            waiting: BTreeMap::new(),
            last_sent: None,
            keep,
        }
    }

    pub fn note(&mut self, user: UserId, value: V) {
        let kept = match self.waiting.get(&user) {
            Some(old) => (self.keep)(*old, value),
            None => value,
        };
        self.waiting.insert(user, kept);
    }

    /// When the waiting values may go, if any wait.
    pub fn due(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(self.last_sent.map_or_else(Instant::now, |at| at + EVERY))
    }

    /// The waiting values, if their time has come at `now`.
    pub fn take(&mut self, now: Instant) -> Option<Vec<(UserId, V)>> {
        let ready = self.last_sent.is_none_or(|at| now >= at + EVERY);
        if self.waiting.is_empty() || !ready {
            return None;
        }
        self.last_sent = Some(now);
        Some(std::mem::take(&mut self.waiting).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn the_first_goes_at_once_then_at_most_one_a_second_with_what_is_kept() {
        let t0 = Instant::now();
        let mut reads = Coalesced::new(u64::max);
        assert_eq!(reads.due(), None);
        reads.note(user("ann"), 3);
        assert!(reads.due().unwrap() <= Instant::now());
        assert_eq!(reads.take(t0).unwrap(), [(user("ann"), 3)]);
        reads.note(user("ann"), 7);
        reads.note(user("bob"), 5);
        reads.note(user("ann"), 6);
        assert_eq!(reads.due(), Some(t0 + EVERY));
        assert!(reads.take(t0 + Duration::from_millis(999)).is_none());
        let second = reads.take(t0 + EVERY).unwrap();
        assert_eq!(second, [(user("ann"), 7), (user("bob"), 5)]);
        assert_eq!(reads.due(), None);
        let mut online = Coalesced::new(|_, newest| newest);
        online.note(user("ann"), true);
        online.note(user("ann"), false);
        assert_eq!(online.take(t0).unwrap(), [(user("ann"), false)]);
    }
}
