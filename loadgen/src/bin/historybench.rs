//! `historybench`: readers paging back through rooms while writers send
//! (`bench/run.sh history`).
//!
//! Seeds `--rooms` rooms with `--seed` messages each (straight to the
//! ingest stream), then runs writers at `--rate` sends per second over all
//! rooms for `--secs` alone, and `--secs` again with `--readers` readers
//! paging back over HTTP (`GET /v1/rooms/{room}/messages`, 50 a page,
//! `--think-ms` between pages):
//! four cycles in five read the newest three pages, the fifth pages back
//! to the room's first message. Prints the sends' ack latency in both
//! phases, pages per second, the share and latency of pages by where the
//! gateway read them (its `Server-Timing` header: redis, replica, primary),
//! and the Redis hit ratio.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use async_nats::jetstream;
use chat_client::{Client, ClientEncoding, ClientOptions, RoomApi};
use chat_proto::internal::Envelope;
use chat_protocol::{subjects, RoomId};
use clap::Parser;
use hdrhistogram::Histogram;
use prost::Message as _;
use tokio::task::JoinSet;

#[derive(Parser)]
struct Cli {
    /// Gateway WebSocket URLs (writers alternate between them).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Gateway HTTP bases (readers alternate between them).
    #[arg(long = "http", required = true)]
    http: Vec<String>,
    #[arg(long)]
    admin_token: String,
    #[arg(long)]
    jwt_secret: String,
    #[arg(long)]
    nats: String,
    #[arg(long, default_value_t = 20)]
    rooms: usize,
    /// Messages stored in each room before the run.
    #[arg(long, default_value_t = 3000)]
    seed: usize,
    /// Sends per second over all rooms (two writers a room).
    #[arg(long, default_value_t = 400.0)]
    rate: f64,
    #[arg(long, default_value_t = 20)]
    readers: usize,
    /// Pause of each reader between two pages (0: flat out), as a person
    /// scrolling back does.
    #[arg(long, default_value_t = 100)]
    think_ms: u64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

const PAGE: u32 = 50;

/// Latency histograms in µs, by label.
#[derive(Default)]
struct Timings(Mutex<BTreeMap<String, Histogram<u64>>>);

impl Timings {
    fn record(&self, label: &str, took: Duration) {
        let mut all = self.0.lock().expect("not poisoned");
        let h = all
            .entry(label.to_owned())
            .or_insert_with(|| Histogram::new(3).expect("3 significant digits"));
        let _ = h.record(took.as_micros() as u64);
    }

    fn take(&self) -> BTreeMap<String, Histogram<u64>> {
        std::mem::take(&mut self.0.lock().expect("not poisoned"))
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let admin = RoomApi::new(cli.http[0].clone(), cli.admin_token.clone());
    let rooms: Vec<String> = (0..cli.rooms).map(|r| format!("hb-{r}")).collect();
    for (r, room) in rooms.iter().enumerate() {
        let (a, b) = (format!("hb-{r}-a"), format!("hb-{r}-b"));
        let readers: Vec<String> = (0..cli.readers).map(|n| format!("hb-reader-{n}")).collect();
        let mut members: Vec<&str> = readers.iter().map(String::as_str).collect();
        members.extend([a.as_str(), b.as_str()]);
        admin.create_room(room, &members).await?;
    }
    let js = jetstream::new(async_nats::connect(&cli.nats).await?);
    seed(&js, &rooms, cli.seed, &cli.http[0], &cli.admin_token).await?;

    let sends = Arc::new(Timings::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = JoinSet::new();
    let every = Duration::from_secs_f64(rooms.len() as f64 * 2.0 / cli.rate);
    for (r, room) in rooms.iter().enumerate() {
        for (w, side) in ["a", "b"].into_iter().enumerate() {
            let user = format!("hb-{r}-{side}");
            let token = chat_auth::mint_hs256(&cli.jwt_secret, &user, 3600);
            let url = cli.urls[(r * 2 + w) % cli.urls.len()].clone();
            let (client, _messages) =
                Client::connect(ClientOptions::new([url], token, ClientEncoding::Proto));
            client.join(room, None).await?;
            let (room, sends, stop) = (room.clone(), Arc::clone(&sends), stop.clone());
            writers.spawn(write(client, room, user, every, sends, stop));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    sends.take();
    tokio::time::sleep(Duration::from_secs(cli.secs)).await;
    let alone = sends.take().remove("send");

    let pages = Arc::new(Timings::default());
    let reading = tokio_util::sync::CancellationToken::new();
    let mut readers = JoinSet::new();
    for n in 0..cli.readers {
        // A user each: reads are limited per user (`limits.read_rate_per_user`).
        let token = chat_auth::mint_hs256(&cli.jwt_secret, &format!("hb-reader-{n}"), 3600);
        let base = cli.http[n % cli.http.len()].clone();
        let (rooms, pages) = (rooms.clone(), Arc::clone(&pages));
        let think = Duration::from_millis(cli.think_ms);
        readers.spawn(read(n, base, rooms, token, think, pages, reading.clone()));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(cli.secs)).await;
    let with_readers = sends.take().remove("send");
    let by_source = pages.take();
    let secs = started.elapsed().as_secs_f64();
    reading.cancel();
    stop.cancel();
    while readers.join_next().await.is_some() {}
    while writers.join_next().await.is_some() {}

    report(&cli, alone, with_readers, &by_source, secs);
    Ok(())
}

fn report(
    cli: &Cli,
    alone: Option<Histogram<u64>>,
    with_readers: Option<Histogram<u64>>,
    by_source: &BTreeMap<String, Histogram<u64>>,
    secs: f64,
) {
    for (phase, h) in [("writers alone", alone), ("with readers", with_readers)] {
        match h {
            Some(h) => println!(
                "sends {phase}: {} acked at {:.0}/s offered, ack p50/p99/max {:.1}/{:.1}/{:.1} ms",
                h.len(),
                cli.rate,
                ms(&h, 0.5),
                ms(&h, 0.99),
                ms(&h, 1.0)
            ),
            None => println!("sends {phase}: none acked"),
        }
    }
    let total: u64 = by_source.values().map(Histogram::len).sum();
    println!(
        "pages: {total} in {secs:.1} s ({:.0}/s) by {} readers ({} ms between pages) over {} rooms of {}+ messages",
        total as f64 / secs,
        cli.readers,
        cli.think_ms,
        cli.rooms,
        cli.seed
    );
    for (source, h) in by_source {
        println!(
            "  from {source}: {:.1} % of pages, p50/p99/max {:.2}/{:.2}/{:.2} ms",
            100.0 * h.len() as f64 / total.max(1) as f64,
            ms(h, 0.5),
            ms(h, 0.99),
            ms(h, 1.0)
        );
    }
    let hits = by_source.get("redis").map_or(0, Histogram::len);
    println!(
        "redis hit ratio: {:.1} %",
        100.0 * hits as f64 / total.max(1) as f64
    );
}

/// Publishes `per_room` messages to each room straight to the ingest
/// stream and waits until the workers stored them all (`base`: a
/// gateway's HTTP address, read with the service token).
async fn seed(
    js: &jetstream::Context,
    rooms: &[String],
    per_room: usize,
    base: &str,
    admin_token: &str,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let partitions = chat_streams::partitions(js).await?;
    for (r, room) in rooms.iter().enumerate() {
        let id = RoomId::parse(room.clone())?;
        let mut acks = Vec::with_capacity(per_room);
        for n in 0..per_room {
            let envelope = Envelope {
                room: room.clone(),
                sender: format!("hb-{r}-a"),
                client_msg_id: format!("seed-{n}"),
                body: format!("seeded message {n} of {room}"),
                received_ts_ms: chat_protocol::now_ms(),
                ..Envelope::default()
            };
            acks.push(
                js.publish(
                    subjects::ingest_one(&id, partitions),
                    envelope.encode_to_vec().into(),
                )
                .await?,
            );
        }
        for ack in acks {
            ack.await?;
        }
    }
    // Stored once each room's newest page ends at its last seeded seq.
    let http = reqwest::Client::new();
    for room in rooms {
        let url = format!("{base}/v1/rooms/{room}/messages?limit=1");
        loop {
            let page: serde_json::Value = http
                .get(&url)
                .bearer_auth(admin_token)
                .send()
                .await?
                .json()
                .await?;
            if page["after"].as_u64() >= Some(per_room as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "seeded {} rooms with {per_room} messages in {:.1?}",
        rooms.len(),
        started.elapsed()
    );
    Ok(())
}

/// One writer: a send every `every`, each ack's latency recorded.
async fn write(
    client: Client,
    room: String,
    user: String,
    every: Duration,
    sends: Arc<Timings>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    let mut acks = JoinSet::new();
    for n in 0u64.. {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => break,
        }
        let sent = Instant::now();
        let ack = client.submit(&room, &format!("{user}-{n}"), "a message while others read");
        let sends = Arc::clone(&sends);
        acks.spawn(async move {
            if ack.await.is_ok() {
                sends.record("send", sent.elapsed());
            }
        });
    }
    while acks.join_next().await.is_some() {}
    client.close();
}

/// One reader: the newest pages of a room, now and then all the way back.
async fn read(
    n: usize,
    base: String,
    rooms: Vec<String>,
    token: String,
    think: Duration,
    pages: Arc<Timings>,
    stop: tokio_util::sync::CancellationToken,
) {
    let http = reqwest::Client::new();
    for cycle in n.. {
        let room = &rooms[cycle % rooms.len()];
        let depth = if cycle % 5 == 4 { usize::MAX } else { 3 };
        let mut before: Option<u64> = None;
        for _ in 0..depth {
            if stop.is_cancelled() {
                return;
            }
            match page(&http, &base, room, &token, before).await {
                Ok((source, took, next)) => {
                    pages.record(&source, took);
                    tokio::time::sleep(think).await;
                    match next {
                        Some(b) => before = Some(b),
                        None => break,
                    }
                }
                Err(e) => {
                    eprintln!("page of {room}: {e:#}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            }
        }
    }
}

/// One page: where it was read, how long it took, and the cursor of the
/// page before it (none at the room's first message).
async fn page(
    http: &reqwest::Client,
    base: &str,
    room: &str,
    token: &str,
    before: Option<u64>,
) -> anyhow::Result<(String, Duration, Option<u64>)> {
    let mut url = format!("{base}/v1/rooms/{room}/messages?limit={PAGE}");
    if let Some(b) = before {
        url.push_str(&format!("&before={b}"));
    }
    let asked = Instant::now();
    let response = http.get(&url).bearer_auth(token).send().await?;
    let status = response.status();
    let source = response
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let body: serde_json::Value = response.json().await.context("a page")?;
    let took = asked.elapsed();
    anyhow::ensure!(status.is_success(), "{status}: {body}");
    let next = (body["hasBefore"] == true)
        .then(|| body["before"].as_u64())
        .flatten();
    Ok((source, took, next))
}
