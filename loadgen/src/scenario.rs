//! Named load shapes; every field can be overridden on the command line.

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
            warmup: 3.0,
            duration: 10.0,
            drain: 3.0,
            slow_fraction: 0.0,
            churn_per_sec: 0.0,
            initial_conns: conns,
            ramp_secs: 0.0,
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
                 connections, churn, spike, slow-consumer, soak, smoke"
            ),
        })
    }

    pub fn rooms(&self) -> usize {
        self.conns.div_ceil(self.room_size.max(1))
    }
}
