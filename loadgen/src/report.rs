//! The run's report: a JSON document, a one-screen summary, and an SVG chart
//! of latency percentiles and throughput over time.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::Serialize;

use crate::{adapter::Target, run::Outcome, scenarios::Params};

#[derive(Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: h.max() as f64 / 1000.0,
        }
    }
}

#[derive(Serialize)]
pub struct Point {
    pub t: u64,
    pub sent: u64,
    pub acks: u64,
    pub deliveries: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

#[derive(Serialize)]
pub struct Server {
    pub cpu_seconds: f64,
    pub cpu_seconds_per_1000_deliveries: f64,
    pub rss_before_bytes: u64,
    pub peak_rss_bytes: u64,
    pub rss_per_1000_conns_bytes: f64,
    pub peak_open_files: usize,
}

#[derive(Serialize)]
pub struct Report {
    pub label: String,
    pub target: Target,
    pub params: Params,
    pub connected: usize,
    pub connect_failures: usize,
    pub sent: u64,
    pub sends_per_sec: f64,
    pub acks_per_sec: f64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    pub ack_latency: Latency,
    pub delivery_latency: Latency,
    pub audited_receivers: usize,
    pub missing: u64,
    pub duplicates: u64,
    pub errors: std::collections::BTreeMap<String, u64>,
    pub closes: std::collections::BTreeMap<String, u64>,
    pub reconnects: u64,
    pub pongs: u64,
    /// `typing` signals sent over the whole run (not only the window).
    pub typing_sent: u64,
    pub loadgen_cpu_pct: f64,
    pub max_send_lag_ms: f64,
    /// True when the generator itself was the bottleneck: its figures
    /// then understate the server.
    pub loadgen_saturated: bool,
    pub server: Server,
    pub timeline: Vec<Point>,
    /// Watched servers' memory and open files, sampled each second.
    pub resources: Vec<Resources>,
}

#[derive(Serialize)]
pub struct Resources {
    pub t: u64,
    pub rss_bytes: u64,
    pub open_files: usize,
}

pub fn build(label: String, target: Target, params: &Params, outcome: &Outcome) -> Report {
    let stats = &outcome.stats;
    let (ack, delivery) = outcome.stats.merged();
    let window = params.duration.max(0.001);
    let timeline: Vec<Point> = stats
        .timeline()
        .into_iter()
        .map(|(t, s)| Point {
            t,
            sent: s.sent,
            acks: s.acks,
            deliveries: s.deliveries,
            p50_ms: s.delivery_ms(0.5),
            p99_ms: s.delivery_ms(0.99),
        })
        .collect();
    let loadgen_cpu_pct = 100.0 * outcome.usage.loadgen_cpu_seconds / window;
    let max_send_lag_ms = stats
        .max_send_lag_us
        .load(std::sync::atomic::Ordering::Relaxed) as f64
        / 1000.0;
    let growth = outcome
        .usage
        .server_peak_rss
        .saturating_sub(outcome.server_rss_before) as f64;
    Report {
        label,
        target,
        params: params.clone(),
        connected: outcome.connected,
        connect_failures: outcome.connect_failures,
        sent: outcome.sent_in_window,
        sends_per_sec: outcome.sent_in_window as f64 / window,
        acks_per_sec: ack.len() as f64 / window,
        deliveries: delivery.len(),
        deliveries_per_sec: delivery.len() as f64 / window,
        ack_latency: Latency::of(&ack),
        delivery_latency: Latency::of(&delivery),
        audited_receivers: outcome.tally.audited_receivers,
        missing: outcome.tally.missing,
        duplicates: outcome.tally.duplicates,
        errors: stats.errors.lock().unwrap().clone(),
        closes: stats.closes.lock().unwrap().clone(),
        reconnects: stats.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        pongs: stats.pongs.load(std::sync::atomic::Ordering::Relaxed),
        typing_sent: stats.typing_sent.load(std::sync::atomic::Ordering::Relaxed),
        loadgen_cpu_pct,
        max_send_lag_ms,
        loadgen_saturated: loadgen_cpu_pct > 90.0 || max_send_lag_ms > 100.0,
        server: Server {
            cpu_seconds: outcome.usage.server_cpu_seconds,
            cpu_seconds_per_1000_deliveries: if delivery.is_empty() {
                0.0
            } else {
                1000.0 * outcome.usage.server_cpu_seconds / delivery.len() as f64
            },
            rss_before_bytes: outcome.server_rss_before,
            peak_rss_bytes: outcome.usage.server_peak_rss,
            rss_per_1000_conns_bytes: 1000.0 * growth / outcome.connected.max(1) as f64,
            peak_open_files: outcome.usage.server_peak_files,
        },
        timeline,
        resources: outcome
            .usage
            .samples
            .iter()
            .map(|&(t, rss_bytes, open_files)| Resources {
                t,
                rss_bytes,
                open_files,
            })
            .collect(),
    }
}

pub fn print_summary(r: &Report) {
    println!(
        "{} [{}] conns={} sent/s={:.0} acks/s={:.0} deliveries/s={:.0} | ack p50/p99={:.1}/{:.1}ms | delivery p50/p95/p99/p99.9={:.1}/{:.1}/{:.1}/{:.1}ms | missing={} dup={} errors={:?} | loadgen cpu={:.0}%{} | server cpu/1k deliveries={:.3}s rss/1k conns={:.0}KiB{}",
        r.label,
        r.params.scenario,
        r.connected,
        r.sends_per_sec,
        r.acks_per_sec,
        r.deliveries_per_sec,
        r.ack_latency.p50_ms,
        r.ack_latency.p99_ms,
        r.delivery_latency.p50_ms,
        r.delivery_latency.p95_ms,
        r.delivery_latency.p99_ms,
        r.delivery_latency.p999_ms,
        r.missing,
        r.duplicates,
        r.errors,
        r.loadgen_cpu_pct,
        if r.loadgen_saturated { " (SATURATED)" } else { "" },
        r.server.cpu_seconds_per_1000_deliveries,
        r.server.rss_per_1000_conns_bytes / 1024.0,
        if r.typing_sent > 0 {
            format!(" | typing signals sent={}", r.typing_sent)
        } else {
            String::new()
        },
    );
}

/// Latency percentiles (top) and throughput (bottom) over time.
pub fn chart(r: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (900, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(310);
    let title = format!("{} — {}: delivery latency", r.label, r.params.scenario);
    panel(
        &top,
        &title,
        "ms",
        &r.timeline,
        &[("p50", BLUE, |p| p.p50_ms), ("p99", RED, |p| p.p99_ms)],
    )?;
    panel(
        &bottom,
        "throughput",
        "per second",
        &r.timeline,
        &[
            ("deliveries/s", GREEN, |p| p.deliveries as f64),
            ("sends/s", MAGENTA, |p| p.sent as f64),
            ("acks/s", BLACK, |p| p.acks as f64),
        ],
    )?;
    root.present()?;
    Ok(())
}

/// A named, coloured line and how to read its value from a second.
type Series<'a> = (&'a str, RGBColor, fn(&Point) -> f64);

/// One chart of per-second series over the run.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    timeline: &[Point],
    series: &[Series<'_>],
) -> anyhow::Result<()> {
    let t_max = timeline.last().map_or(1, |p| p.t + 1) as f64;
    let y_max = series
        .iter()
        .flat_map(|(_, _, pick)| timeline.iter().map(pick))
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_desc)
        .draw()?;
    for &(name, color, pick) in series {
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|p| (p.t as f64, pick(p))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    Ok(())
}
