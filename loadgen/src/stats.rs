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
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub closes: Mutex<BTreeMap<String, u64>>,
    pub reconnects: AtomicU64,
    pub max_send_lag_us: AtomicU64,
    pub pongs: AtomicU64,
}

impl Stats {
    pub fn new(t0_us: u64, window: (u64, u64)) -> Self {
        Self {
            shards: (0..32).map(|_| Mutex::new(Shard::default())).collect(),
            t0_us,
            window,
            errors: Mutex::default(),
            closes: Mutex::default(),
            reconnects: AtomicU64::new(0),
            max_send_lag_us: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
        }
    }

    pub fn in_window(&self, intended_us: u64) -> bool {
        intended_us >= self.window.0 && intended_us < self.window.1
    }

    fn second(&self, at_us: u64) -> u64 {
        at_us.saturating_sub(self.t0_us) / 1_000_000
    }

    pub fn sent(&self, conn: usize, at_us: u64) {
        let mut shard = self.shards[conn % self.shards.len()].lock().unwrap();
        shard.timeline.entry(self.second(at_us)).or_default().sent += 1;
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
