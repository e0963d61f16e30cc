//! Measurements: HDR histograms of latencies, a per-second timeline, error
//! counts, and the audit of what each receiver got. Recorders are sharded so
//! that thousands of connection tasks rarely contend.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use hdrhistogram::Histogram;

/// Microseconds since the Unix epoch: one clock for every loadgen process.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds")
}

/// One second of the timeline.
#[derive(Default, Clone)]
pub struct Second {
    pub sent: u64,
    pub acks: u64,
    pub deliveries: u64,
    pub delivery: Option<Histogram<u64>>,
}

impl Second {
    /// Delivery latency at quantile `q` in ms; 0 for a second without deliveries.
    pub fn delivery_ms(&self, q: f64) -> f64 {
        self.delivery
            .as_ref()
            .map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
    }
}

#[derive(Default)]
struct Shard {
    ack: Option<Histogram<u64>>,
    delivery: Option<Histogram<u64>>,
    timeline: BTreeMap<u64, Second>,
}

pub struct Stats {
    shards: Vec<Mutex<Shard>>,
    /// Start of the run (µs); timeline seconds count from here.
    pub t0_us: u64,
    /// Measurement window [start, end) in µs.
    pub window: (u64, u64),
    /// Sends per room whose intended time fell in the window: what each
    /// audited member of the room should have received.
    room_sent: Vec<AtomicU64>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub closes: Mutex<BTreeMap<String, u64>>,
    pub reconnects: AtomicU64,
    pub max_send_lag_us: AtomicU64,
    pub pongs: AtomicU64,
    /// `typing` signals sent (the `typing` scenario), to cost each.
    pub typing_sent: AtomicU64,
}

impl Stats {
    pub fn new(t0_us: u64, window: (u64, u64), rooms: usize) -> Self {
        Self {
            shards: (0..32).map(|_| Mutex::new(Shard::default())).collect(),
            t0_us,
            window,
            room_sent: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
            errors: Mutex::default(),
            closes: Mutex::default(),
            reconnects: AtomicU64::new(0),
            max_send_lag_us: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            typing_sent: AtomicU64::new(0),
        }
    }

    pub fn in_window(&self, intended_us: u64) -> bool {
        intended_us >= self.window.0 && intended_us < self.window.1
    }

    fn second(&self, at_us: u64) -> u64 {
        at_us.saturating_sub(self.t0_us) / 1_000_000
    }

    /// A send of `conn` to `room`, due at `intended_us`, went out at `at_us`.
    pub fn sent(&self, conn: usize, room: usize, intended_us: u64, at_us: u64) {
        {
            let mut shard = self.shards[conn % self.shards.len()].lock().unwrap();
            shard.timeline.entry(self.second(at_us)).or_default().sent += 1;
        }
        if self.in_window(intended_us) {
            self.room_sent[room].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends to `room` due in the window.
    pub fn room_sent(&self, room: usize) -> u64 {
        self.room_sent[room].load(Ordering::Relaxed)
    }

    /// Sends due in the window, over all rooms.
    pub fn sent_in_window(&self) -> u64 {
        self.room_sent
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn ack(&self, conn: usize, intended_us: u64, now: u64) {
        let mut shard = self.shards[conn % self.shards.len()].lock().unwrap();
        shard.timeline.entry(self.second(now)).or_default().acks += 1;
        if self.in_window(intended_us) {
            let _ = shard
                .ack
                .get_or_insert_with(histogram)
                .record(now.saturating_sub(intended_us).max(1));
        }
    }

    pub fn delivery(&self, conn: usize, intended_us: u64, now: u64) {
        let latency = now.saturating_sub(intended_us).max(1);
        let mut shard = self.shards[conn % self.shards.len()].lock().unwrap();
        let second = shard.timeline.entry(self.second(now)).or_default();
        second.deliveries += 1;
        let _ = second
            .delivery
            .get_or_insert_with(|| Histogram::new_with_bounds(1, 120_000_000, 2).expect("bounds"))
            .record(latency);
        if self.in_window(intended_us) {
            let _ = shard.delivery.get_or_insert_with(histogram).record(latency);
        }
    }

    pub fn error(&self, code: &str) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry(code.to_owned())
            .or_default() += 1;
    }

    pub fn closed(&self, code: Option<u16>) {
        let key = code.map_or("none".to_string(), |c| c.to_string());
        *self.closes.lock().unwrap().entry(key).or_default() += 1;
    }

    pub fn send_lag(&self, lag_us: u64) {
        self.max_send_lag_us.fetch_max(lag_us, Ordering::Relaxed);
    }

    /// Merged ack and delivery histograms of the measurement window.
    pub fn merged(&self) -> (Histogram<u64>, Histogram<u64>) {
        let (mut ack, mut delivery) = (histogram(), histogram());
        for shard in &self.shards {
            let shard = shard.lock().unwrap();
            if let Some(h) = &shard.ack {
                ack.add(h).expect("same bounds");
            }
            if let Some(h) = &shard.delivery {
                delivery.add(h).expect("same bounds");
            }
        }
        (ack, delivery)
    }

    /// The timeline, merged over shards.
    pub fn timeline(&self) -> BTreeMap<u64, Second> {
        let mut merged: BTreeMap<u64, Second> = BTreeMap::new();
        for shard in &self.shards {
            for (sec, s) in &shard.lock().unwrap().timeline {
                let m = merged.entry(*sec).or_default();
                m.sent += s.sent;
                m.acks += s.acks;
                m.deliveries += s.deliveries;
                if let Some(h) = &s.delivery {
                    match &mut m.delivery {
                        Some(mh) => mh.add(h).expect("same bounds"),
                        None => m.delivery = Some(h.clone()),
                    }
                }
            }
        }
        merged
    }
}
