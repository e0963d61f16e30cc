//! Draining a gateway without a stampede: its sockets close with 1012 spread
//! over `drain_spread_ms`, reconnect to the other gateway as a trickle, and
//! nothing sent or delivered is lost on the way.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use chat_client::{Client, ClientError, ClientOptions, ConnectOptions, Event, Reader, Writer};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{wait_for, Cluster, ClusterOptions, Session, STEP};
use tokio::{
    sync::{watch, Semaphore},
    task::JoinHandle,
    time::Instant,
};

const ROOMS: usize = 20;
/// Sockets on the gateway that drains, and on the one that stays.
const ON_DRAINED: usize = 1600;
const ON_OTHER: usize = 400;
const DRAIN_DELAY: Duration = Duration::from_millis(500);
const SPREAD: Duration = Duration::from_secs(4);
const BUCKET: Duration = Duration::from_millis(500);
/// Each sender submits one send this often, without waiting for acks.
const SEND_EVERY: Duration = Duration::from_millis(200);

/// What one reading socket saw.
struct Watched {
    room: usize,
    /// The last seq seen; every seq before it was seen once, in order.
    last: u64,
    /// First seq out of order or repeated, if any.
    problem: Option<String>,
    /// Close codes from the server, and when each came.
    closes: Vec<(u16, Instant)>,
    /// When each reconnect (to the other gateway) had rejoined.
    rejoined: Vec<Instant>,
}

async fn open(url: &str, token: &str) -> Result<(Writer, Reader), ClientError> {
    chat_client::connect(&ConnectOptions::new(url, token, Encoding::Proto)).await
}

/// A member of `room` that only reads: joins on `url`, and on a close
/// reconnects to `fallback` and resumes with `sinceSeq`, until it has seen
/// the room's final seq.
async fn watch_room(
    url: String,
    fallback: String,
    token: String,
    room: usize,
    mut finals: watch::Receiver<Option<Arc<Vec<u64>>>>,
    opening: Arc<Semaphore>,
    joined: Arc<AtomicUsize>,
) -> Watched {
    let name = format!("r{room}");
    let mut seen = Watched {
        room,
        last: 0,
        problem: None,
        closes: Vec::new(),
        rejoined: Vec::new(),
    };
    let slot = opening.acquire().await.unwrap();
    let (w, r) = open(&url, &token).await.expect("connect");
    let mut watcher = Session::new(&name, w, r);
    watcher.join(&name).await;
    drop(slot);
    joined.fetch_add(1, Ordering::Relaxed);
    loop {
        let done = finals
            .borrow()
            .as_ref()
            .is_some_and(|f| seen.last >= f[room]);
        if done {
            return seen;
        }
        let event = tokio::select! {
            event = watcher.reader.next() => event,
            _ = finals.changed() => continue,
        };
        match event {
            Some(Ok(Event::Frame(frame))) => {
                if let Some(Kind::Message(m)) = frame.kind {
                    if m.seq != seen.last + 1 && seen.problem.is_none() {
                        seen.problem = Some(format!("seq {} after {}", m.seq, seen.last));
                    }
                    seen.last = seen.last.max(m.seq);
                }
            }
            Some(Ok(Event::Closed(frame))) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                seen.closes.push((code, Instant::now()));
                // As a client does: answer the close, then go elsewhere.
                let (old, _) = watcher.into_parts();
                old.close().await;
                let (w, r) = open(&fallback, &token).await.expect("reconnect");
                watcher = Session::new(&name, w, r);
                watcher.join_since(&name, seen.last).await;
                seen.rejoined.push(Instant::now());
            }
            other => panic!("watcher of {name}: {other:?}"),
        }
    }
}

/// What each task returned; a task that panicked or hangs fails the test.
async fn joined_all<T>(what: &str, tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        let finished = tokio::time::timeout(STEP, task).await;
        done.push(
            finished
                .unwrap_or_else(|_| panic!("{what} not done"))
                .unwrap(),
        );
    }
    done
}

/// Counts per `BUCKET` after `from`, printed one line per bucket.
fn histogram(title: &str, from: Instant, times: &[Instant]) -> Vec<usize> {
    let mut buckets = vec![0usize; 1];
    for t in times {
        let i = (t.saturating_duration_since(from).as_millis() / BUCKET.as_millis()) as usize;
        if i >= buckets.len() {
            buckets.resize(i + 1, 0);
        }
        buckets[i] += 1;
    }
    println!("{title} (per {BUCKET:?} after SIGTERM):");
    for (i, n) in buckets.iter().enumerate() {
        let at = BUCKET.as_millis() * i as u128;
        println!("  {at:>5} ms {n:>5} {}", "#".repeat(n.div_ceil(10)));
    }
    buckets
}

/// Asserts the times are spread over most of the window, not bunched.
fn assert_spread(what: &str, buckets: &[usize], times: &[Instant]) {
    let first = times.iter().min().unwrap();
    let last = times.iter().max().unwrap();
    let span = *last - *first;
    assert!(
        span >= SPREAD.mul_f64(0.75),
        "{what} span only {span:?} of the {SPREAD:?} window"
    );
    // A third at most in one bucket: all at once would be most of them;
    // on a loaded machine the client sees some closes late and together.
    let most = *buckets.iter().max().unwrap();
    assert!(
        most * 3 <= times.len(),
        "{what}: {most} of {} in one {BUCKET:?} bucket",
        times.len()
    );
}

// Longer than 80 lines on purpose: one scenario read top to bottom, each
// step next to what it checks.
/// Two gateways, 2,000 reading sockets (1,600 on the one that drains) in 20
/// rooms, and one sender per room using the client library's
/// resend-until-acked, all through a SIGTERM of gateway 0: every send is
/// stored once, in order; every reader sees every seq once, in order;
/// every socket of gateway 0 is closed with 1012 and rejoins on gateway 1,
/// and those reconnects spread over the window instead of one instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_gateways_sockets_reconnect_spread_over_the_window_and_nothing_is_lost() {
    let options = ClusterOptions::new(2, 1)
        .gateway_env(
            "CHAT_GATEWAY_DRAIN_DELAY_MS",
            &DRAIN_DELAY.as_millis().to_string(),
        )
        .gateway_env(
            "CHAT_GATEWAY_DRAIN_SPREAD_MS",
            &SPREAD.as_millis().to_string(),
        );
    let mut cluster = Cluster::start(options).await;
    let watchers = ON_DRAINED + ON_OTHER;
    for room in 0..ROOMS {
        let mut members: Vec<String> = (room..watchers)
            .step_by(ROOMS)
            .map(|i| format!("w{i}"))
            .collect();
        members.push(format!("s{room}"));
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        cluster.create_room(&format!("r{room}"), &members).await;
    }

    // The readers, 64 connecting at a time.
    let (finals_tx, finals) = watch::channel(None);
    let opening = Arc::new(Semaphore::new(64));
    let joined = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let readers: Vec<_> = (0..watchers)
        .map(|i| {
            let gateway = usize::from(i >= ON_DRAINED);
            tokio::spawn(watch_room(
                cluster.gateway(gateway).ws_url(),
                cluster.gateway(1).ws_url(),
                cluster.token(&format!("w{i}")),
                i % ROOMS,
                finals.clone(),
                Arc::clone(&opening),
                Arc::clone(&joined),
            ))
        })
        .collect();
    wait_for("every reader to join", Duration::from_secs(40), || async {
        (joined.load(Ordering::Relaxed) == watchers).then_some(())
    })
    .await;
    println!("{watchers} readers joined in {:?}", started.elapsed());

    // One sender per room, starting on gateway 0, pipelining its sends.
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..ROOMS)
        .map(|room| {
            let urls = [cluster.gateway(0).ws_url(), cluster.gateway(1).ws_url()];
            let options =
                ClientOptions::new(urls, cluster.token(&format!("s{room}")), Encoding::Proto);
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let (client, _messages) = Client::connect(options);
                let mut sent = Vec::new();
                let mut acks = Vec::new();
                let mut every = tokio::time::interval(SEND_EVERY);
                while !stop.load(Ordering::Relaxed) {
                    every.tick().await;
                    let id = format!("s{room}-{:04}", sent.len());
                    acks.push(client.submit(&format!("r{room}"), &id, "through the drain"));
                    sent.push(id);
                }
                for ack in futures::future::join_all(acks).await {
                    ack.expect("every send acked in the end");
                }
                sent
            })
        })
        .collect();
    wait_for("every room's sender to be sending", STEP, || async {
        for room in 0..ROOMS {
            if cluster.stored(&format!("r{room}")).await.is_empty() {
                return None;
            }
        }
        Some(())
    })
    .await;

    let terminated = Instant::now();
    cluster.gateways[0].process.sigterm();
    wait_for("gateway 0 to start draining", STEP, || async {
        let ready = reqwest::get(cluster.gateway(0).url("/readyz")).await;
        ready
            .ok()
            .filter(|r| r.status().as_u16() == 503)
            .map(|_| ())
    })
    .await;
    match open(&cluster.gateway(0).ws_url(), &cluster.token("w0")).await {
        Err(ClientError::Refused(503)) => {}
        other => panic!(
            "a draining gateway must refuse new sockets: {:?}",
            other.map(|_| ())
        ),
    }
    let ready = reqwest::get(cluster.gateway(0).url("/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503, "not ready while draining");
    // The gateway's own bound (drain_timeout_ms, 10 s by default, for the
    // answers; 2 s for the close handshakes) and the exit, on a busy machine.
    let limit = DRAIN_DELAY + SPREAD + Duration::from_secs(10 + 2 + 5);
    let gateway = &mut cluster.gateways[0].process;
    wait_for("gateway 0 to drain and exit", limit, || {
        let running = gateway.is_running();
        async move { (!running).then_some(()) }
    })
    .await;
    let drained = terminated.elapsed();
    // Stays: the senders keep going on the other gateway a while after the drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = joined_all("sender", senders).await;

    // Every send stored once, in the order sent; the readers see all of it.
    let mut finals = Vec::new();
    for (room, sent) in sent.iter().enumerate() {
        let stored = cluster.stored(&format!("r{room}")).await;
        let ids: Vec<&String> = stored.iter().map(|(_, _, id, _)| id).collect();
        assert_eq!(
            ids,
            sent.iter().collect::<Vec<_>>(),
            "room r{room}: stored once each, in order"
        );
        finals.push(stored.len() as u64);
    }
    finals_tx.send_replace(Some(Arc::new(finals.clone())));
    let seen = joined_all("reader", readers).await;
    let mut closes = Vec::new();
    let mut rejoins = Vec::new();
    for (i, w) in seen.iter().enumerate() {
        assert_eq!(w.problem, None, "reader w{i}");
        assert_eq!(w.last, finals[w.room], "reader w{i} saw the whole room");
        let codes: Vec<u16> = w.closes.iter().map(|(code, _)| *code).collect();
        if i < ON_DRAINED {
            assert_eq!(codes, [1012], "reader w{i} on the drained gateway");
            closes.push(w.closes[0].1);
            rejoins.push(w.rejoined[0]);
        } else {
            assert!(
                codes.is_empty(),
                "reader w{i} on the other gateway: {codes:?}"
            );
        }
    }
    let messages: u64 = finals.iter().sum();
    println!("{messages} messages stored; gateway 0 exited {drained:?} after SIGTERM");
    let closed = histogram("closes (1012)", terminated, &closes);
    histogram("rejoins on gateway 1", terminated, &rejoins);
    let first = closes.iter().min().unwrap().duration_since(terminated);
    assert!(
        first >= DRAIN_DELAY,
        "first close {first:?} after SIGTERM, before the drain delay"
    );
    assert_spread("closes", &closed, &closes);
    // The rejoins follow the closes, as fast as this test's own clients
    // (2,000 sockets in one process, sharing two cores with the servers)
    // get to them: printed, and checked for their span only, since a busy
    // machine bunches them after the fact.
    let span = *rejoins.iter().max().unwrap() - *rejoins.iter().min().unwrap();
    assert!(
        span >= SPREAD.mul_f64(0.75),
        "rejoins span only {span:?} of the {SPREAD:?} window"
    );
}
