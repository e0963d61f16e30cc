//! Leaving without a stampede. On SIGTERM the gateway fails readiness and
//! refuses new sockets; after `drain_delay_ms` it closes its sockets with
//! 1012 (reconnect elsewhere), each at its own moment, drawn uniformly over
//! `drain_spread_ms`, so that the other gateways see a steady trickle of
//! reconnects (handshake, token check, rejoin with replay) rather than all
//! of them in one instant.
//!
//! Until its moment a socket is served as usual: its sends are answered,
//! its rooms delivered. At its moment it stops reading, waits for the
//! answers to the sends it accepted (at most `drain_timeout_ms`), then
//! closes. No task walks the sockets: each socket learns the window opened
//! from one token and sleeps until its own moment, so the timer wheel wakes
//! them one by one.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        OnceLock,
    },
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Where the gateway is in its drain; shared by `/readyz`, the upgrade
/// handler and every socket.
pub struct Drain {
    /// Set on SIGTERM: readiness fails and upgrades are refused.
    draining: AtomicBool,
    /// When sockets began to close; set just before `closing` fires.
    opened: OnceLock<Instant>,
    /// Fires once: sockets are to close, each at its moment in the window.
    closing: CancellationToken,
    spread: Duration,
}

impl Drain {
    pub fn new(spread: Duration) -> Self {
        Self {
            draining: AtomicBool::new(false),
            opened: OnceLock::new(),
            closing: CancellationToken::new(),
            spread,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Fails readiness and refuses new sockets from now on.
    pub fn begin(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Opens the window: from now on every socket closes at its moment.
    pub fn close_sockets(&self) {
        self.begin();
        let _ = self.opened.set(Instant::now());
        self.closing.cancel();
    }

    /// Completes once the window has opened (at once if it has).
    pub fn closing(&self) -> WaitForCancellationFuture<'_> {
        self.closing.cancelled()
    }

    /// A socket's moment to close: a uniformly random point of the window
    /// (in the past for a socket that learns of the window late, which then
    /// closes at once). Only meaningful once `closing` has completed.
    pub fn moment(&self) -> Instant {
        let opened = *self.opened.get().unwrap_or(&Instant::now());
        opened + self.spread.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn moments_fall_within_the_window() {
        let drain = Drain::new(Duration::from_secs(4));
        assert!(!drain.is_draining());
        drain.close_sockets();
        drain.closing().await;
        assert!(drain.is_draining());
        let opened = *drain.opened.get().unwrap();
        let offsets: Vec<Duration> = (0..1000).map(|_| drain.moment() - opened).collect();
        assert!(offsets.iter().all(|o| *o <= Duration::from_secs(4)));
        // Every half second of the window gets some: spread, not bunched.
        for half in 0..8 {
            let from = Duration::from_millis(500 * half);
            let n = offsets
                .iter()
                .filter(|o| **o >= from && **o < from + Duration::from_millis(500))
                .count();
            assert!((50..=200).contains(&n), "{n} moments in slot {half}");
        }
    }
}
