//! One socket's sends to a room commit in the order it sent them, with
//! several workers and across a partition's takeover (decision 15): each
//! partition has one pinned owner, and its gate hands sends on in stream
//! order whoever held them before.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use chat_proto::v1::server_frame::Kind;
use chat_tests::{
    nodes::Worker, room_in_partition, wait_for, Cluster, ClusterOptions, Frames, Session, STEP,
};

/// Pipelined sends per socket.
const SENDS: usize = 300;
/// Rooms each socket writes to, in turn: each in a partition of its own
/// (as many as the default P).
const ROOMS: u32 = 4;

/// Two workers; sockets may pipeline every send at once, and a send waits
/// out a takeover for its ack.
fn options() -> ClusterOptions {
    ClusterOptions::new(2, 2)
        .gateway_env("CHAT_GATEWAY_LIMITS__MAX_INFLIGHT_SENDS", "1000")
        .gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "60000")
}

/// Rooms in `ROOMS` different partitions (0..ROOMS), each with both
/// senders. A message to each every half second pins every partition to an
/// owner (a partition released by one worker is pinned on its next
/// message), until the workers have spread them: both own some.
async fn rooms_over_two_owners(cluster: &Cluster) -> Vec<String> {
    let js = cluster.jetstream().await;
    let rooms: Vec<String> = (0..ROOMS)
        .map(|p| room_in_partition(p, "order", js.partitions))
        .collect();
    for room in &rooms {
        cluster.create_room(room, &["ann", "bob", "carl"]).await;
    }
    let mut carl = cluster.gateway(0).connect("carl").await;
    let deadline = Instant::now() + STEP * 2;
    for round in 0.. {
        for room in &rooms {
            let id = format!("warm-up-{round}");
            carl.send_and_wait(room, &id, "pins").await.unwrap();
        }
        let mut owners = Vec::new();
        for worker in &cluster.workers {
            owners.push(owned(worker, 0..ROOMS).await.len());
        }
        if owners.iter().all(|&n| n > 0) && owners.iter().sum::<usize>() == ROOMS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions never spread: {owners:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    rooms
}

/// The partitions among `of` this worker says it owns.
async fn owned(worker: &Worker, of: std::ops::Range<u32>) -> Vec<u32> {
    let metrics = worker.metrics().await;
    of.filter(|p| {
        let p = p.to_string();
        metrics.total("chat_worker_partition_owned", &[("partition", &p)]) == 1.0
    })
    .collect()
}

/// Pipelines `SENDS` sends over the rooms in turn without waiting, then
/// reads every ack: when each came, by client_msg_id.
async fn pipeline(mut session: Session, user: &str, rooms: &[String]) -> HashMap<String, Instant> {
    let mut ids = HashMap::new();
    for n in 0..SENDS {
        let id = format!("{user}-{n:03}");
        let request = session
            .writer
            .send(&rooms[n % rooms.len()], &id, "in order")
            .await
            .unwrap();
        ids.insert(request, id);
    }
    let mut acked = HashMap::new();
    while acked.len() < SENDS {
        let frame = tokio::time::timeout(Duration::from_secs(90), session.next_frame())
            .await
            .expect("every send acked");
        match frame.kind {
            Some(Kind::Ack(_)) => {
                acked.insert(ids[&frame.request_id].clone(), Instant::now());
            }
            Some(Kind::Error(e)) => panic!("{user}'s send refused: {e:?}"),
            _ => {}
        }
    }
    acked
}

/// Each user's sends are stored once each, and in each room in the order
/// the user sent them.
async fn assert_stored_in_order(cluster: &Cluster, rooms: &[String], users: &[&str]) {
    for user in users {
        let mut stored = 0;
        for room in rooms {
            let ids: Vec<String> = cluster
                .stored(room)
                .await
                .into_iter()
                .filter(|(_, sender, _, _)| sender == user)
                .map(|(_, _, id, _)| id)
                .collect();
            let mut sorted = ids.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(
                ids, sorted,
                "{user}'s sends to {room} out of order or twice"
            );
            stored += ids.len();
        }
        assert_eq!(stored, SENDS, "each of {user}'s sends stored once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sockets_pipelined_sends_commit_in_the_order_sent_with_two_workers() {
    let cluster = Cluster::start(options()).await;
    let rooms = rooms_over_two_owners(&cluster).await;
    let ann = cluster.gateway(0).connect("ann").await;
    let bob = cluster.gateway(1).connect("bob").await;
    tokio::join!(pipeline(ann, "ann", &rooms), pipeline(bob, "bob", &rooms));
    assert_stored_in_order(&cluster, &rooms, &["ann", "bob"]).await;
    for (i, worker) in cluster.workers.iter().enumerate() {
        let stored = worker
            .metrics()
            .await
            .total("chat_worker_envelopes_total", &[("outcome", "stored")]);
        assert!(
            stored > 0.0,
            "worker {i} stored nothing: one owner took all"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_is_kept_when_a_partitions_owner_is_killed_mid_burst() {
    let mut cluster = Cluster::start(options()).await;
    let rooms = rooms_over_two_owners(&cluster).await;
    // The owner of the first room's partition (partition 0).
    let mut victim = 0;
    for (i, worker) in cluster.workers.iter().enumerate() {
        if owned(worker, 0..1).await == [0] {
            victim = i;
        }
    }
    let ann = cluster.gateway(0).connect("ann").await;
    let bob = cluster.gateway(1).connect("bob").await;
    let rooms_ = rooms.clone();
    let burst = tokio::spawn(async move {
        tokio::join!(pipeline(ann, "ann", &rooms_), pipeline(bob, "bob", &rooms_))
    });
    wait_for("a part of the burst stored", STEP, || async {
        let stored = cluster.stored(&rooms[0]).await.len();
        (stored > 20).then_some(())
    })
    .await;
    let killed = Instant::now();
    cluster.workers[victim].process.kill();
    let (ann_acks, bob_acks) = burst.await.unwrap();
    // The longest wait between two acks after the kill: the takeover.
    let mut after: Vec<Instant> = ann_acks
        .values()
        .chain(bob_acks.values())
        .copied()
        .filter(|at| *at > killed)
        .collect();
    after.sort();
    let stall = after
        .iter()
        .scan(killed, |last, at| Some(*at - std::mem::replace(last, *at)))
        .max();
    println!("longest pause in acks after the owner's SIGKILL: {stall:?}");
    assert_stored_in_order(&cluster, &rooms, &["ann", "bob"]).await;
}
