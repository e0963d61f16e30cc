//! The fault suite on a 3-node NATS cluster, every stream at 3 replicas:
//! a stream leader killed, a node cut off, every node restarted in turn.
//! Each under steady traffic, judged by the checker like the rest of the
//! suite (`faults.rs`): nothing lost, duplicated or out of seq, the
//! recovery time in the row.

use std::time::Duration;

use chat_protocol::subjects;
use chat_tests::{checker::Traffic, wait_for, Cluster, ClusterOptions, STEP};

/// Acks to see before a fault, during it, and after it.
const ACKS: usize = 60;
/// How long a cut-off node stays cut off.
const OUTAGE: Duration = Duration::from_secs(5);

async fn traffic(cluster: &Cluster, tag: &str) -> Traffic {
    let traffic = Traffic::start(cluster, tag, Default::default()).await;
    traffic.until_acked(ACKS, STEP).await;
    traffic
}

async fn finish(traffic: Traffic, cluster: &Cluster, fault: &str) {
    traffic.until_acked(ACKS, STEP * 2).await;
    traffic.finish(cluster, fault).await.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_of_a_busy_stream_killed() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 2).nats_cluster()).await;
    let mut traffic = traffic(&cluster, "l").await;
    let js = cluster.jetstream().await;
    let busy = subjects::ingest_stream(js.partition(&traffic.rooms()[0]));
    let leader = js.leader(&busy).await.expect("the stream has a leader");
    traffic.fault();
    cluster.nats.stop_node(&leader);
    wait_for("another node to lead the stream", STEP, || async {
        let now = js.leader(&busy).await?;
        (now != leader).then_some(())
    })
    .await;
    traffic.until_acked(ACKS, STEP * 2).await;
    cluster.nats.restart_node(&leader).await;
    finish(traffic, &cluster, "nats stream leader killed (3 nodes)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_node_cut_off_then_healed() {
    let options = ClusterOptions::new(2, 2).nats_cluster_with_a_node_apart();
    let cluster = Cluster::start(options).await;
    let mut traffic = traffic(&cluster, "c").await;
    let apart = cluster.nats_namespace.as_ref().expect("a node apart");
    traffic.fault();
    apart.cut_all();
    // The cut lasts a set time: that is the fault under test.
    tokio::time::sleep(OUTAGE).await;
    traffic.until_acked(ACKS, STEP * 2).await;
    apart.heal_all();
    traffic.healed();
    cluster
        .jetstream()
        .await
        .wait_until_replicas_current()
        .await;
    finish(traffic, &cluster, "nats node cut off, healed (3 nodes)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_nats_node_restarted_in_turn() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 2).nats_cluster()).await;
    let mut traffic = traffic(&cluster, "r").await;
    let js = cluster.jetstream().await;
    traffic.fault();
    for node in cluster.nats.names() {
        cluster.nats.stop_node(&node);
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.nats.restart_node(&node).await;
        // As an operator's rollout does: the next node only once this one
        // has caught up, so no stream loses its quorum.
        js.wait_until_replicas_current().await;
        traffic.until_acked(ACKS / 3, STEP * 2).await;
    }
    finish(traffic, &cluster, "nats nodes restarted in turn (3 nodes)").await;
}
