//! Who is typing in a room, as its task on this gateway keeps it: each
//! user until their last signal lapses (`typing_signals` brings them).

use std::{collections::BTreeMap, time::Duration};

use chat_protocol::UserId;
use tokio::time::Instant;

/// How long a typing signal holds after the last one.
pub const TYPING_TTL: Duration = Duration::from_secs(5);

/// The users typing in one room, each until their signal lapses.
#[derive(Default)]
pub struct Typing {
    until: BTreeMap<UserId, Instant>,
}

impl Typing {
    /// The user typed at `now`; true if they were not typing before.
    pub fn refresh(&mut self, user: UserId, now: Instant) -> bool {
        self.until.insert(user, now + TYPING_TTL).is_none()
    }

    /// Forgets whoever lapsed by `now`; true if anyone did.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.until.len();
        self.until.retain(|_, until| *until > now);
        self.until.len() != before
    }

    /// When the next signal lapses, if anyone is typing.
    pub fn next_lapse(&self) -> Option<Instant> {
        self.until.values().min().copied()
    }

    /// Who is typing, by user id.
    pub fn users(&self) -> Vec<String> {
        self.until.keys().map(ToString::to_string).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_holds_until_it_lapses_and_a_refresh_extends_it() {
        let t0 = Instant::now();
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        let mut typing = Typing::default();
        assert!(typing.refresh(ann.clone(), t0));
        assert!(typing.refresh(bob, t0 + Duration::from_secs(2)));
        assert!(!typing.refresh(ann.clone(), t0 + Duration::from_secs(3)));
        assert_eq!(typing.users(), ["ann", "bob"]);
        assert_eq!(typing.next_lapse(), Some(t0 + Duration::from_secs(7)));
        assert!(!typing.expire(t0 + Duration::from_secs(6)));
        assert!(typing.expire(t0 + Duration::from_secs(7)));
        assert_eq!(typing.users(), ["ann"]);
        assert!(typing.expire(t0 + Duration::from_secs(8)));
        assert!(typing.is_empty() && typing.next_lapse().is_none());
    }
}
