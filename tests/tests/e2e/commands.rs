//! Changes to rooms go through the workers as commands: committed once per
//! id, with their place in the room's sequence, the Redis membership entry
//! dropped at once, and on a stream of their own that a backlog of sends
//! cannot hold up.

use std::time::Duration;

use chat_proto::v1::server_frame::Kind;
use chat_protocol::{codec::Encoding, subjects, RoomId};
use chat_tests::{cluster::ADMIN_TOKEN, envelope, Cluster, ClusterOptions, Frames, STEP};
use futures::StreamExt;
use tokio::time::Instant;

async fn admin(cluster: &Cluster, method: reqwest::Method, path: &str, key: &str) -> u16 {
    reqwest::Client::new()
        .request(method, cluster.gateway(0).url(path))
        .bearer_auth(ADMIN_TOKEN)
        .header("Idempotency-Key", key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A member added twice with one idempotency key is added once: one
/// `member_joined` in the room's sequence, seen by the members in its
/// place. A join refused before the change (and cached as "no") is let in
/// right after it: the worker dropped the cached answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_member_is_an_event_in_the_sequence_applied_once() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("team", &["ada"]).await;
    let mut ada = cluster
        .gateway(0)
        .connect_with("ada", Encoding::Proto)
        .await;
    ada.join("team").await;
    let mut bob = cluster.gateway(1).connect("bob").await;
    let refused = bob.writer.join("team", None).await.unwrap();
    let reply = bob.next_frame().await;
    assert_eq!(reply.request_id, refused);
    assert!(matches!(reply.kind, Some(Kind::Error(e)) if e.code == "forbidden"));

    let path = "/v1/rooms/team/members/bob";
    assert_eq!(
        admin(&cluster, reqwest::Method::PUT, path, "add-bob").await,
        204
    );
    assert_eq!(
        admin(&cluster, reqwest::Method::PUT, path, "add-bob").await,
        204
    );

    let (seen, _) = ada.collect_messages(1, STEP).await;
    assert_eq!(
        (seen[0].seq, seen[0].kind.as_str(), seen[0].member.as_str()),
        (1, "member_joined", "bob")
    );
    assert_eq!(
        seen[0].client_msg_id, "add-bob",
        "the event carries the command id"
    );
    let stored = cluster.stored("team").await;
    assert_eq!(stored.len(), 1, "applied once: {stored:?}");
    assert_eq!(
        admin(&cluster, reqwest::Method::DELETE, path, "add-bob").await,
        400,
        "an idempotency key reused for another change is refused"
    );
    assert_eq!(cluster.stored("team").await.len(), 1, "and changes nothing");

    bob.join("team").await;
    bob.send_and_wait("team", "hello", "hi ada").await.unwrap();
    let (seen, _) = ada.collect_messages(1, STEP).await;
    assert_eq!((seen[0].seq, seen[0].body.as_str()), (2, "hi ada"));
}

/// With 20,000 sends queued for the worker, a member's removal is
/// committed and in effect at once, while the sends are still queued:
/// commands have their own stream and consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_is_not_held_up_by_a_backlog_of_sends() {
    const BACKLOG: usize = 20_000;
    let mut cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("busy", &["loud"]).await;
    cluster.create_room("calm", &["ada", "bob"]).await;
    let mut bob = cluster.gateway(0).connect("bob").await;
    bob.join("calm").await;

    // The backlog is queued with no worker running, so that it is all
    // there when one starts, however slow the machine.
    cluster.workers[0].process.terminate();
    let js = cluster.jetstream().await;
    // A few hundred publishes in flight at a time: 20,000 at once can run
    // past the publish-ack timeout on a loaded machine.
    let busy = subjects::ingest_one(&RoomId::parse("busy").unwrap(), js.partitions);
    let acks: Vec<_> = futures::stream::iter(0..BACKLOG)
        .map(|n| {
            let (js, busy) = (js.clone(), busy.clone());
            async move {
                js.publish(
                    busy,
                    envelope("busy", "loud", &format!("b{n}"), "queued").into(),
                )
                .await
                .unwrap()
                .await
                .unwrap()
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    assert_eq!(acks.len(), BACKLOG);
    cluster.start_worker().await;

    let asked = Instant::now();
    let path = "/v1/rooms/calm/members/bob";
    assert_eq!(
        admin(&cluster, reqwest::Method::DELETE, path, "rm-bob").await,
        204
    );
    let committed = asked.elapsed();
    let (pending, in_flight, _) = js.consumer_state().await;
    let left = loop {
        match bob.next_frame().await.kind {
            Some(Kind::Left(_)) => break asked.elapsed(),
            Some(Kind::Message(m)) if m.kind == "member_left" => {}
            other => panic!("bob expected left, got {other:?}"),
        }
    };
    println!(
        "removal committed after {committed:?}, in effect after {left:?}, \
         with {} of {BACKLOG} sends still queued",
        pending + in_flight as u64
    );
    assert!(
        pending + in_flight as u64 > 0,
        "the removal was committed while sends were still queued"
    );
    // The backlog is stored all the same.
    chat_tests::wait_for("the backlog stored", Duration::from_secs(120), || {
        let cluster = &cluster;
        async move { (cluster.stored("busy").await.len() == BACKLOG).then_some(()) }
    })
    .await;
}

/// Postgres down while a member is added: the worker retries the command
/// with backoff (`command_retry`), and once Postgres is back it lands,
/// once, and the caller still waiting gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_during_a_postgres_outage_lands_once_when_it_returns() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "15000")
        .env(
            chat_tests::cluster::Role::Workers,
            "CHAT_WORKER_COMMAND_RETRY__MAX_DELAY_MS",
            "300",
        );
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("ops", &["ada"]).await;
    cluster.postgres.crash();
    let path = "/v1/rooms/ops/members/bob";
    let asked = Instant::now();
    let call = {
        let url = cluster.gateway(0).url(path);
        tokio::spawn(async move {
            reqwest::Client::new()
                .put(url)
                .bearer_auth(ADMIN_TOKEN)
                .header("Idempotency-Key", "add-bob")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    // Postgres stays down a set time, and the call must not finish in it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!call.is_finished(), "not answered while Postgres is down");
    cluster.postgres.restart().await;
    assert_eq!(call.await.unwrap(), 204);
    println!("added after {:?} (Postgres down 2 s)", asked.elapsed());
    let worker = cluster.worker(0).metrics().await;
    let retried = worker.total("chat_worker_commands_total", &[("outcome", "retried")]);
    assert!(retried >= 1.0, "the command was retried: {retried}");
    let stored = cluster.stored("ops").await;
    assert_eq!(stored.len(), 1, "applied once: {stored:?}");
    assert_eq!(
        (stored[0].2.as_str(), stored[0].3.as_str()),
        ("add-bob", "bob")
    );
}
