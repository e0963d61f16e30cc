//! `loadgen`: drives a chat system (this one or a peer) with a named
//! scenario, prints live progress and a summary, and writes a JSON report
//! and an SVG chart.

mod adapter;
mod conn;
mod fleet;
mod measure;
mod procstat;
mod report;
mod run;
mod scenarios;
mod schedule;
mod stats;

use std::{net::IpAddr, path::PathBuf};

use anyhow::Context;
use clap::Parser;

use crate::{adapter::Target, fleet::Fleet, measure::Servers, scenarios::Params};

#[derive(Parser)]
#[command(about = "Load generator for the chat system and its peers")]
struct Cli {
    /// baseline, moderate, high, extreme, fanout, ingest, connections, churn,
    /// spike, slow-consumer, typing, soak, smoke.
    #[arg(long, default_value = "baseline")]
    scenario: String,
    #[arg(long, value_enum, default_value = "ours")]
    target: Target,
    /// Server URL(s): ws://host:port/v1/ws for ours, ws://host:port for
    /// socketio and json peers, nats://host:port for nats. Repeat to spread
    /// connections over several servers.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    #[arg(long)]
    conns: Option<usize>,
    #[arg(long)]
    room_size: Option<usize>,
    #[arg(long)]
    senders_per_room: Option<usize>,
    /// Messages per second over all senders.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long)]
    body_bytes: Option<usize>,
    /// A text whose words fill the bodies (x's otherwise): each body takes
    /// a run of them from a place of its own, as chat spreads over common
    /// and rare words. What a search index pays for depends on it.
    #[arg(long)]
    body_text: Option<PathBuf>,
    #[arg(long)]
    warmup: Option<f64>,
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long)]
    drain: Option<f64>,
    #[arg(long)]
    slow_fraction: Option<f64>,
    #[arg(long)]
    churn_per_sec: Option<f64>,
    #[arg(long)]
    initial_conns: Option<usize>,
    #[arg(long)]
    ramp_secs: Option<f64>,
    /// Seconds between one member's typing signals (0: none).
    #[arg(long)]
    typing_every: Option<f64>,
    /// HS256 secret to mint users' tokens (this system).
    #[arg(long, env = "CHAT_GATEWAY_JWT__HS256_SECRET")]
    jwt_secret: Option<String>,
    /// Gateway base URL for the admin API, e.g. http://127.0.0.1:8080 (this system).
    #[arg(long)]
    admin_url: Option<String>,
    #[arg(long, env = "CHAT_GATEWAY_ADMIN_TOKEN")]
    admin_token: Option<String>,
    /// Local addresses to connect from, e.g. 127.0.0.1,127.0.0.2.
    #[arg(long, value_delimiter = ',')]
    local_addrs: Vec<IpAddr>,
    /// Server process ids whose CPU, memory and open files are measured.
    #[arg(long = "watch-pid", value_delimiter = ',')]
    watch: Vec<u32>,
    /// CPUs the servers are pinned to; their busy time counts as server CPU.
    #[arg(long, value_delimiter = ',')]
    server_cpus: Vec<usize>,
    /// Name of this run in the report.
    #[arg(long)]
    label: Option<String>,
    #[arg(long)]
    report: Option<PathBuf>,
    #[arg(long)]
    chart: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
}

impl Cli {
    fn params(&self) -> anyhow::Result<Params> {
        let mut p = Params::preset(&self.scenario)?;
        macro_rules! set {
            ($($f:ident),*) => { $(if let Some(v) = self.$f { p.$f = v; })* };
        }
        set!(
            conns,
            room_size,
            senders_per_room,
            rate,
            body_bytes,
            warmup,
            duration,
            drain,
            slow_fraction,
            churn_per_sec,
            ramp_secs,
            typing_every
        );
        if let Some(path) = &self.body_text {
            p.body_text = Some(scenarios::chat::BodyText::load(path)?);
        }
        p.initial_conns =
            self.initial_conns
                .unwrap_or(if self.conns.is_some() && p.ramp_secs == 0.0 {
                    p.conns
                } else {
                    p.initial_conns
                });
        anyhow::ensure!(
            p.room_size > 0 && p.conns > 0,
            "conns and room_size must be > 0"
        );
        anyhow::ensure!(
            p.senders_per_room <= p.room_size,
            "senders_per_room must be <= room_size"
        );
        Ok(p)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let params = cli.params()?;
    let prefix = format!("lg{}", stats::now_us() % 1_000_000_000);
    let admin = match (cli.target, &cli.admin_url, &cli.admin_token) {
        (Target::Ours | Target::OursProto, Some(url), Some(token)) => {
            Some((url.clone(), token.clone()))
        }
        (Target::Ours | Target::OursProto, _, _) => {
            anyhow::bail!("--admin-url and --admin-token are needed to create rooms")
        }
        _ => None,
    };
    if matches!(cli.target, Target::Ours | Target::OursProto) && cli.jwt_secret.is_none() {
        anyhow::bail!("--jwt-secret (or CHAT_GATEWAY_JWT__HS256_SECRET) is needed to mint tokens");
    }
    let setup = run::Setup {
        fleet: Fleet {
            target: cli.target,
            urls: cli.urls.clone(),
            jwt_secret: cli.jwt_secret.clone(),
            local_addrs: cli.local_addrs.clone(),
            prefix,
        },
        admin,
        servers: Servers {
            pids: cli.watch.clone(),
            cpus: cli.server_cpus.clone(),
        },
        quiet: cli.quiet,
    };
    let outcome = run::run(&params, &setup).await?;
    let label = cli
        .label
        .clone()
        .unwrap_or_else(|| format!("{:?}", cli.target).to_lowercase());
    let report = report::build(label, cli.target, &params, &outcome);
    report::print_summary(&report);
    if let Some(path) = &cli.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &cli.chart {
        report::chart(&report, path)?;
    }
    Ok(())
}
