//! Named load shapes (every field can be overridden on the command line),
//! each connection's part in them, and the load each family adds to a run:
//! [`chat`] (senders on the open-loop schedule: every scenario with a rate),
//! [`spike`] (late arrivals), [`churn`] (reconnecting receivers) and
//! [`connections`] (every socket pinged mid-window), [`typing`] (every
//! member typing on a period). Every run receives and
//! audits, slow receivers included: that is `crate::conn`.

pub mod chat;
pub mod churn;
pub mod connections;
pub mod spike;
pub mod typing;

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Params {
    pub scenario: String,
    /// WebSocket connections (or NATS clients) in all.
    pub conns: usize,
    /// Members per room; rooms = conns / room_size.
    pub room_size: usize,
    /// Members of each room that send.
    pub senders_per_room: usize,
    /// Messages per second over all senders (open loop).
    pub rate: f64,
    /// Bytes of each message body.
    pub body_bytes: usize,
    /// What bodies say after their `sender:n:intended_us:` (x's if none).
    pub body_text: Option<chat::BodyText>,
    /// Seconds of load before measuring.
    pub warmup: f64,
    /// Seconds measured.
    pub duration: f64,
    /// Seconds to wait for deliveries after the last send.
    pub drain: f64,
    /// Share of receivers that stop reading after joining.
    pub slow_fraction: f64,
    /// Receivers dropped and reconnected per second while chatting.
    pub churn_per_sec: f64,
    /// Connections open at the start; the rest arrive over `ramp_secs`.
    pub initial_conns: usize,
    pub ramp_secs: f64,
    /// Seconds between one member's `typing` signals (0: none).
    pub typing_every: f64,
}

impl Params {
    fn base(name: &str, conns: usize, room_size: usize, rate: f64) -> Self {
        Self {
            scenario: name.into(),
            conns,
            room_size,
            senders_per_room: room_size.min(2),
            rate,
            body_bytes: 64,
            body_text: None,
            warmup: 3.0,
            duration: 10.0,
            drain: 3.0,
            slow_fraction: 0.0,
            churn_per_sec: 0.0,
            initial_conns: conns,
            ramp_secs: 0.0,
            typing_every: 0.0,
        }
    }

    /// The preset named `name`.
    pub fn preset(name: &str) -> anyhow::Result<Self> {
        Ok(match name {
            // The seed guides' ladder: rooms of 10, one message per user per 10 s… times ten.
            "baseline" => Self::base(name, 100, 10, 100.0),
            "moderate" => Self::base(name, 500, 10, 500.0),
            "high" => Self::base(name, 1000, 10, 1000.0),
            "extreme" => Self::base(name, 2000, 10, 2000.0),
            "fanout" => Self {
                senders_per_room: 1,
                ..Self::base(name, 2000, 2000, 250.0)
            },
            "ingest" => Self {
                senders_per_room: 1,
                ..Self::base(name, 1000, 2, 20_000.0)
            },
            "connections" => Self {
                senders_per_room: 0,
                ..Self::base(name, 10_000, 10, 0.0)
            },
            "churn" => Self {
                churn_per_sec: 20.0,
                ..Self::base(name, 500, 10, 500.0)
            },
            "spike" => Self {
                initial_conns: 100,
                ramp_secs: 5.0,
                ..Self::base(name, 1000, 10, 1000.0)
            },
            "slow-consumer" => Self {
                slow_fraction: 0.1,
                body_bytes: 1024,
                ..Self::base(name, 500, 50, 500.0)
            },
            // 10,000 members in 1,000 rooms, each typing every 3 s, beside
            // `high`'s sends. A longer warm-up: 10,000 joins and the
            // first round of everyone coming online settle before the window.
            "typing" => Self {
                typing_every: 3.0,
                warmup: 10.0,
                duration: 20.0,
                ..Self::base(name, 10_000, 10, 1000.0)
            },
            "soak" => Self {
                duration: 120.0,
                ..Self::base(name, 1000, 10, 1000.0)
            },
            "smoke" => Self {
                warmup: 1.0,
                duration: 3.0,
                drain: 2.0,
                ..Self::base(name, 20, 5, 100.0)
            },
            other => anyhow::bail!(
                "unknown scenario {other:?}: baseline, moderate, high, extreme, fanout, ingest, \
                 connections, churn, spike, slow-consumer, typing, soak, smoke"
            ),
        })
    }

    pub fn rooms(&self) -> usize {
        self.conns.div_ceil(self.room_size.max(1))
    }

    /// The room connection `conn` joins: rooms fill up in connection order.
    pub fn room_of(&self, conn: usize) -> usize {
        conn / self.room_size
    }

    /// Whether connection `conn` sends: the first `senders_per_room` of each room.
    pub fn is_sender(&self, conn: usize) -> bool {
        conn % self.room_size < self.senders_per_room
    }

    /// How many senders come before connection `conn`: its place in the
    /// schedule. Counted, not enumerated, so that a large run's senders start
    /// on time (enumerating is quadratic in the connections).
    pub fn senders_before(&self, conn: usize) -> usize {
        conn / self.room_size * self.senders_per_room
            + (conn % self.room_size).min(self.senders_per_room)
    }

    /// Whether receiver `conn` stops reading once joined (`slow_fraction`):
    /// every n-th connection, senders excepted.
    pub fn is_slow(&self, conn: usize) -> bool {
        if self.slow_fraction <= 0.0 {
            return false;
        }
        let every = (1.0 / self.slow_fraction).round() as usize;
        every > 0 && !self.is_sender(conn) && conn % every == every - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_before_counts_the_senders_of_earlier_connections() {
        for (room_size, senders_per_room) in [(1, 0), (1, 1), (2, 1), (5, 2), (10, 10), (7, 3)] {
            let p = Params {
                senders_per_room,
                ..Params::base("t", 50, room_size, 1.0)
            };
            for conn in 0..=p.conns {
                let counted = (0..conn).filter(|&c| p.is_sender(c)).count();
                assert_eq!(
                    p.senders_before(conn),
                    counted,
                    "{room_size}/{senders_per_room} at {conn}"
                );
            }
        }
    }

    #[test]
    fn a_tenth_of_the_receivers_are_slow() {
        let p = Params::preset("slow-consumer").unwrap();
        let slow: Vec<usize> = (0..p.conns).filter(|&c| p.is_slow(c)).collect();
        assert_eq!(slow[..3], [9, 19, 29]);
        assert!(slow.iter().all(|&c| !p.is_sender(c)));
        let baseline = Params::preset("baseline").unwrap();
        assert!(!(0..baseline.conns).any(|c| baseline.is_slow(c)));
    }
}
