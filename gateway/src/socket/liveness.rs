//! Whether the peer is still there: a socket heard nothing from for a whole
//! ping interval is pinged, and closed as dead if nothing answers in time.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Limits;

/// A socket heard nothing from for a whole ping interval is pinged; if
/// nothing (not even the pong) comes back within the pong timeout, it is
/// closed as dead.
pub struct Liveness {
    pub(super) ping: tokio::time::Interval,
    pong_timeout: Duration,
    /// Something arrived since the last tick.
    heard: bool,
    /// When the outstanding ping must have been answered.
    pub(super) pong_due: Option<Instant>,
}

impl Liveness {
    pub fn new(limits: &Limits) -> Self {
        let every = limits.ping_interval;
        Self {
            ping: tokio::time::interval_at(Instant::now() + every, every),
            pong_timeout: limits.pong_timeout,
            heard: false,
            pong_due: None,
        }
    }

    /// On a ping tick: whether to ping now.
    pub fn tick(&mut self) -> bool {
        let ping = !self.heard && self.pong_due.is_none();
        if ping {
            self.pong_due = Some(Instant::now() + self.pong_timeout);
        }
        self.heard = false;
        ping
    }

    pub fn heard(&mut self) {
        self.heard = true;
        self.pong_due = None;
    }
}
