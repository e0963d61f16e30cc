//! The ordering promise of one room on one gateway, as a pure type: each
//! seq is handed on once, in order, with nothing skipped.
//!
//! Workers commit a room's messages in seq order but may publish them out
//! of order, and core NATS may drop messages to a slow subscriber. So a
//! message that arrives early waits in `pending`, and a gap that does not
//! close within `gap_fill_after` is due to be filled from the store (the
//! room task does the reading; this type only says when and up to where).

use std::{collections::BTreeMap, time::Duration};

use chat_protocol::Seq;
use tokio::time::Instant;

pub struct Reorder<T> {
    /// The next seq to hand on; everything below it has been handed on.
    next: Seq,
    /// Arrived ahead of `next`, at most `max_pending` of them.
    pending: BTreeMap<Seq, T>,
    /// The highest seq known to exist (received, or seen by the prober).
    known_head: Seq,
    /// When the oldest unfilled gap is to be filled from the store.
    gap_due: Option<Instant>,
    gap_fill_after: Duration,
    max_pending: usize,
}

impl<T> Reorder<T> {
    /// Starts after `head`, the last seq the room had when it was read.
    pub fn new(head: Seq, gap_fill_after: Duration, max_pending: usize) -> Self {
        Self {
            next: head.next(),
            pending: BTreeMap::new(),
            known_head: head,
            gap_due: None,
            gap_fill_after,
            max_pending,
        }
    }

    /// The next seq to hand on.
    pub fn next(&self) -> Seq {
        self.next
    }

    /// The last seq handed on.
    pub fn delivered(&self) -> Seq {
        self.next.prev()
    }

    /// When the store should be read for a gap, if one is open.
    pub fn gap_due(&self) -> Option<Instant> {
        self.gap_due
    }

    /// Takes a message from any source and hands `deliver` every message
    /// now in order, each once. Returns true when the buffer overflowed:
    /// far behind (the store unreachable for long?), the newest were dropped
    /// (`known_head` remembers they exist) and a fill is due at once.
    pub fn accept(&mut self, seq: Seq, item: T, now: Instant, mut deliver: impl FnMut(T)) -> bool {
        self.known_head = self.known_head.max(seq);
        if seq >= self.next {
            self.pending.entry(seq).or_insert(item);
        }
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next {
                break;
            }
            deliver(entry.remove());
            self.next = self.next.next();
        }
        if !self.behind() {
            self.gap_due = None;
            return false;
        }
        if self.pending.len() > self.max_pending {
            while self.pending.len() > self.max_pending {
                self.pending.pop_last();
            }
            self.gap_due = Some(now);
            return true;
        }
        if self.gap_due.is_none() {
            self.gap_due = Some(now + self.gap_fill_after);
        }
        false
    }

    /// The room's head as seen elsewhere (the lost-tail prober): whether
    /// messages up to it are not handed on yet (then read the store up to
    /// it, and call [`Reorder::filled`]).
    pub fn saw_head(&mut self, head: Seq) -> bool {
        if head < self.next {
            return false;
        }
        self.known_head = self.known_head.max(head);
        true
    }

    /// Where a gap fill reads up to: the first buffered message, or after
    /// an overflow dropped the newest, the highest known.
    pub fn fill_target(&self) -> Seq {
        match (
            self.pending.first_key_value(),
            self.pending.last_key_value(),
        ) {
            (Some((&first, _)), Some((&last, _))) if self.known_head <= last => first.prev(),
            _ => self.known_head,
        }
    }

    /// After a gap fill: still behind (store unreachable?) means another
    /// try after another wait.
    pub fn filled(&mut self, now: Instant) {
        self.gap_due = self.behind().then(|| now + self.gap_fill_after);
    }

    /// Whether messages known to exist are not handed on yet.
    pub fn behind(&self) -> bool {
        !self.pending.is_empty() || self.known_head >= self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const AFTER: Duration = Duration::from_millis(50);

    fn take(order: &mut Reorder<u64>, seq: u64, now: Instant, out: &mut Vec<u64>) -> bool {
        order.accept(Seq::new(seq), seq, now, |s| out.push(s))
    }

    #[test]
    fn in_order_arrivals_pass_straight_through() {
        let (mut order, mut out, now) =
            (Reorder::new(Seq::new(3), AFTER, 8), vec![], Instant::now());
        for seq in 4..=6 {
            take(&mut order, seq, now, &mut out);
        }
        assert_eq!(out, [4, 5, 6]);
        assert_eq!(order.gap_due(), None);
        assert!(!order.behind());
    }

    #[test]
    fn an_early_message_waits_for_the_gap_and_a_fill_is_due_after_the_wait() {
        let (mut order, mut out, now) = (Reorder::new(Seq::ZERO, AFTER, 8), vec![], Instant::now());
        take(&mut order, 2, now, &mut out);
        take(&mut order, 3, now + AFTER / 2, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            order.gap_due(),
            Some(now + AFTER),
            "timed from the first gap"
        );
        assert_eq!(order.fill_target(), Seq::new(1), "up to the first buffered");
        take(&mut order, 1, now, &mut out);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(order.gap_due(), None);
    }

    #[test]
    fn duplicates_and_old_seqs_are_dropped() {
        let (mut order, mut out, now) =
            (Reorder::new(Seq::new(5), AFTER, 8), vec![], Instant::now());
        for seq in [5, 3, 6, 6, 5, 7] {
            take(&mut order, seq, now, &mut out);
        }
        assert_eq!(out, [6, 7]);
    }

    #[test]
    fn an_overflow_keeps_the_oldest_and_makes_a_fill_due_now_up_to_the_known_head() {
        let (mut order, mut out, now) = (Reorder::new(Seq::ZERO, AFTER, 2), vec![], Instant::now());
        assert!(!take(&mut order, 2, now, &mut out));
        assert!(!take(&mut order, 3, now, &mut out));
        assert!(take(&mut order, 4, now, &mut out));
        assert_eq!(order.gap_due(), Some(now));
        assert_eq!(order.fill_target(), Seq::new(4));
        for seq in 1..=4 {
            take(&mut order, seq, now, &mut out);
        }
        assert_eq!(out, [1, 2, 3, 4]);
    }

    #[test]
    fn a_head_seen_by_the_prober_opens_a_gap_until_filled() {
        let (mut order, mut out, now) =
            (Reorder::new(Seq::new(2), AFTER, 8), vec![], Instant::now());
        assert!(!order.saw_head(Seq::new(2)), "nothing missing");
        assert!(order.saw_head(Seq::new(4)));
        assert!(order.behind());
        order.filled(now);
        assert_eq!(
            order.gap_due(),
            Some(now + AFTER),
            "store had nothing yet: retry later"
        );
        take(&mut order, 3, now, &mut out);
        take(&mut order, 4, now, &mut out);
        assert_eq!(out, [3, 4]);
        order.filled(now);
        assert_eq!(order.gap_due(), None);
    }

    /// One step of a room's life: a fan-out arrives (maybe again, maybe
    /// never), the gap fill runs against the store, or the prober reports
    /// the room's head and the store answers only up to the k-th message
    /// (a read cut short).
    #[derive(Clone, Debug)]
    enum Step {
        Arrive(u64),
        Fill,
        Probe(u64),
    }

    fn steps(n: u64) -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            8 => (1..=n).prop_map(Step::Arrive),
            1 => Just(Step::Fill),
            1 => (0..=n).prop_map(Step::Probe),
        ];
        prop::collection::vec(step, 0..(4 * n as usize))
    }

    /// Reads the store as the room does: everything after `next` up to
    /// `up_to` that is stored (here: every seq up to `stored`).
    fn fill(order: &mut Reorder<u64>, stored: u64, now: Instant, out: &mut Vec<u64>) {
        let up_to = order.fill_target().get().min(stored);
        while order.next().get() <= up_to {
            let seq = order.next().get();
            take(order, seq, now, out);
        }
        order.filled(now);
    }

    proptest! {
        /// Any interleaving of arrivals, duplicates, losses and fills hands
        /// on each seq at most once, in order, with no gap; and the fills
        /// that follow the last arrival hand on every stored seq (each fill
        /// reads up to the first buffered message, so one may not be enough).
        #[test]
        fn every_seq_once_in_order_whatever_arrives(
            n in 1u64..40,
            head in 0u64..3,
            max_pending in 1usize..10,
            script in steps(40),
        ) {
            let now = Instant::now();
            let stored = head + n;
            let mut order = Reorder::new(Seq::new(head), AFTER, max_pending);
            let mut out = Vec::new();
            for step in script {
                match step {
                    Step::Arrive(k) => {
                        take(&mut order, head + k.min(n), now, &mut out);
                    }
                    Step::Fill => fill(&mut order, stored, now, &mut out),
                    Step::Probe(k) => {
                        if order.saw_head(Seq::new(stored)) {
                            let answered = (head + k).min(stored);
                            while order.next().get() <= answered {
                                let seq = order.next().get();
                                take(&mut order, seq, now, &mut out);
                            }
                            order.filled(now);
                        }
                    }
                }
                let expected: Vec<u64> = (head + 1..=head + out.len() as u64).collect();
                prop_assert_eq!(&out, &expected, "handed on in order, once, no gap");
                prop_assert_eq!(order.delivered().get(), head + out.len() as u64);
                if order.behind() {
                    prop_assert!(order.gap_due().is_some(), "a known gap is always due a fill");
                }
            }
            order.saw_head(Seq::new(stored));
            for _ in 0..=n {
                if order.gap_due().is_none() && !order.behind() {
                    break;
                }
                fill(&mut order, stored, now, &mut out);
            }
            let all: Vec<u64> = (head + 1..=stored).collect();
            prop_assert_eq!(out, all);
            prop_assert!(!order.behind());
            prop_assert_eq!(order.gap_due(), None);
        }
    }
}
