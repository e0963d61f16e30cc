//! One load run, the driver every scenario shares: create the rooms, open
//! the connections, start what the scenario adds (`crate::scenarios`),
//! measure the window, drain, and audit what every receiver got.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{
    conn::{Conns, Tally},
    fleet::Fleet,
    measure::{self, Servers, Usage},
    scenarios::{chat, churn, connections, spike, typing, Params},
    schedule::Schedule,
    stats::Stats,
};

/// Where and how to connect, and what to watch.
pub struct Setup {
    pub fleet: Fleet,
    /// Admin base URL and token, to create rooms (this system only).
    pub admin: Option<(String, String)>,
    pub servers: Servers,
    pub quiet: bool,
}

/// What happened, for the report.
pub struct Outcome {
    pub stats: Arc<Stats>,
    pub connected: usize,
    pub connect_failures: usize,
    pub sent_in_window: u64,
    pub tally: Tally,
    pub server_rss_before: u64,
    pub usage: Usage,
}

/// Runs the load `params` describes against the system `setup` reaches.
pub async fn run(params: &Params, setup: &Setup) -> anyhow::Result<Outcome> {
    let fleet = &setup.fleet;
    if let Some(admin) = &setup.admin {
        fleet
            .create_rooms(params, admin)
            .await
            .context("creating rooms")?;
    }
    let server_rss_before = setup.servers.rss();
    let initial = params.initial_conns.min(params.conns);
    let (ready, mut connect_failures) = fleet.open_all(0..initial, params, setup.quiet).await;

    let schedule = Schedule::start(params);
    let stats = Arc::new(Stats::new(schedule.t0_us, schedule.window, params.rooms()));
    let stop = CancellationToken::new();
    let mut conns = Conns::new(params, schedule, Arc::clone(&stats), stop.clone());
    for (i, (tx, rx)) in ready {
        conns.start(i, tx, rx, true);
    }
    let senders = chat::start_senders(conns.list(), params, fleet, schedule, &stats);
    connect_failures += spike::ramp(params, fleet, &mut conns, schedule.t0_us).await;
    let churn = churn::start(
        conns.list(),
        params,
        fleet,
        &stats,
        &stop,
        schedule.window.1,
    );
    let pinger = connections::ping_mid_window(conns.list(), schedule.window);
    let typists = typing::start(conns.list(), params, fleet, &stats, schedule.window.1);

    let usage = measure::window(&setup.servers, &stats, schedule, setup.quiet).await;
    for s in senders {
        let _ = s.await;
    }
    tokio::time::sleep(Duration::from_secs_f64(params.drain)).await;
    stop.cancel();
    if let Some(c) = churn {
        c.abort();
    }
    pinger.abort();
    for t in typists {
        t.abort();
    }
    let connected = conns.list().len();
    let tally = conns.audit().await;
    Ok(Outcome {
        sent_in_window: stats.sent_in_window(),
        stats,
        connected,
        connect_failures,
        tally,
        server_rss_before,
        usage,
    })
}
