//! `feedbench`: what the feed of one's rooms costs (`bench/run.sh feed`).
//!
//! `--watchers` users (`feed-w<i>`, spread over the gateways) each watch
//! the feed of their `--rooms` rooms (`feed-r<j>`; rooms and memberships
//! must exist, every watcher in every room), joining none; a sender
//! (`feed-sender`, a member too) sends `--rate` messages a second to the
//! rooms in turn for `--secs`. Prints, once the run is over, the feed
//! frames each watcher got per message, and how long from a send to its
//! room's update on a watcher's feed (p50, p99). With `--watchers 0` it
//! only sends: the same load without feeds, for the side by side.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chat_client::{Client, ClientEncoding, ClientOptions, Signal};
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Cli {
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    #[arg(long)]
    jwt_secret: String,
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    #[arg(long, default_value_t = 500)]
    rooms: usize,
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    #[arg(long, default_value_t = 20)]
    secs: u64,
}

/// When each message was sent, by client_msg_id.
type Sent = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let sent: Sent = Arc::default();
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let frames = Arc::new(Mutex::new(0u64));
    let _watchers = watch(&cli, &sent, &latency, &frames).await?;
    println!(
        "ready: {} watchers, each with {} rooms",
        cli.watchers, cli.rooms
    );
    let token = chat_auth::mint_hs256(&cli.jwt_secret, "feed-sender", 3600);
    let options = ClientOptions::new(cli.urls.clone(), token, ClientEncoding::Proto);
    let (sender, _messages) = Client::connect(options);
    let every = Duration::from_secs_f64(1.0 / cli.rate);
    let mut ticks = tokio::time::interval(every);
    let end = Instant::now() + Duration::from_secs(cli.secs);
    let mut acks = Vec::new();
    let mut n = 0usize;
    // Ids of this run only: a run again would resend the last one's.
    let run = chat_protocol::now_ms();
    while Instant::now() < end {
        ticks.tick().await;
        let (room, id) = (format!("feed-r{}", n % cli.rooms), format!("m{run}-{n}"));
        sent.lock().unwrap().insert(id.clone(), Instant::now());
        acks.push(sender.submit(&room, &id, "feed bench"));
        n += 1;
    }
    let stored = futures::future::join_all(acks)
        .await
        .into_iter()
        .filter(Result::is_ok)
        .count();
    // The last updates: one flush and a little.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let frames = *frames.lock().unwrap();
    let latency = latency.lock().unwrap();
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "sent {n} messages at {:.0}/s, {stored} acked; {} watchers got {frames} feed frames \
         ({:.2} per message per watcher); send -> feed p50 {:.0} ms, p99 {:.0} ms ({} samples)",
        cli.rate,
        cli.watchers,
        frames as f64 / (n.max(1) * cli.watchers.max(1)) as f64,
        ms(0.5),
        ms(0.99),
        latency.len()
    );
    Ok(())
}

/// Starts each watcher once its feed's answer listed every room; each
/// records the send -> feed time of every room its updates carry.
async fn watch(
    cli: &Cli,
    sent: &Sent,
    latency: &Arc<Mutex<Histogram<u64>>>,
    frames: &Arc<Mutex<u64>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut watchers = Vec::new();
    for i in 0..cli.watchers {
        let url = cli.urls[i % cli.urls.len()].clone();
        let token = chat_auth::mint_hs256(&cli.jwt_secret, &format!("feed-w{i}"), 3600);
        let (client, _messages, mut signals) =
            Client::connect_with_signals(ClientOptions::new([url], token, ClientEncoding::Proto));
        client.watch_feed()?;
        // The answer first: every room.
        let mut listed = 0;
        while listed < cli.rooms {
            match tokio::time::timeout(Duration::from_secs(60), signals.recv()).await? {
                Some(Signal::Feed { feed, whole: true }) => listed += feed.rooms.len(),
                Some(_) => {}
                None => anyhow::bail!("watcher {i} stopped"),
            }
        }
        let (sent, latency, frames) = (Arc::clone(sent), Arc::clone(latency), Arc::clone(frames));
        watchers.push(tokio::spawn(async move {
            while let Some(signal) = signals.recv().await {
                let Signal::Feed { feed, whole: false } = signal else {
                    continue;
                };
                *frames.lock().unwrap() += 1;
                let now = Instant::now();
                for room in feed.rooms {
                    let Some(m) = room.last_message else { continue };
                    if let Some(at) = sent.lock().unwrap().get(&m.client_msg_id) {
                        let us = now.duration_since(*at).as_micros() as u64;
                        let _ = latency.lock().unwrap().record(us);
                    }
                }
            }
            drop(client);
        }));
    }
    Ok(watchers)
}
