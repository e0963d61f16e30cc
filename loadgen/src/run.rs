//! One load run: set up rooms, open connections, send on an open-loop
//! schedule, receive, and audit what every receiver got.

use std::{
    collections::HashSet,
    net::IpAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use futures::{stream, StreamExt};
use tokio::{sync::Mutex, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    adapter::{self, Dial, Incoming, Rx, Target, Tx},
    procstat,
    scenarios::Params,
    stats::{now_us, Stats},
};

/// Where and how to connect.
pub struct Setup {
    pub target: Target,
    pub urls: Vec<String>,
    pub jwt_secret: Option<String>,
    /// Admin base URL and token, to create rooms (this system only).
    pub admin: Option<(String, String)>,
    pub local_addrs: Vec<IpAddr>,
    /// Makes room and user names unique to this run.
    pub prefix: String,
    /// Server processes whose memory (and, without `server_cpus`, CPU) are measured.
    pub watch: Vec<u32>,
    /// CPUs the servers are pinned to: their busy time is the servers' CPU.
    pub server_cpus: Vec<usize>,
    pub quiet: bool,
}

/// What happened, for the report.
pub struct Outcome {
    pub stats: Arc<Stats>,
    pub connected: usize,
    pub connect_failures: usize,
    pub sent_in_window: u64,
    pub audited_receivers: usize,
    pub missing: u64,
    pub duplicates: u64,
    pub loadgen_cpu_seconds: f64,
    pub server_cpu_seconds: f64,
    pub server_rss_before: u64,
    pub server_peak_rss: u64,
    pub server_peak_files: usize,
    pub samples: Vec<(u64, u64, usize)>,
}

/// The open-loop schedule every sender follows; receivers use it to turn
/// an ack's id back into the send's intended time.
#[derive(Clone, Copy)]
struct Schedule {
    t0_us: u64,
    interval_us: f64,
    senders: usize,
}

impl Schedule {
    fn intended(&self, sender: usize, n: u64) -> u64 {
        let offset = self.interval_us * sender as f64 / self.senders.max(1) as f64;
        self.t0_us + (offset + n as f64 * self.interval_us) as u64
    }
}

struct Conn {
    idx: usize,
    room: usize,
    tx: Arc<Mutex<Tx>>,
    /// False for receivers whose deliveries cannot be audited (joined late,
    /// churned, or made slow on purpose).
    audited: Arc<AtomicBool>,
}

/// What a receiver saw in the window.
struct Audit {
    room: usize,
    audited: bool,
    unique: u64,
    received: u64,
}

fn user(prefix: &str, i: usize) -> String {
    format!("{prefix}u{i}")
}

fn room_name(prefix: &str, r: usize) -> String {
    format!("{prefix}r{r}")
}

async fn create_rooms(params: &Params, setup: &Setup) -> anyhow::Result<()> {
    let Some((admin, token)) = &setup.admin else {
        return Ok(());
    };
    let http = reqwest::Client::new();
    let rooms: Vec<_> = (0..params.rooms())
        .map(|r| {
            let members: Vec<String> = (0..params.conns)
                .filter(|&i| params.room_of(i) == r)
                .map(|i| user(&setup.prefix, i))
                .collect();
            (room_name(&setup.prefix, r), members)
        })
        .collect();
    let results: Vec<anyhow::Result<()>> = stream::iter(rooms)
        .map(|(room, members)| {
            let http = http.clone();
            async move {
                let response = http
                    .post(format!("{admin}/v1/admin/rooms"))
                    .bearer_auth(token)
                    .json(&serde_json::json!({"room": room, "members": members}))
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "create room: {}",
                    response.status()
                );
                Ok(())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn open(idx: usize, params: &Params, setup: &Setup) -> anyhow::Result<(Tx, Rx)> {
    let name = user(&setup.prefix, idx);
    let token = match (&setup.jwt_secret, setup.target) {
        (Some(secret), Target::Ours | Target::OursProto) => {
            chat_shared::auth::mint_hs256(secret, &name, 3600)
        }
        _ => String::new(),
    };
    let dial = Dial {
        target: setup.target,
        url: &setup.urls[idx % setup.urls.len()],
        user: &name,
        token: &token,
        local_addr: (!setup.local_addrs.is_empty())
            .then(|| setup.local_addrs[idx % setup.local_addrs.len()]),
    };
    let (mut tx, mut rx) = adapter::connect(&dial)
        .await
        .with_context(|| format!("connect {name}"))?;
    tx.join(&room_name(&setup.prefix, params.room_of(idx)), &mut rx)
        .await?;
    Ok((tx, rx))
}

pub async fn run(params: &Params, setup: &Setup) -> anyhow::Result<Outcome> {
    create_rooms(params, setup)
        .await
        .context("creating rooms")?;
    let rss_before: u64 = setup
        .watch
        .iter()
        .filter_map(|p| procstat::rss_bytes(*p))
        .sum();

    let connect_start = Instant::now();
    let initial = params.initial_conns.min(params.conns);
    let opened: Vec<(usize, anyhow::Result<(Tx, Rx)>)> = stream::iter(0..initial)
        .map(|i| async move { (i, open(i, params, setup).await) })
        .buffer_unordered(128)
        .collect()
        .await;
    let mut failures = 0;
    let mut ready = Vec::new();
    for (i, result) in opened {
        match result {
            Ok(pair) => ready.push((i, pair)),
            Err(e) => {
                if failures == 0 {
                    eprintln!("connect failed: {e:#}");
                }
                failures += 1;
            }
        }
    }
    if !setup.quiet {
        eprintln!(
            "{} connected in {:.1?} ({failures} failed)",
            ready.len(),
            connect_start.elapsed()
        );
    }

    let senders_total = params.senders_before(params.conns);
    let interval_us = if params.rate > 0.0 {
        1e6 * senders_total as f64 / params.rate
    } else {
        f64::INFINITY
    };
    let t0_us = now_us() + 500_000;
    let window_start = t0_us + (params.warmup * 1e6) as u64;
    let window_end = window_start + (params.duration * 1e6) as u64;
    let schedule = Schedule {
        t0_us,
        interval_us,
        senders: senders_total,
    };
    let stats = Arc::new(Stats::new(t0_us, (window_start, window_end)));
    let room_sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..params.rooms()).map(|_| AtomicU64::new(0)).collect());
    let stop = CancellationToken::new();

    let mut readers: Vec<JoinHandle<Audit>> = Vec::new();
    let mut conns: Vec<Conn> = Vec::new();
    let mut senders: Vec<JoinHandle<()>> = Vec::new();
    let start_conn = |i: usize,
                      tx: Tx,
                      rx: Rx,
                      audited: bool,
                      readers: &mut Vec<JoinHandle<Audit>>,
                      conns: &mut Vec<Conn>| {
        let room = params.room_of(i);
        let slow = params.is_slow(i);
        let conn = Conn {
            idx: i,
            room,
            tx: Arc::new(Mutex::new(tx)),
            audited: Arc::new(AtomicBool::new(audited && !slow)),
        };
        readers.push(tokio::spawn(read(
            i,
            room,
            rx,
            Arc::clone(&conn.tx),
            Arc::clone(&conn.audited),
            Arc::clone(&stats),
            schedule,
            stop.clone(),
            slow,
        )));
        conns.push(conn);
    };
    for (i, (tx, rx)) in ready {
        start_conn(i, tx, rx, true, &mut readers, &mut conns);
    }
    for conn in &conns {
        if params.is_sender(conn.idx) && params.rate > 0.0 {
            let sender = params.senders_before(conn.idx);
            senders.push(tokio::spawn(send(
                sender,
                conn.idx,
                room_name(&setup.prefix, conn.room),
                conn.room,
                Arc::clone(&conn.tx),
                schedule,
                window_end,
                params.body_bytes,
                Arc::clone(&stats),
                Arc::clone(&room_sent),
            )));
        }
    }

    // Spike: the remaining connections arrive during the ramp.
    if initial < params.conns {
        let ramp = Duration::from_secs_f64(params.ramp_secs.max(0.001));
        let late = params.conns - initial;
        tokio::time::sleep(Duration::from_micros(t0_us.saturating_sub(now_us()))).await;
        let begun = Instant::now();
        let arrivals: Vec<_> = (initial..params.conns)
            .map(|i| {
                let at = begun + ramp.mul_f64((i - initial) as f64 / late as f64);
                async move {
                    tokio::time::sleep_until(at).await;
                    (i, open(i, params, setup).await)
                }
            })
            .collect();
        let arrived: Vec<_> = stream::iter(arrivals)
            .buffer_unordered(4096)
            .collect()
            .await;
        for (i, result) in arrived {
            match result {
                Ok((tx, rx)) => start_conn(i, tx, rx, false, &mut readers, &mut conns),
                Err(_) => failures += 1,
            }
        }
    }

    // Churn: drop and reconnect receivers at a steady rate while chatting.
    let churn = (params.churn_per_sec > 0.0).then(|| {
        let receivers: Vec<(usize, Arc<AtomicBool>)> = conns
            .iter()
            .filter(|c| !params.is_sender(c.idx))
            .map(|c| (c.idx, Arc::clone(&c.audited)))
            .collect();
        let period = Duration::from_secs_f64(1.0 / params.churn_per_sec);
        let stats = Arc::clone(&stats);
        let stop = stop.clone();
        let params = params.clone();
        let setup_target = setup.target;
        let urls = setup.urls.clone();
        let secret = setup.jwt_secret.clone();
        let prefix = setup.prefix.clone();
        tokio::spawn(async move {
            let setup = Setup {
                target: setup_target,
                urls,
                jwt_secret: secret,
                admin: None,
                local_addrs: Vec::new(),
                prefix,
                watch: Vec::new(),
                server_cpus: Vec::new(),
                quiet: true,
            };
            let mut held: Vec<(Tx, Rx)> = Vec::new();
            let mut next = 0;
            while !stop.is_cancelled() && now_us() < window_end && !receivers.is_empty() {
                tokio::time::sleep(period).await;
                let (idx, audited) = &receivers[next % receivers.len()];
                next += 1;
                audited.store(false, Ordering::Relaxed);
                // A second socket for the same user joins while the first leaves.
                if let Ok(pair) = open(*idx, &params, &setup).await {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    held.push(pair);
                    if held.len() > 16 {
                        held.remove(0);
                    }
                }
            }
        })
    });

    // Connections scenario and friends: ping every socket mid-window.
    let pinger = {
        let txs: Vec<Arc<Mutex<Tx>>> = conns.iter().map(|c| Arc::clone(&c.tx)).collect();
        let at = window_start + (window_end - window_start) / 2;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_micros(at.saturating_sub(now_us()))).await;
            for tx in txs {
                let _ = tx.lock().await.ping().await;
            }
        })
    };

    // Measure while the window lasts, printing progress each second.
    tokio::time::sleep(Duration::from_micros(window_start.saturating_sub(now_us()))).await;
    let me = std::process::id();
    let cpu_start = procstat::cpu_seconds(me).unwrap_or(0.0);
    let server_cpu = || -> f64 {
        if setup.server_cpus.is_empty() {
            setup
                .watch
                .iter()
                .filter_map(|p| procstat::cpu_seconds(*p))
                .sum()
        } else {
            procstat::cpus_busy_seconds(&setup.server_cpus).unwrap_or(0.0)
        }
    };
    let server_cpu_start = server_cpu();
    let mut peak_rss = 0u64;
    let mut peak_files = 0usize;
    let mut samples = Vec::new();
    let mut last_cpu = cpu_start;
    while now_us() < window_end {
        tokio::time::sleep(
            Duration::from_secs(1).min(Duration::from_micros(window_end.saturating_sub(now_us()))),
        )
        .await;
        let rss: u64 = setup
            .watch
            .iter()
            .filter_map(|p| procstat::rss_bytes(*p))
            .sum();
        let files: usize = setup
            .watch
            .iter()
            .filter_map(|p| procstat::open_files(*p))
            .sum();
        peak_rss = peak_rss.max(rss);
        peak_files = peak_files.max(files);
        let t = (now_us() - t0_us) / 1_000_000;
        samples.push((t, rss, files));
        if !setup.quiet {
            let cpu = procstat::cpu_seconds(me).unwrap_or(0.0);
            let timeline = stats.timeline();
            if let Some((sec, s)) = timeline.range(..t).next_back() {
                let p99 = s
                    .delivery
                    .as_ref()
                    .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
                eprintln!(
                    "t={sec:>3}s sent/s={:>7} acks/s={:>7} deliveries/s={:>8} p99={p99:>7.1}ms loadgen cpu={:>4.0}% server rss={:>6.1}MiB",
                    s.sent, s.acks, s.deliveries, (cpu - last_cpu) * 100.0, rss as f64 / 1048576.0
                );
            }
            last_cpu = cpu;
        }
    }
    let loadgen_cpu = procstat::cpu_seconds(me).unwrap_or(0.0) - cpu_start;
    let server_cpu = server_cpu() - server_cpu_start;

    for s in senders {
        let _ = s.await;
    }
    tokio::time::sleep(Duration::from_secs_f64(params.drain)).await;
    stop.cancel();
    if let Some(c) = churn {
        c.abort();
    }
    pinger.abort();
    let mut audited_receivers = 0;
    let (mut missing, mut duplicates) = (0u64, 0u64);
    for reader in readers {
        let Ok(audit) = reader.await else { continue };
        if !audit.audited {
            continue;
        }
        audited_receivers += 1;
        let expected = room_sent[audit.room].load(Ordering::Relaxed);
        missing += expected.saturating_sub(audit.unique);
        duplicates += audit.received - audit.unique;
    }
    let sent_in_window = room_sent.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    Ok(Outcome {
        stats,
        connected: conns.len(),
        connect_failures: failures,
        sent_in_window,
        audited_receivers,
        missing,
        duplicates,
        loadgen_cpu_seconds: loadgen_cpu,
        server_cpu_seconds: server_cpu,
        server_rss_before: rss_before,
        server_peak_rss: peak_rss,
        server_peak_files: peak_files,
        samples,
    })
}

#[allow(clippy::too_many_arguments)]
async fn send(
    sender: usize,
    conn: usize,
    room: String,
    room_idx: usize,
    tx: Arc<Mutex<Tx>>,
    schedule: Schedule,
    end_us: u64,
    body_bytes: usize,
    stats: Arc<Stats>,
    room_sent: Arc<Vec<AtomicU64>>,
) {
    let mut n = 0u64;
    loop {
        let intended = schedule.intended(sender, n);
        if intended >= end_us {
            return;
        }
        let now = now_us();
        if intended > now {
            tokio::time::sleep(Duration::from_micros(intended - now)).await;
        } else {
            stats.send_lag(now - intended);
        }
        let mut body = format!("{sender}:{n}:{intended}:");
        while body.len() < body_bytes {
            body.push('x');
        }
        if tx
            .lock()
            .await
            .send(&room, &format!("{sender}-{n}"), &body)
            .await
            .is_err()
        {
            return;
        }
        stats.sent(conn, now_us());
        if stats.in_window(intended) {
            room_sent[room_idx].fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
}

#[allow(clippy::too_many_arguments)]
async fn read(
    conn: usize,
    room: usize,
    mut rx: Rx,
    tx: Arc<Mutex<Tx>>,
    audited: Arc<AtomicBool>,
    stats: Arc<Stats>,
    schedule: Schedule,
    stop: CancellationToken,
    slow: bool,
) -> Audit {
    let mut seen: HashSet<u64> = HashSet::new();
    let mut received = 0u64;
    if slow {
        // Stops reading: the server must cope without hurting the others.
        stop.cancelled().await;
        return Audit {
            room,
            audited: false,
            unique: 0,
            received: 0,
        };
    }
    loop {
        let incoming = tokio::select! {
            i = rx.next() => i,
            () = stop.cancelled() => break,
        };
        let Some(incoming) = incoming else {
            stats.closed(None);
            audited.store(false, Ordering::Relaxed);
            break;
        };
        let now = now_us();
        match incoming {
            Incoming::Message { body } => {
                let mut parts = body.splitn(4, ':');
                let (Some(s), Some(n), Some(t)) = (parts.next(), parts.next(), parts.next()) else {
                    continue;
                };
                let (Ok(s), Ok(n), Ok(t)) = (s.parse::<u64>(), n.parse::<u64>(), t.parse::<u64>())
                else {
                    continue;
                };
                stats.delivery(conn, t, now);
                if stats.in_window(t) {
                    received += 1;
                    seen.insert(s << 32 | n);
                }
            }
            Incoming::Ack { id } => {
                if let Some((s, n)) = id.split_once('-') {
                    if let (Ok(s), Ok(n)) = (s.parse::<usize>(), n.parse::<u64>()) {
                        stats.ack(conn, schedule.intended(s, n), now);
                    }
                }
            }
            Incoming::Error { code } => stats.error(&code),
            Incoming::Pong => {
                stats.pongs.fetch_add(1, Ordering::Relaxed);
            }
            Incoming::EnginePing => {
                let _ = tx.lock().await.engine_pong().await;
            }
            Incoming::Closed { code } => {
                stats.closed(code);
                audited.store(false, Ordering::Relaxed);
                break;
            }
            Incoming::Joined | Incoming::Other => {}
        }
    }
    Audit {
        room,
        audited: audited.load(Ordering::Relaxed),
        unique: seen.len() as u64,
        received,
    }
}
