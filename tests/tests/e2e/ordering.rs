//! Fan-out is core NATS: a gateway may miss a message. These tests store
//! messages the way a worker does but never publish them, as if NATS had
//! dropped the fan-out, and check that every member still gets them in order.

use chat_shared::codec::Encoding;
use chat_shared::{cache, RoomId};
use chat_tests::{Cluster, ClusterOptions};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_fan_out_was_lost_is_filled_in_before_the_next_one() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("gap", &["ann", "ben", "ghost"]).await;
    let (mut aw, mut ar) = cluster.connect(0, "ann", Encoding::Json).await;
    let (mut bw, mut br) = cluster.connect(1, "ben", Encoding::Proto).await;
    join(&mut aw, &mut ar, "gap", None).await;
    join(&mut bw, &mut br, "gap", None).await;
    let (mut sw, mut sr) = cluster.connect(0, "ghost", Encoding::Json).await;
    send_and_wait(&mut sw, &mut sr, "gap", "one", "1")
        .await
        .unwrap();
    // Seq 2 is committed but no gateway hears of it (and Redis has no copy):
    // seq 3 arrives first and reveals the gap, filled from Postgres.
    let lost = store_without_fanout(&cluster, "gap", "two").await;
    assert_eq!(lost.seq, 2);
    send_and_wait(&mut sw, &mut sr, "gap", "three", "3")
        .await
        .unwrap();
    for (who, reader) in [("ann", &mut ar), ("ben", &mut br)] {
        let (got, _) = collect_messages(reader, 3, STEP).await;
        assert_gap_free(&got, 3, who);
        assert_eq!(got[1].body, "dropped fan-out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_last_message_is_found_by_the_head_probe() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("tail", &["cat", "ghost"]).await;
    let (mut w, mut r) = cluster.connect(0, "cat", Encoding::Json).await;
    join(&mut w, &mut r, "tail", None).await;
    let (mut sw, mut sr) = cluster.connect(0, "ghost", Encoding::Proto).await;
    send_and_wait(&mut sw, &mut sr, "tail", "first", "1")
        .await
        .unwrap();
    // The last message's fan-out is lost and nothing follows it; the worker
    // had cached it in Redis, which the gateway's probe reads.
    let lost = store_without_fanout(&cluster, "tail", "last").await;
    let mut redis = redis::Client::open(cluster.redis.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    cache::remember(&mut redis, &[(RoomId::parse("tail").unwrap(), lost)], 100)
        .await
        .unwrap();
    let (got, _) = collect_messages(&mut r, 2, STEP).await;
    assert_gap_free(&got, 2, "cat");
}
