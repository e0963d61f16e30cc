//! When a run's sends are due: the open-loop schedule every sender follows
//! and the measurement window.

use std::time::Duration;

use crate::{scenarios::Params, stats::now_us};

/// The open-loop schedule; receivers use it to turn an ack's id back into
/// the send's intended time.
#[derive(Clone, Copy)]
pub struct Schedule {
    /// Start of the run (µs since the epoch): the first send is due then.
    pub t0_us: u64,
    /// Between one sender's sends; senders are spread evenly over it.
    interval_us: f64,
    senders: usize,
    /// Measurement window [start, end) in µs, after the warm-up.
    pub window: (u64, u64),
}

impl Schedule {
    /// A schedule starting half a second from now, which leaves time to
    /// spawn every sender and reader before the first send is due.
    pub fn start(params: &Params) -> Self {
        let senders = params.senders_before(params.conns);
        let interval_us = if params.rate > 0.0 {
            1e6 * senders as f64 / params.rate
        } else {
            f64::INFINITY
        };
        let t0_us = now_us() + 500_000;
        let window_start = t0_us + (params.warmup * 1e6) as u64;
        let window_end = window_start + (params.duration * 1e6) as u64;
        Self {
            t0_us,
            interval_us,
            senders,
            window: (window_start, window_end),
        }
    }

    /// When send `n` of sender `sender` is due (µs since the epoch).
    pub fn intended(&self, sender: usize, n: u64) -> u64 {
        let offset = self.interval_us * sender as f64 / self.senders.max(1) as f64;
        self.t0_us + (offset + n as f64 * self.interval_us) as u64
    }
}

/// Sleeps until `at_us` (µs since the epoch); returns at once if it has passed.
pub async fn sleep_until(at_us: u64) {
    tokio::time::sleep(Duration::from_micros(at_us.saturating_sub(now_us()))).await;
}
