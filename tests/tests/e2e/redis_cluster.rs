//! The cache on a Redis Cluster of three masters: a room's keys share a
//! slot (hash tags), windows hold what Postgres holds, and a master killed
//! under traffic loses nothing (Redis is only a cache).

use chat_tests::{checker::Traffic, Cluster, ClusterOptions, STEP};

/// Acks to see before the fault, and after it.
const ACKS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_works_on_a_redis_cluster_and_survives_a_master_killed() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 1).redis_cluster()).await;
    let mut traffic = Traffic::start(&cluster, "rc", Default::default()).await;
    traffic.until_acked(ACKS, STEP).await;
    let rooms = traffic.rooms().to_vec();
    // Windows are written on the cluster: each is what Postgres holds.
    for room in &rooms {
        // The window first: what it holds was committed before, so the
        // store read after holds it too, however the traffic moves on.
        let window = cluster.window(room).await;
        let stored = cluster.stored(room).await;
        let seqs: Vec<u64> = window.iter().map(|m| m.seq).collect();
        let held: Vec<u64> = stored
            .iter()
            .map(|r| r.0 as u64)
            .filter(|s| seqs.contains(s))
            .collect();
        assert!(!window.is_empty(), "{room}'s window is on the cluster");
        assert_eq!(
            seqs, held,
            "{room}'s window holds stored entries, in seq order"
        );
    }
    let redis = cluster.redis_cluster.as_mut().expect("a redis cluster");
    let victim = redis.master_of(&chat_protocol::keys::window(
        &chat_protocol::RoomId::parse(rooms[0].as_str()).unwrap(),
    ));
    traffic.fault();
    redis.kill(victim);
    traffic.until_acked(ACKS, STEP * 2).await;
    traffic
        .finish(&cluster, "redis cluster master killed")
        .await
        .check();
}
