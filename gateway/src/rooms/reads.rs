//! Read markers that moved in a room, as its task on this gateway passes
//! them to its sockets: at most one `reads` frame a second, carrying each
//! member's newest marker since the last one. The first after a quiet
//! second goes at once.

use std::{collections::BTreeMap, time::Duration};

use chat_proto::v1::ReadBy;
use chat_protocol::{Seq, UserId};
use tokio::time::Instant;

/// Shortest time between two `reads` of a room.
pub const READS_EVERY: Duration = Duration::from_secs(1);

/// The markers waiting for the room's next `reads`.
#[derive(Default)]
pub struct Reads {
    waiting: BTreeMap<UserId, Seq>,
    last_sent: Option<Instant>,
}

impl Reads {
    /// A member's marker moved.
    pub fn moved(&mut self, user: UserId, seq: Seq) {
        let newest = self.waiting.entry(user).or_insert(seq);
        *newest = (*newest).max(seq);
    }

    /// When the waiting markers may go, if any wait.
    pub fn due(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(
            self.last_sent
                .map_or_else(Instant::now, |at| at + READS_EVERY),
        )
    }

    /// The waiting markers, if their time has come at `now`.
    pub fn take(&mut self, now: Instant) -> Option<Vec<ReadBy>> {
        let ready = self.last_sent.is_none_or(|at| now >= at + READS_EVERY);
        if self.waiting.is_empty() || !ready {
            return None;
        }
        self.last_sent = Some(now);
        let waiting = std::mem::take(&mut self.waiting);
        Some(
            waiting
                .into_iter()
                .map(|(user, seq)| ReadBy {
                    user: user.to_string(),
                    seq: seq.get(),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap()
    }

    #[test]
    fn the_first_goes_at_once_then_at_most_one_a_second_with_each_newest() {
        let t0 = Instant::now();
        let mut reads = Reads::default();
        assert_eq!(reads.due(), None);
        reads.moved(user("ann"), Seq::new(3));
        assert!(reads.due().unwrap() <= Instant::now());
        let first = reads.take(t0).unwrap();
        assert_eq!((first[0].user.as_str(), first[0].seq), ("ann", 3));
        reads.moved(user("ann"), Seq::new(7));
        reads.moved(user("bob"), Seq::new(5));
        reads.moved(user("ann"), Seq::new(6));
        assert_eq!(reads.due(), Some(t0 + READS_EVERY));
        assert!(reads.take(t0 + Duration::from_millis(999)).is_none());
        let second = reads.take(t0 + READS_EVERY).unwrap();
        let pairs: Vec<_> = second.iter().map(|r| (r.user.as_str(), r.seq)).collect();
        assert_eq!(pairs, [("ann", 7), ("bob", 5)]);
        assert_eq!(reads.due(), None);
    }
}
