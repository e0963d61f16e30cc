//! The measurement window: what the generator and the servers spend while
//! it lasts, the servers' memory and open files each second, and a line of
//! progress each second.

use std::time::Duration;

use crate::{
    procstat,
    schedule::{self, Schedule},
    stats::{now_us, Stats},
};

/// The server processes under load and how their CPU is counted.
pub struct Servers {
    /// Processes whose memory and open files (and, without `cpus`, CPU)
    /// are measured.
    pub pids: Vec<u32>,
    /// CPUs the servers are pinned to: their busy time is the servers' CPU.
    pub cpus: Vec<usize>,
}

impl Servers {
    /// Resident memory of every watched process, in bytes.
    pub fn rss(&self) -> u64 {
        self.pids
            .iter()
            .filter_map(|p| procstat::rss_bytes(*p))
            .sum()
    }

    fn open_files(&self) -> usize {
        self.pids
            .iter()
            .filter_map(|p| procstat::open_files(*p))
            .sum()
    }

    fn cpu_seconds(&self) -> f64 {
        if self.cpus.is_empty() {
            self.pids
                .iter()
                .filter_map(|p| procstat::cpu_seconds(*p))
                .sum()
        } else {
            procstat::cpus_busy_seconds(&self.cpus).unwrap_or(0.0)
        }
    }
}

/// What the window cost.
#[derive(Default)]
pub struct Usage {
    pub loadgen_cpu_seconds: f64,
    pub server_cpu_seconds: f64,
    pub server_peak_rss: u64,
    pub server_peak_files: usize,
    /// (second of the run, servers' RSS, servers' open files), each second.
    pub samples: Vec<(u64, u64, usize)>,
}

/// Waits for the window to open, then measures until it closes.
pub async fn window(servers: &Servers, stats: &Stats, schedule: Schedule, quiet: bool) -> Usage {
    let (start, end) = schedule.window;
    schedule::sleep_until(start).await;
    let me = std::process::id();
    let cpu_start = procstat::cpu_seconds(me).unwrap_or(0.0);
    let server_cpu_start = servers.cpu_seconds();
    let mut usage = Usage::default();
    let mut last_cpu = cpu_start;
    while now_us() < end {
        tokio::time::sleep(
            Duration::from_secs(1).min(Duration::from_micros(end.saturating_sub(now_us()))),
        )
        .await;
        let rss = servers.rss();
        let files = servers.open_files();
        usage.server_peak_rss = usage.server_peak_rss.max(rss);
        usage.server_peak_files = usage.server_peak_files.max(files);
        let t = (now_us() - schedule.t0_us) / 1_000_000;
        usage.samples.push((t, rss, files));
        if !quiet {
            let cpu = procstat::cpu_seconds(me).unwrap_or(0.0);
            print_progress(stats, t, cpu - last_cpu, rss);
            last_cpu = cpu;
        }
    }
    usage.loadgen_cpu_seconds = procstat::cpu_seconds(me).unwrap_or(0.0) - cpu_start;
    usage.server_cpu_seconds = servers.cpu_seconds() - server_cpu_start;
    usage
}

/// Prints the last second before `t` of the timeline, with the generator's
/// CPU seconds since the previous line and the servers' memory.
fn print_progress(stats: &Stats, t: u64, loadgen_cpu_seconds: f64, server_rss: u64) {
    let timeline = stats.timeline();
    let Some((sec, s)) = timeline.range(..t).next_back() else {
        return;
    };
    let p99 = s.delivery_ms(0.99);
    eprintln!(
        "t={sec:>3}s sent/s={:>7} acks/s={:>7} deliveries/s={:>8} p99={p99:>7.1}ms loadgen cpu={:>4.0}% server rss={:>6.1}MiB",
        s.sent, s.acks, s.deliveries, loadgen_cpu_seconds * 100.0, server_rss as f64 / 1048576.0
    );
}
