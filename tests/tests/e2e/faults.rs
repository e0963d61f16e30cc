//! The fault suite: one process killed, paused, crashed or cut off at a
//! time, under steady traffic in several rooms from clients on two
//! gateways, on a 3-node NATS cluster with every stream at 3 replicas (the
//! cluster's own faults are in `nats_cluster.rs`). The checker (`chat_tests::checker`) records every attempt, ack
//! and delivery and fails the test on anything lost, duplicated, made up or
//! out of seq; each test prints its row of the suite's table (and appends it
//! to `$FAULT_TABLE`, which scripts/test.sh prints at the end).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chat_client::{Client, ClientEncoding, ClientOptions};
use chat_proto::{
    internal::{Receipt, Receipts},
    v1::{client_frame, server_frame::Kind, History, Message},
};
use chat_protocol::{now_ms, subjects};
use chat_tests::STEP;
use chat_tests::{
    assert_gap_free,
    checker::{Traffic, TrafficOptions},
    entries,
    event_state::assert_events_applied,
    netns::Namespace,
    prometheus::Prometheus,
    wait_for, Cluster, ClusterOptions, Frames, Role, ADMIN_TOKEN,
};
use prost::Message as _;

/// How long a dependency stays down.
const OUTAGE: Duration = Duration::from_secs(3);
/// Acks to see before a fault, and after it, before the traffic stops.
const ACKS: usize = 60;

async fn cluster(workers: usize) -> Cluster {
    Cluster::start(ClusterOptions::new(2, workers).nats_cluster()).await
}

async fn start(cluster: &Cluster, tag: &str) -> Traffic {
    start_with(cluster, tag, TrafficOptions::default()).await
}

async fn start_with(cluster: &Cluster, tag: &str, options: TrafficOptions) -> Traffic {
    let traffic = Traffic::start(cluster, tag, options).await;
    traffic.until_acked(ACKS, STEP).await;
    traffic
}

/// Waits for the ack of `ACKS` more sends, then judges.
async fn finish(traffic: Traffic, cluster: &Cluster, fault: &str) {
    traffic.until_acked(ACKS, STEP * 2).await;
    traffic.finish(cluster, fault).await.check();
}

/// A worker whose failpoint `point` aborts it (after 40 batches) dies; the
/// other takes over its partitions and sends, then a replacement starts.
/// Returns the cluster and the rooms of the traffic, judged already.
async fn worker_dies_at(
    point: &str,
    fault: &str,
    options: TrafficOptions,
) -> (Cluster, Vec<String>) {
    let mut cluster = cluster(0).await;
    let doomed = cluster
        .start_worker_with(&[("FAILPOINTS", &format!("{point}=40*off->return"))])
        .await;
    // Alone at first, the doomed worker is pinned to the traffic's
    // partitions; the other then waits as their standby.
    let mut traffic = Traffic::start(&cluster, "w", options).await;
    traffic.until_acked(5, STEP).await;
    cluster.start_worker().await;
    wait_for("the worker to die at its failpoint", STEP * 2, || {
        let dead = !cluster.workers[doomed].process.is_running();
        async move { dead.then_some(()) }
    })
    .await;
    traffic.fault();
    traffic.until_acked(ACKS, STEP).await;
    cluster.restart_worker(doomed).await;
    let rooms = traffic.rooms().to_vec();
    finish(traffic, &cluster, fault).await;
    (cluster, rooms)
}

/// Killed holding a pulled batch it had not stored: JetStream redelivers
/// it to the other worker once the ack wait runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch() {
    let options = TrafficOptions::default();
    worker_dies_at("worker-before-store", "worker killed mid-batch", options).await;
}

/// Killed after the commit, before the fan-out and the acks: the
/// redelivered sends are found stored, fanned out and acked with their seq.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_commit_and_fanout() {
    let options = TrafficOptions::default();
    worker_dies_at("worker-after-commit", "worker killed after commit", options).await;
}

/// The same while senders also edit and react: no event is lost or
/// applied twice, each message ends as its events say, and the Redis
/// window (rewritten by the redelivered events) is what Postgres holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_applying_edits_and_reactions() {
    let options = TrafficOptions {
        events: true,
        ..TrafficOptions::default()
    };
    let fault = "worker killed applying events";
    let (cluster, rooms) = worker_dies_at("worker-after-commit", fault, options).await;
    let events = assert_events_applied(&cluster, &rooms).await;
    assert!(events >= ACKS, "only {events} edits and reactions");
}

/// Killed after storing a batch of read marks, before answering and
/// acking it: JetStream redelivers the batch to the other worker, which
/// stores it again (harmlessly: a marker only moves up) and answers. No
/// answered mark is lost, and the unread count shown is Postgres's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_of_read_marks() {
    let mut cluster = cluster(0).await;
    let point = "worker-marks-after-store=5*off->return";
    let doomed = cluster.start_worker_with(&[("FAILPOINTS", point)]).await;
    cluster.start_worker().await;
    cluster.create_room("marks", &["ann", "bob"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut ann = cluster.gateway(0).connect("ann").await;
    ann.join("marks").await;
    let chatting = ann.chat_steadily("marks", &stop);
    let mut bob = cluster.gateway(1).connect("bob").await;
    bob.join("marks").await;
    let (mut answered, mut asked, mut after_kill) = (0, 0, 0);
    let started = Instant::now();
    while after_kill < 20 {
        let (messages, _) = bob.collect_messages(2, STEP).await;
        asked = messages.last().unwrap().seq;
        let marker = bob.mark_read("marks", asked as i64).await.unwrap();
        assert!(marker.seq >= answered, "an answered mark was lost");
        answered = marker.seq;
        if !cluster.workers[doomed].process.is_running() {
            after_kill += 1;
        }
        assert!(started.elapsed() < STEP * 4, "the doomed worker never died");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(chatting.await.unwrap().iter().all(|(_, r)| r.is_ok()));
    let (marker, unread) = cluster.unread("marks", "bob").await;
    assert!(
        (answered..=asked).contains(&marker),
        "{marker} not in {answered}..={asked}"
    );
    assert_eq!(bob.listed("marks").await, (marker, unread));
    println!("fault: worker killed mid-batch of read marks: last answered {answered}, stored {marker}, unread {unread}");
}

/// Scheduled messages outlive the workers: the only worker is killed
/// before their time, and the next one dies right after storing them, before
/// its fan-out. Each is stored once, with its scheduled id, and a member
/// gets each once, in seq order (the lost fan-out found by the gateway's
/// probe of a quiet room).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_around_scheduled_messages() {
    let options = ClusterOptions::new(2, 1)
        .nats_cluster()
        .gateway_env("CHAT_GATEWAY_DELIVERY__IDLE_PROBE_MAX_MS", "2000");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("sched", &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut bob = cluster.gateway(1).connect("bob").await;
    bob.join("sched").await;
    let first_due = now_ms() + 4_000;
    let mut ids = Vec::new();
    for i in 0..20 {
        let ask = entries::scheduled("sched", &format!("s{i}"), &format!("#{i}"), first_due + i);
        match ann.ask(ask).await {
            Kind::Scheduled(s) => ids.push(s.id),
            other => panic!("expected scheduled, got {other:?}"),
        }
    }
    cluster.workers[0].process.kill();
    let point = "worker-scheduled-after-commit=return";
    let doomed = cluster.start_worker_with(&[("FAILPOINTS", point)]).await;
    wait_for("the worker to die after storing them", STEP * 2, || {
        let dead = !cluster.workers[doomed].process.is_running();
        async move { dead.then_some(()) }
    })
    .await;
    let died = now_ms();
    cluster.start_worker().await;
    let next_due = now_ms() + 1_000;
    for i in 20..30 {
        let ask = entries::scheduled("sched", &format!("s{i}"), &format!("#{i}"), next_due);
        match ann.ask(ask).await {
            Kind::Scheduled(s) => ids.push(s.id),
            other => panic!("expected scheduled, got {other:?}"),
        }
    }
    let (messages, _) = bob.collect_messages(30, STEP * 2).await;
    assert_gap_free(&messages, 30, "bob");
    let mut seen: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "each scheduled message once, with its id");
    assert_eq!(cluster.stored("sched").await.len(), 30, "each stored once");
    let room = chat_protocol::RoomId::parse("sched").unwrap();
    let ann_id = chat_protocol::UserId::parse("ann").unwrap();
    let pending = cluster.store().pending_scheduled(&room, &ann_id).await;
    assert!(pending.unwrap().is_empty(), "none left pending");
    println!(
        "fault: workers killed around scheduled messages: 30 sent once, the first 20 {} ms after their time",
        died - first_due
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_restarted() {
    let mut cluster = cluster(1).await;
    let mut traffic = start(&cluster, "n").await;
    traffic.fault();
    cluster.nats.stop();
    // The outage lasts a set time: that is the fault under test.
    tokio::time::sleep(OUTAGE).await;
    cluster.nats.restart().await;
    traffic.healed();
    finish(traffic, &cluster, "nats-server killed, restarted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_and_restarted() {
    let mut cluster = cluster(1).await;
    let mut traffic = start(&cluster, "p").await;
    traffic.fault();
    cluster.postgres.crash();
    // The outage lasts a set time: that is the fault under test.
    tokio::time::sleep(OUTAGE).await;
    cluster.postgres.restart().await;
    traffic.healed();
    finish(traffic, &cluster, "postgres crashed, restarted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty() {
    let mut cluster = cluster(1).await;
    let mut traffic = start(&cluster, "r").await;
    traffic.fault();
    cluster.redis.stop();
    cluster.redis.restart().await;
    traffic.healed();
    finish(traffic, &cluster, "redis restarted empty").await;
}

/// Redis is a cache: while it is down sends still commit and are acked,
/// and a joining client's history comes from Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down() {
    let mut cluster = cluster(1).await;
    let mut traffic = start(&cluster, "d").await;
    traffic.fault();
    cluster.redis.stop();
    traffic.until_acked(ACKS, STEP).await;
    let options = ClientOptions::new(
        [cluster.gateway(1).ws_url()],
        cluster.token("d0u3"),
        ClientEncoding::Proto,
    );
    let (late, mut history) = Client::connect(options);
    late.join("d0", Some(0))
        .await
        .expect("join while redis is down");
    for seq in 1..=20 {
        let m = tokio::time::timeout(STEP, history.recv())
            .await
            .expect("history while redis is down")
            .expect("a message");
        assert_eq!(m.seq, seq);
    }
    late.close();
    cluster.redis.restart().await;
    traffic.healed();
    finish(traffic, &cluster, "redis down").await;
}

/// Redis hangs (SIGSTOP): its connections stay open and silent, so every
/// call waits out its timeout instead of failing at once. Sends still
/// commit and are acked meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_hung() {
    let cluster = cluster(1).await;
    let mut traffic = start(&cluster, "h").await;
    traffic.fault();
    cluster.redis.pause();
    traffic.until_acked(ACKS, STEP).await;
    cluster.redis.resume();
    traffic.healed();
    finish(traffic, &cluster, "redis hung").await;
}

/// Redis drops every packet from one gateway (a blackholed route, as in a
/// partition). Each call first waits out `redis.timeout_ms`; after
/// `redis.breaker_failures` such calls in a row the breaker opens and calls
/// fail at once (membership comes from Postgres instead), with one probe a
/// `breaker_open_ms` (1 s here), until a probe gets through after the heal.
/// Sends through that gateway go on throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_blackholed() {
    let ns = Namespace::create();
    let options = ClusterOptions::new(1, 1)
        .nats_cluster()
        .reachable_from_namespaces()
        .gateway_env("CHAT_GATEWAY_REDIS__BREAKER_OPEN_MS", "1000");
    let mut cluster = Cluster::start(options).await;
    let cut_off = cluster.start_gateway_in(&ns).await;
    let mut traffic = start(&cluster, "k").await;
    let gateway = cluster.gateway(cut_off);
    let count = |name: &'static str| async move { gateway.metric(name, &[]).await };
    traffic.fault();
    ns.cut_redis();
    wait_for("the breaker to open", STEP, || async {
        (count("chat_redis_breaker_trips_total").await >= 1.0).then_some(())
    })
    .await;
    let failed = count("chat_redis_failed_calls_total").await;
    let short = count("chat_redis_short_circuited_total").await;
    // History pages ask Redis first: 20 of them through the cut-off gateway.
    let room = traffic.rooms()[0].clone();
    let mut reader = gateway.connect(&format!("{room}u1")).await;
    for _ in 0..20 {
        let page = reader
            .ask(client_frame::Kind::History(History {
                room: room.clone(),
                ..History::default()
            }))
            .await;
        assert!(matches!(page, Kind::HistoryPage(_)), "{page:?}");
    }
    let failed = count("chat_redis_failed_calls_total").await - failed;
    let short = count("chat_redis_short_circuited_total").await - short;
    assert!(short >= 10.0, "calls failed at once while open: {short}");
    // The calls in flight when it opened, and a probe a second.
    assert!(
        failed <= 20.0,
        "only probes reached the blackholed Redis once the breaker was open: {failed} slow calls"
    );
    ns.heal_redis();
    wait_for("the breaker to close", STEP, || async {
        (count("chat_redis_breaker_open").await == 0.0).then_some(())
    })
    .await;
    traffic.healed();
    finish(traffic, &cluster, "redis blackholed").await;
}

/// A transaction hangs holding a room's row: the worker applying a member
/// command to a traffic room freezes (a failpoint sleeps two minutes) right
/// after locking it, so every send to the room waits on that lock. Postgres
/// ends the frozen session after `idle_in_transaction_timeout_ms` (1 s
/// here), the lock goes with it, and the sends are stored; without that
/// bound they would wait out the two minutes. The command (adding a member
/// already there: no entry joins the traffic's), cut with its transaction,
/// is redelivered to the other worker and answered from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_transaction_hung_holding_a_room() {
    const IDLE: (&str, &str) = (
        "CHAT_WORKER_POSTGRES__IDLE_IN_TRANSACTION_TIMEOUT_MS",
        "1000",
    );
    let mut cluster = cluster(0).await;
    let frozen = cluster
        .start_worker_with(&[
            ("FAILPOINTS", "store-command-room-locked=1*return(120000)"),
            IDLE,
        ])
        .await;
    let mut traffic = start(&cluster, "t").await;
    let room = traffic.rooms()[0].clone();
    let path = format!("/v1/rooms/{room}/members/{room}u1");
    let gateway = cluster.gateway(0).url("");
    traffic.fault();
    // Answered only once applied, so it runs beside the traffic.
    let add = tokio::spawn(async move {
        reqwest::Client::new()
            .put(format!("{gateway}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
    });
    wait_for("the worker to freeze holding the room", STEP, || {
        let log = cluster.workers[frozen].process.log();
        async move { log.contains("holding the room's row").then_some(()) }
    })
    .await;
    cluster.start_worker_with(&[IDLE]).await;
    traffic.until_acked(ACKS, STEP).await;
    traffic.healed();
    finish(traffic, &cluster, "postgres transaction hung").await;
    let answer = add.await.unwrap().expect("the gateway answers");
    assert!(
        answer.status().is_success(),
        "the cut command was applied by the other worker: {}",
        answer.status()
    );
}

/// The clients of the killed gateway resume on the other from their last
/// seqs; the gateway comes back later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_clients_on_it() {
    let mut cluster = cluster(1).await;
    let mut traffic = start(&cluster, "g").await;
    traffic.fault();
    cluster.gateways[0].process.kill();
    traffic.until_acked(ACKS, STEP).await;
    cluster.restart_gateway(0).await;
    traffic.healed();
    finish(traffic, &cluster, "gateway killed").await;
}

/// A gateway hangs (SIGSTOP) while NATS has more for it than its socket
/// holds: NATS cuts it off as a slow consumer (deploy/nats.conf's
/// write_deadline), and what it missed meanwhile is filled from the store
/// once it runs again, with no gap for its clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_paused_until_nats_cuts_it_off() {
    let cluster = cluster(1).await;
    let mut traffic = start(&cluster, "s").await;
    let nats = cluster.nats.client().await;
    traffic.fault();
    cluster.gateways[0].process.pause();
    // Receipts with tickets the gateway never handed out: ignored when it
    // reads them, but 32 MiB of them fill its socket.
    let receipt = Receipts {
        receipts: vec![Receipt {
            ticket: 0,
            message: Some(Message {
                body: "x".repeat(64 * 1024),
                ..Message::default()
            }),
            ..Receipt::default()
        }],
    }
    .encode_to_vec();
    let subject = subjects::receipts(&cluster.gateway(0).id());
    for _ in 0..512 {
        nats.publish(subject.clone(), receipt.clone().into())
            .await
            .unwrap();
    }
    nats.flush().await.unwrap();
    // The outage lasts a set time: that is the fault under test.
    tokio::time::sleep(OUTAGE * 2).await;
    cluster.gateways[0].process.resume();
    traffic.healed();
    finish(traffic, &cluster, "gateway paused past slow consumer").await;
    let nats_log = cluster.nats.log();
    assert!(
        nats_log.contains("Slow Consumer Detected"),
        "NATS cut the paused gateway off as a slow consumer:\n{nats_log}"
    );
    let log = cluster.gateways[0].process.log();
    assert!(
        log.matches("nats connected").count() >= 2,
        "the gateway reconnected after it was cut off:\n{log}"
    );
}

/// Postgres down longer than the worker's whole retry budget: the sends
/// go to the dead-letter stream unacked; their senders resend them (same
/// client_msg_id) after the ack timeout, and the resends are stored and
/// acked once Postgres is back, not dropped as JetStream duplicates. A real
/// Prometheus scrapes the cluster with the project's alert rules: the
/// outage lasts until the dead-letter and consumer-lag alerts have gone
/// pending, then firing (a flood of sends to a room of its own keeps more
/// than 100 waiting, as a busy system would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_past_the_retry_budget() {
    let options = ClusterOptions::new(2, 1)
        .nats_cluster()
        .env(Role::Workers, "CHAT_WORKER_RETRY__MAX_ATTEMPTS", "4")
        .env(Role::Workers, "CHAT_WORKER_RETRY__BASE_DELAY_MS", "1000")
        .env(Role::Workers, "CHAT_WORKER_RETRY__MAX_DELAY_MS", "2000")
        .gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "2000");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("flood", &["flo"]).await;
    let prometheus = Prometheus::start(&cluster).await;
    let mut traffic = start(&cluster, "b").await;
    traffic.fault();
    cluster.postgres.crash();
    let flooding = Arc::new(AtomicBool::new(true));
    let flood = {
        let (js, flooding) = (cluster.jetstream().await, Arc::clone(&flooding));
        tokio::spawn(async move {
            let mut n = 0;
            while flooding.load(Ordering::Relaxed) {
                let payload = chat_tests::envelope("flood", "flo", &format!("flood-{n}"), "x");
                js.publish_ingest("flood", payload).await;
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let within = Duration::from_secs(60);
    tokio::join!(
        prometheus.wait_pending_then_firing("ChatDeadLetters", within),
        prometheus.wait_pending_then_firing("ChatConsumerLagGrowing", within),
    );
    flooding.store(false, Ordering::Relaxed);
    flood.await.unwrap();
    cluster.postgres.restart().await;
    traffic.healed();
    finish(traffic, &cluster, "postgres down past retry budget").await;
    let js = cluster.jetstream().await;
    assert!(
        !js.dead_letters().await.is_empty(),
        "the outage outlasted the retry budget: sends were dead-lettered"
    );
}

/// One gateway runs in its own network namespace and its link to NATS is
/// cut (packets dropped, as in a partition), then restored. Its clients
/// get `unavailable` for their sends meanwhile (the client library resends)
/// and their rooms' messages from the store; after the heal it reconnects
/// and resynchronises, with nothing lost and no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_cut_off_from_nats_then_healed() {
    let ns = Namespace::create();
    let options = ClusterOptions::new(1, 1)
        .nats_cluster()
        .reachable_from_namespaces();
    let mut cluster = Cluster::start(options).await;
    let cut_off = cluster.start_gateway_in(&ns).await;
    let mut traffic = start(&cluster, "x").await;
    traffic.fault();
    ns.cut_nats();
    // The outage lasts a set time: that is the fault under test.
    tokio::time::sleep(OUTAGE * 2).await;
    ns.heal_nats();
    traffic.healed();
    finish(traffic, &cluster, "gateway partitioned from NATS").await;
    let log = cluster.gateways[cut_off].process.log();
    assert!(
        log.matches("nats connected").count() >= 2,
        "the gateway lost NATS and reconnected after the heal:\n{log}"
    );
}

/// Faults the randomized run picks from.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillWorker,
    KillGateway,
    PauseGateway,
    KillNats,
    CrashPostgres,
    RestartRedis,
    StopRedis,
}

const FAULTS: [Fault; 7] = [
    Fault::KillWorker,
    Fault::KillGateway,
    Fault::PauseGateway,
    Fault::KillNats,
    Fault::CrashPostgres,
    Fault::RestartRedis,
    Fault::StopRedis,
];

/// A longer run: `$FAULT_ROUNDS` faults (default 30), each chosen and timed
/// from `$FAULT_SEED` (printed; random if unset) so that a failure can be
/// replayed, one after another under the same traffic, judged once at the
/// end. Run by scripts/faults.sh; not part of CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long; run by scripts/faults.sh"]
async fn random_faults() {
    use rand::{Rng, SeedableRng};
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let rounds: usize = std::env::var("FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    println!("FAULT_SEED={seed} FAULT_ROUNDS={rounds}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = cluster(2).await;
    let mut traffic = start(&cluster, "z").await;
    let mut schedule = Vec::new();
    for round in 0..rounds {
        let fault = FAULTS[rng.random_range(0..FAULTS.len())];
        let before = Duration::from_millis(rng.random_range(200..2000));
        let outage = Duration::from_millis(rng.random_range(300..4000));
        let victim = rng.random_range(0..2);
        println!("round {round}: {fault:?} of #{victim} after {before:?}, for {outage:?}");
        schedule.push(format!("{fault:?}"));
        // Random quiet time before the fault: part of the schedule.
        tokio::time::sleep(before).await;
        traffic.fault();
        match fault {
            Fault::KillWorker => {
                cluster.workers[victim].process.kill();
                // The outage lasts a set time: that is the fault under test.
                tokio::time::sleep(outage).await;
                cluster.restart_worker(victim).await;
            }
            Fault::KillGateway => {
                cluster.gateways[victim].process.kill();
                // The outage lasts a set time: that is the fault under test.
                tokio::time::sleep(outage).await;
                cluster.restart_gateway(victim).await;
            }
            Fault::PauseGateway => {
                cluster.gateways[victim].process.pause();
                // The outage lasts a set time: that is the fault under test.
                tokio::time::sleep(outage).await;
                cluster.gateways[victim].process.resume();
            }
            Fault::KillNats => {
                cluster.nats.stop();
                // The outage lasts a set time: that is the fault under test.
                tokio::time::sleep(outage).await;
                cluster.nats.restart().await;
            }
            Fault::CrashPostgres => {
                cluster.postgres.crash();
                // The outage lasts a set time: that is the fault under test.
                tokio::time::sleep(outage).await;
                cluster.postgres.restart().await;
            }
            Fault::RestartRedis => {
                cluster.redis.stop();
                cluster.redis.restart().await;
            }
            Fault::StopRedis => {
                cluster.redis.stop();
                // The outage lasts a set time: that is the fault under test.
                tokio::time::sleep(outage).await;
                cluster.redis.restart().await;
            }
        }
        traffic.healed();
    }
    let name = format!("random seed {seed}: {}", schedule.join(", "));
    finish(traffic, &cluster, &name).await;
}
