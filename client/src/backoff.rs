//! Exponential backoff with full jitter, for reconnects and retried sends.
//!
//! Full jitter (a uniform delay between zero and the current ceiling)
//! spreads out the clients of a gateway that just died, so they do not all
//! land on the survivor in the same millisecond.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `base` up to `max`, each drawn uniformly below
/// the current ceiling.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    /// Failures since the last `reset`.
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The ceiling for the next delay, without jitter.
    pub fn ceiling(&self) -> Duration {
        // 2^16 × base is past any sensible max; the cap avoids overflow.
        let factor = 1u32 << self.attempt.min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay, and one more failure counted.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// Failures counted since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a success: the next failure waits little again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_stay_below_the_ceiling() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<u128> = (0..6)
            .map(|_| {
                let c = b.ceiling();
                assert!(b.next_delay() <= c);
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        assert_eq!(b.attempts(), 0);
    }
}
