//! When a lane's queued sends become a transaction, and which go together.
//!
//! Each lane (a partition) queues its sends in pull order and has at most
//! one transaction in flight, so a room's sends commit in that order. Idle
//! lanes' sends share one transaction. While a transaction is in flight,
//! what arrives for other lanes waits for it to finish, up to `patience`,
//! rather than starting a second at once: on a busy core, two transactions
//! take turns inside Postgres and both commit later than one larger
//! transaction would (bench/RESULTS.md §17: 1 transaction in flight put
//! commit p99 at 6.8 ms, 4 at 19.1 ms). A full batch never waits, so a
//! backlog still gets every transaction it may have.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// The lanes' queues, generic over what is queued so the rules can be tested
/// alone.
pub struct Queues<T> {
    lanes: Vec<Lane<T>>,
    /// Where the next transaction starts taking, so no lane is always last.
    next: usize,
}

struct Lane<T> {
    queue: VecDeque<Queued<T>>,
    /// It has a transaction in flight.
    busy: bool,
}

/// A queued item and when it was queued.
pub struct Queued<T> {
    pub item: T,
    pub arrived: Instant,
}

/// Whether to start a transaction now, and if not, until when to wait.
#[derive(Debug, PartialEq, Eq)]
pub enum Start {
    Now,
    /// Start then, unless a transaction finishes first.
    At(Instant),
    /// Nothing is waiting for an idle lane.
    Nothing,
}

impl<T> Queues<T> {
    pub fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes)
                .map(|_| Lane {
                    queue: VecDeque::new(),
                    busy: false,
                })
                .collect(),
            next: 0,
        }
    }

    pub fn push(&mut self, lane: usize, item: T, arrived: Instant) {
        self.lanes[lane].queue.push_back(Queued { item, arrived });
    }

    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|lane| lane.queue.is_empty())
    }

    /// Whether a transaction should start, given how many are in flight: at
    /// once when none is (or `flush`, at shutdown) or a full batch of
    /// `max` waits on idle lanes; else once the oldest of those has waited
    /// `patience` (by `now`).
    pub fn start(
        &self,
        in_flight: usize,
        max: usize,
        patience: Duration,
        flush: bool,
        now: Instant,
    ) -> Start {
        let idle = self.lanes.iter().filter(|l| !l.busy && !l.queue.is_empty());
        let (waiting, oldest) = idle.fold((0, None::<Instant>), |(n, oldest), lane| {
            let front = lane.queue.front().map(|q| q.arrived);
            let oldest = match (oldest, front) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (n + lane.queue.len(), oldest)
        });
        match oldest {
            None => Start::Nothing,
            Some(_) if in_flight == 0 || flush || waiting >= max => Start::Now,
            Some(oldest) if oldest + patience <= now => Start::Now,
            Some(oldest) => Start::At(oldest + patience),
        }
    }

    /// Takes up to `max` sends from idle lanes, whole queues first come,
    /// and marks their lanes busy. Returns them and the lanes.
    pub fn take(&mut self, max: usize) -> (Vec<Queued<T>>, Vec<usize>) {
        let count = self.lanes.len();
        let mut batch = Vec::new();
        let mut lanes = Vec::new();
        for i in (0..count).map(|k| (self.next + k) % count) {
            let lane = &mut self.lanes[i];
            if lane.busy || lane.queue.is_empty() || batch.len() >= max {
                continue;
            }
            let take = lane.queue.len().min(max - batch.len());
            batch.extend(lane.queue.drain(..take));
            lane.busy = true;
            lanes.push(i);
        }
        self.next = (self.next + 1) % count;
        (batch, lanes)
    }

    /// The transaction that held `lanes` is done.
    pub fn release(&mut self, lanes: &[usize]) {
        for &i in lanes {
            self.lanes[i].busy = false;
        }
    }

    /// Every queued item, to keep alive.
    pub fn queued_mut(&mut self) -> impl Iterator<Item = &mut Queued<T>> {
        self.lanes.iter_mut().flat_map(|lane| lane.queue.iter_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_millis(4);

    fn items(batch: &[Queued<u32>]) -> Vec<u32> {
        batch.iter().map(|q| q.item).collect()
    }

    /// Two lanes, lane 0's transaction in flight.
    fn lane_0_in_flight() -> (Queues<u32>, Instant) {
        let now = Instant::now();
        let mut q = Queues::new(2);
        q.push(0, 1, now);
        q.take(10);
        (q, now)
    }

    #[test]
    fn idle_lanes_share_one_transaction_in_their_order() {
        let now = Instant::now();
        let mut q = Queues::new(3);
        for (lane, item) in [(0, 1), (2, 2), (0, 3), (1, 4)] {
            q.push(lane, item, now);
        }
        assert_eq!(q.start(0, 10, PATIENCE, false, now), Start::Now);
        let (batch, lanes) = q.take(10);
        assert_eq!(items(&batch), [1, 3, 4, 2]);
        assert_eq!(lanes, [0, 1, 2]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_busy_lane_keeps_its_sends_until_its_transaction_is_done() {
        let now = Instant::now();
        let mut q = Queues::new(2);
        q.push(0, 1, now);
        let (_, held) = q.take(10);
        q.push(0, 2, now);
        assert_eq!(q.start(1, 10, PATIENCE, false, now), Start::Nothing);
        assert!(q.take(10).0.is_empty(), "its lane is busy");
        q.release(&held);
        assert_eq!(q.start(0, 10, PATIENCE, false, now), Start::Now);
        assert_eq!(items(&q.take(10).0), [2]);
    }

    #[test]
    fn another_lane_waits_for_the_transaction_in_flight_up_to_patience() {
        let (mut q, now) = lane_0_in_flight();
        q.push(1, 2, now);
        q.push(1, 3, now + Duration::from_millis(1));
        assert_eq!(
            q.start(1, 10, PATIENCE, false, now),
            Start::At(now + PATIENCE)
        );
        assert_eq!(
            q.start(1, 10, PATIENCE, true, now),
            Start::Now,
            "at shutdown"
        );
        let later = now + PATIENCE;
        assert_eq!(q.start(1, 10, PATIENCE, false, later), Start::Now);
        assert_eq!(items(&q.take(10).0), [2, 3]);
    }

    #[test]
    fn a_full_batch_starts_beside_the_one_in_flight() {
        let (mut q, now) = lane_0_in_flight();
        for item in 2..5 {
            q.push(1, item, now);
        }
        assert_eq!(q.start(1, 3, PATIENCE, false, now), Start::Now);
    }

    #[test]
    fn a_batch_stops_at_max_and_the_rest_goes_next() {
        let now = Instant::now();
        let mut q = Queues::new(2);
        for item in 0..3 {
            q.push(0, item, now);
            q.push(1, 10 + item, now);
        }
        let (batch, lanes) = q.take(4);
        assert_eq!(items(&batch), [0, 1, 2, 10]);
        q.release(&lanes);
        assert_eq!(items(&q.take(4).0), [11, 12]);
    }
}
