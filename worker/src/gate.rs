//! The gate of one ingest partition (decision 15): its messages are handed
//! to the lanes in stream order, without holes, whoever else pulled them
//! before. A message goes on only once every lower seq of the partition has
//! gone on from this worker or has been acked by anyone (it is at or below
//! the consumer's ack floor). So a socket's later send is never stored
//! before its earlier one, even when a former owner still holds the earlier
//! one or JetStream redelivers it behind the later one.
//!
//! A pure type: the owner loop (`partitions`) feeds it arrivals and ack
//! floors and hands on what it returns.

use std::collections::BTreeMap;

/// What one partition's owner holds back, and from where.
pub struct Gate<M> {
    /// The lowest seq neither handed on by this worker nor seen acked.
    next: u64,
    /// Messages above a hole, by stream seq.
    held: BTreeMap<u64, M>,
}

impl<M> Gate<M> {
    /// A gate for a partition whose consumer has acked every seq up to
    /// `ack_floor`.
    pub fn new(ack_floor: u64) -> Self {
        Self {
            next: ack_floor + 1,
            held: BTreeMap::new(),
        }
    }

    /// A message with stream seq `seq` arrived: what may go on now, in seq
    /// order. A seq below the gate is a copy of one already handed on or
    /// acked, and goes on at once (the store finds it); one above a hole is
    /// held, a newer copy replacing an older.
    pub fn arrive(&mut self, seq: u64, message: M) -> Vec<M> {
        if seq < self.next {
            return vec![message];
        }
        self.held.insert(seq, message);
        self.release()
    }

    /// The consumer's ack floor now: seqs up to it are acked, so they are no
    /// hole any more. What may go on now, in seq order.
    pub fn acked_through(&mut self, ack_floor: u64) -> Vec<M> {
        if ack_floor < self.next {
            return Vec::new();
        }
        self.next = ack_floor + 1;
        let copies = self.held.split_off(&self.next);
        let mut out: Vec<M> = std::mem::replace(&mut self.held, copies)
            .into_values()
            .collect();
        out.extend(self.release());
        out
    }

    /// Whether messages wait above a hole.
    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The messages held, to keep alive while they wait.
    pub fn held_mut(&mut self) -> impl Iterator<Item = &mut M> {
        self.held.values_mut()
    }

    /// Gives up the held messages (the partition is released).
    pub fn into_held(self) -> Vec<M> {
        self.held.into_values().collect()
    }

    /// Hands on the held messages contiguous from `next`.
    fn release(&mut self) -> Vec<M> {
        let mut out = Vec::new();
        while let Some(message) = self.held.remove(&self.next) {
            out.push(message);
            self.next += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Step {
        /// Seq `n` arrives (a first delivery, a redelivery or a copy).
        Arrive(u64),
        /// Another worker acked every seq up to `n`, among those it could
        /// have: the floor never passes a seq nobody handed on.
        Floor(u64),
    }

    fn steps() -> impl Strategy<Value = (u64, Vec<Step>)> {
        (0..5u64).prop_flat_map(|floor| {
            let step = prop_oneof![
                4 => (1..40u64).prop_map(Step::Arrive),
                1 => (0..40u64).prop_map(Step::Floor),
            ];
            (Just(floor), proptest::collection::vec(step, 0..120))
        })
    }

    proptest! {
        /// For any arrival order, copies and ack floors: no seq goes on
        /// while a lower one has neither gone on nor been acked, and every
        /// seq that arrived once all below it did has gone on.
        #[test]
        fn nothing_passes_a_hole((start, steps) in steps()) {
            let mut gate = Gate::new(start);
            let mut acked_floor = start;
            let mut passed: BTreeSet<u64> = (1..=start).collect();
            let mut arrived = BTreeSet::new();
            for step in steps {
                let out = match step {
                    Step::Arrive(seq) => {
                        arrived.insert(seq);
                        gate.arrive(seq, seq)
                    }
                    Step::Floor(floor) => {
                        // A floor covers only seqs someone could have
                        // stored: gone on here, or below a first gap.
                        let floor = floor.max(acked_floor);
                        acked_floor = floor;
                        passed.extend(1..=floor);
                        gate.acked_through(floor)
                    }
                };
                for seq in out {
                    prop_assert!(
                        (1..seq).all(|lower| passed.contains(&lower)),
                        "{seq} went on with a hole below it"
                    );
                    passed.insert(seq);
                }
            }
            let contiguous = (1..).take_while(|s| passed.contains(s) || arrived.contains(s));
            for seq in contiguous {
                prop_assert!(passed.contains(&seq), "{seq} arrived behind no hole but was held");
            }
        }
    }

    #[test]
    fn a_hole_holds_until_filled_or_acked() {
        let mut gate = Gate::new(10);
        assert_eq!(gate.arrive(12, 12), Vec::<u64>::new());
        assert_eq!(gate.arrive(13, 13), Vec::<u64>::new());
        assert!(gate.holding());
        assert_eq!(gate.arrive(11, 11), vec![11, 12, 13]);
        assert_eq!(
            gate.arrive(11, 11),
            vec![11],
            "a copy goes on: the store finds it"
        );
        assert_eq!(gate.arrive(16, 16), Vec::<u64>::new());
        assert_eq!(gate.acked_through(13), Vec::<u64>::new(), "no news");
        assert_eq!(
            gate.acked_through(15),
            vec![16],
            "another worker acked 14 and 15"
        );
        assert!(!gate.holding());
    }
}
