//! The worker's lanes: a busy room (a flood, a slow transaction) delays only
//! its own lane; sends held past `ack_wait` are kept alive rather than
//! redelivered; a backlog is stored in full batches.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use chat_client::{Reader, Writer};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::{codec::Encoding, subjects, RoomId};
use chat_tests::{envelope, wait_for, Cluster, ClusterOptions, Frames, Role, Session, STEP};
use tokio::{sync::Semaphore, task::JoinHandle, time::Instant};

/// A room named `hot` and another whose sends a worker stores on a
/// different lane.
fn rooms_on_different_lanes() -> (String, String) {
    let partitions = chat_config::StreamConfig::default().partitions;
    let lane = |room: &str| chat_worker::lanes::lane_of(&RoomId::parse(room).unwrap(), partitions);
    let quiet = (0..)
        .map(|n| format!("quiet{n}"))
        .find(|room| lane(room) != lane("hot"))
        .unwrap();
    ("hot".into(), quiet)
}

/// Send-to-ack latency of `count` sends, one after another.
async fn latencies(session: &mut Session, room: &str, tag: &str, count: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(count);
    for n in 0..count {
        let started = Instant::now();
        session
            .send_and_wait(room, &format!("{tag}-{n}"), "ping")
            .await
            .unwrap_or_else(|e| panic!("{tag}-{n} not acked: {e:?}"));
        took.push(started.elapsed());
    }
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Senders that each keep `window` sends in flight to one room, as fast as
/// acks come back, until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    senders: Vec<JoinHandle<()>>,
}

impl Flood {
    async fn start(cluster: &Cluster, room: &str, users: &[&str], window: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        for user in users {
            let (writer, reader) = cluster
                .gateway(0)
                .connect_with(user, Encoding::Proto)
                .await
                .into_parts();
            senders.push(tokio::spawn(flood_sender(
                writer,
                reader,
                format!("{room}/{user}"),
                room.to_owned(),
                window,
                Arc::clone(&stop),
                Arc::clone(&acked),
            )));
        }
        Self {
            stop,
            acked,
            senders,
        }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops sending, waits for every send in flight to be acked, and
    /// returns how many were.
    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for sender in self.senders {
            sender.await.expect("flood sender panicked");
        }
        self.acked.load(Ordering::Relaxed)
    }
}

async fn flood_sender(
    mut writer: Writer,
    mut reader: Reader,
    tag: String,
    room: String,
    window: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) {
    let permits = Arc::new(Semaphore::new(window));
    let mut acks = {
        let permits = Arc::clone(&permits);
        tokio::spawn(async move {
            loop {
                match reader.next_frame().await.kind {
                    Some(Kind::Ack(_)) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                        permits.add_permits(1);
                    }
                    Some(Kind::Error(e)) => panic!("flood send refused: {e:?}"),
                    _ => {}
                }
            }
        })
    };
    // A window slot, or the ack reader's failure (it never ends otherwise).
    macro_rules! or_reader_failed {
        ($wait:expr) => {
            tokio::select! {
                permit = $wait => permit.unwrap(),
                failed = &mut acks => panic!("flood ack reader stopped: {failed:?}"),
            }
        };
    }
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        or_reader_failed!(permits.acquire()).forget();
        writer
            .send(&room, &format!("{tag}-{n}"), "flood")
            .await
            .unwrap();
        n += 1;
    }
    let _all_back = or_reader_failed!(permits.acquire_many(window as u32));
    acks.abort();
}

/// One room is flooded by pipelining senders while another room's user
/// sends one message at a time. The quiet room's sends are stored on their
/// own lane, so the flood hardly changes their latency. (The old dispatcher
/// waited for room in the flooded lane's channel, two batches long, and so
/// stalled every room behind it: here at least 160 ms a send.) Medians: the
/// tail of a two-core box running other tests measures the box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_room_does_not_slow_down_sends_to_other_rooms() {
    const SAMPLES: usize = 200;
    const WINDOW: usize = 64;
    let options = ClusterOptions::new(1, 1)
        .env(Role::Workers, "CHAT_WORKER_BATCH__CONCURRENCY", "2")
        .env(Role::Workers, "CHAT_WORKER_BATCH__MAX_MESSAGES", "8");
    let cluster = Cluster::start(options).await;
    let (hot, quiet) = rooms_on_different_lanes();
    let flooders = ["f0", "f1", "f2", "f3"];
    cluster.create_room(&hot, &flooders).await;
    cluster.create_room(&quiet, &["q"]).await;
    // Storing in the hot room is slow (10 ms a row, as behind a contended
    // lock): the flood then piles up in its lane, not on the box's two
    // cores, which every room shares whatever the worker does.
    cluster
        .postgres
        .client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS \
               $$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$; \
             CREATE TRIGGER slow_hot_room BEFORE INSERT ON messages FOR EACH ROW \
               WHEN (NEW.room_id = '{hot}') EXECUTE FUNCTION slow_row();"
        ))
        .await
        .unwrap();
    let mut q = cluster.gateway(0).connect("q").await;

    latencies(&mut q, &quiet, "warm", 20).await;
    let idle = median(latencies(&mut q, &quiet, "idle", SAMPLES).await);

    let flood = Flood::start(&cluster, &hot, &flooders, WINDOW).await;
    wait_for("the flood to be under way", STEP, || async {
        (flood.acked() >= 500).then_some(())
    })
    .await;
    let before = flood.acked();
    let loaded = median(latencies(&mut q, &quiet, "loaded", SAMPLES).await);
    let during = flood.acked() - before;
    let flooded = flood.stop().await;

    let limit = idle * 2 + Duration::from_millis(40);
    println!(
        "quiet room median: idle {idle:?}, during the flood {loaded:?} (limit {limit:?}); \
         flood: {during} sends acked meanwhile, {flooded} in all"
    );
    assert!(
        loaded <= limit,
        "median {loaded:?} during the flood exceeds {limit:?}"
    );
    assert_eq!(cluster.stored(&hot).await.len(), flooded);
}

/// A room's transaction is stuck (its row is locked) for longer than
/// `ack_wait` while its sends pile up in the lane. Other rooms carry on; the
/// stuck sends are kept alive with in-progress acks, so JetStream redelivers
/// none of them, and once the lock goes they are stored once each, in the
/// order they were published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_held_past_ack_wait_are_kept_alive_and_other_rooms_carry_on() {
    const SENDS: usize = 100;
    const ACK_WAIT: Duration = Duration::from_secs(2);
    let options = ClusterOptions::new(1, 1)
        .env(
            Role::Workers,
            "CHAT_WORKER_BATCH__ACK_WAIT_MS",
            &ACK_WAIT.as_millis().to_string(),
        )
        .env(Role::Workers, "CHAT_WORKER_BATCH__MAX_MESSAGES", "16");
    let cluster = Cluster::start(options).await;
    let (hot, quiet) = rooms_on_different_lanes();
    cluster.create_room(&hot, &["h"]).await;
    cluster.create_room(&quiet, &["q"]).await;
    let js = cluster.jetstream().await;
    let mut q = cluster.gateway(0).connect("q").await;

    let pg = cluster.postgres.client().await;
    pg.batch_execute(&format!(
        "BEGIN; SELECT 1 FROM rooms WHERE id = '{hot}' FOR UPDATE"
    ))
    .await
    .unwrap();
    // Published one after another, so this is the stream's order.
    let sent: Vec<String> = (0..SENDS).map(|n| format!("h{n}")).collect();
    for id in &sent {
        js.publish_ingest(&hot, envelope(&hot, "h", id, "stuck"))
            .await;
    }
    js.wait_until_workers_hold(SENDS).await;
    for n in 0..5 {
        q.send_and_wait(&quiet, &format!("q{n}"), "meanwhile")
            .await
            .expect("another room's send is stored while the hot room is stuck");
    }
    // Stays: waits out the ack window to prove nothing is redelivered, long
    // enough for JetStream to redeliver anything not kept alive.
    tokio::time::sleep(ACK_WAIT * 3).await;
    let (_, held, redelivered) = js.consumer_state().await;
    assert_eq!((held, redelivered), (SENDS, 0), "(held, redelivered)");
    pg.batch_execute("COMMIT").await.unwrap();

    js.wait_until_drained().await;
    let stored: Vec<String> = cluster
        .stored(&hot)
        .await
        .into_iter()
        .map(|(_, _, id, _)| id)
        .collect();
    assert_eq!(stored, sent, "stored once each, in stream order");
    let worker = cluster.worker(0).metrics().await;
    assert_eq!(worker.total("chat_worker_redeliveries_total", &[]), 0.0);
    assert_eq!(
        worker.total("chat_worker_envelopes_total", &[("outcome", "duplicate")]),
        0.0
    );
    assert!(worker.total("chat_worker_in_progress_acks_total", &[]) >= SENDS as f64);
}

/// Sends queued while no worker runs are stored, once one starts, in full
/// batches: about ceil(N / max_messages) transactions holding N sends in
/// all, none larger than max_messages. The first pulls may hand over part
/// of a batch (what has arrived when the worker looks), so a transaction
/// or two more is allowed; storing send by send would take N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_stored_in_full_batches() {
    const SENDS: usize = 50;
    const MAX: usize = 16;
    let options = ClusterOptions::new(1, 1).env(
        Role::Workers,
        "CHAT_WORKER_BATCH__MAX_MESSAGES",
        &MAX.to_string(),
    );
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("backlog", &["b"]).await;
    let js = cluster.jetstream().await;
    let mut b = cluster.gateway(0).connect("b").await;

    cluster.workers[0].process.terminate();
    for n in 0..SENDS {
        b.writer
            .send("backlog", &format!("m{n}"), "queued")
            .await
            .unwrap();
    }
    wait_for("the backlog to be queued", STEP, || async {
        (js.consumer_state().await.0 == SENDS as u64).then_some(())
    })
    .await;
    let worker = cluster.start_worker().await;
    let (_, acks) = b.collect(0, SENDS, None, STEP).await;
    assert_eq!(acks.len(), SENDS);

    // Each batch is recorded before its sends are acked.
    let metrics = cluster.worker(worker).metrics().await;
    let batches = metrics.total("chat_worker_batch_size", &[]);
    let full = SENDS.div_ceil(MAX) as f64;
    assert!(
        (full..=full + 2.0).contains(&batches),
        "{batches} batches for {SENDS} sends of at most {MAX} each"
    );
    assert_eq!(
        metrics.at_most("chat_worker_batch_size", &[], MAX as f64),
        batches,
        "no batch larger than {MAX}"
    );
    assert!(
        metrics.at_most("chat_worker_batch_size", &[], (MAX / 2) as f64) < batches,
        "some batch holds more than {}",
        MAX / 2
    );
    assert_eq!(
        metrics.total("chat_worker_batch_size_sum", &[]),
        SENDS as f64,
        "sends in them"
    );
    assert_eq!(cluster.stored("backlog").await.len(), SENDS);
}

/// A bulk send (a dead letter replayed, say) waits while chat sends are
/// queued: published before a backlog of 3,000 sends reached the worker,
/// it is pulled only once the ingest stream has none waiting, so at most
/// what the workers already held (`max_ack_pending`) is stored after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_sends_wait_until_no_chat_send_is_queued() {
    const BACKLOG: usize = 3000;
    const HELD: usize = 256;
    let options = ClusterOptions::new(1, 1)
        .env(Role::Workers, "CHAT_WORKER_BATCH__MAX_ACK_PENDING", "256")
        .env(Role::Workers, "CHAT_WORKER_BATCH__MAX_MESSAGES", "64");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("chatty", &["ada"]).await;
    cluster.create_room("archive", &["ada"]).await;
    cluster.workers[0].process.terminate();
    let js = cluster.jetstream().await;
    js.publish(
        "chat.bulk.archive",
        envelope("archive", "ada", "bulk-1", "replayed").into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let chatty = subjects::ingest_one(&RoomId::parse("chatty").unwrap(), js.partitions);
    for n in 0..BACKLOG {
        let payload = envelope("chatty", "ada", &format!("c{n}"), "live");
        js.publish(chatty.clone(), payload.into()).await.unwrap();
    }
    js.publish(chatty, envelope("chatty", "ada", "last", "live").into())
        .await
        .unwrap()
        .await
        .unwrap();
    cluster.start_worker().await;
    wait_for("the bulk send stored", Duration::from_secs(30), || async {
        (!cluster.stored("archive").await.is_empty()).then_some(())
    })
    .await;
    js.wait_until_drained().await;
    let after: i64 = cluster
        .postgres
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM messages m, messages b \
             WHERE b.room_id = 'archive' AND m.room_id = 'chatty' AND m.created_at > b.created_at",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    println!(
        "{after} of {} chat sends stored after the bulk send",
        BACKLOG + 1
    );
    assert!(
        after as usize <= HELD,
        "{after} chat sends were stored after the bulk one: it went ahead of the queue"
    );
    assert_eq!(cluster.stored("chatty").await.len(), BACKLOG + 1);
}
