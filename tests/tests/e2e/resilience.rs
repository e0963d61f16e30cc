//! Crashes do not lose, duplicate or reorder anything.

use std::{
    collections::{HashMap, HashSet},
    process::Command,
    time::Duration,
};

use chat_client::{Client, ClientOptions};
use chat_protocol::codec::Encoding;
use chat_tests::{assert_gap_free, wait_for, Cluster, ClusterOptions, Frames, STEP};

use crate::message_path::run_mixed_load;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_and_duplicates_nothing() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let victim = cluster.workers[0].process.pid();
    run_mixed_load(&cluster, 2000, move |_| {
        let status = Command::new("kill")
            .args(["-KILL", &victim.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "SIGKILL the worker");
    })
    .await;
}

/// A gateway dies (SIGKILL) mid-run. Its clients (the client library's
/// `Client`) reconnect to the other gateway: the sender resends every send
/// it has no ack for (same ids, same order), the reader resumes from its
/// last seq. Nobody sees a gap or a duplicate and every message is stored
/// once; a member on the surviving gateway sees one order throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_lost_gateway_resume_on_another_without_gaps_or_duplicates() {
    const TOTAL: usize = 300;
    let mut cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster
        .create_room("g", &["sender", "reader", "observer"])
        .await;
    let mut observer = cluster.gateway(0).connect("observer").await;
    observer.join("g").await;
    // Both start on gateway 1, the doomed one, and know gateway 0.
    let client = |user: &str, encoding| {
        let urls = [cluster.gateway(1).ws_url(), cluster.gateway(0).ws_url()];
        let options = ClientOptions::new(urls, cluster.token(user), encoding)
            .backoff(Duration::from_millis(50), Duration::from_secs(1));
        Client::connect(options)
    };
    let (reader, mut messages) = client("reader", Encoding::Proto);
    reader.join("g", None).await.unwrap();
    let (sender, _) = client("sender", Encoding::Json);
    let acks: Vec<_> = (0..TOTAL)
        .map(|n| sender.submit("g", &format!("m{n}"), "x"))
        .collect();
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let m = tokio::time::timeout(STEP, messages.recv()).await.unwrap();
        seen.push(m.expect("a message").seq);
    }
    cluster.gateways[1].process.kill();
    let acked: HashSet<u64> = futures::future::join_all(acks)
        .await
        .into_iter()
        .map(|ack| ack.expect("every send acked").seq)
        .collect();
    assert_eq!(acked.len(), TOTAL, "each id acked with its own seq");
    while seen.len() < TOTAL {
        let m = tokio::time::timeout(STEP, messages.recv()).await.unwrap();
        seen.push(m.expect("a message").seq);
    }
    assert_eq!(
        seen,
        (1..=TOTAL as u64).collect::<Vec<_>>(),
        "reader: one order, no gap, no duplicate"
    );
    let (all, _) = observer.collect_messages(TOTAL, STEP).await;
    assert_gap_free(&all, TOTAL, "observer");
    let stored: Vec<String> = cluster.stored("g").await.into_iter().map(|r| r.2).collect();
    let sent: Vec<String> = (0..TOTAL).map(|n| format!("m{n}")).collect();
    assert_eq!(stored, sent, "stored once each, in the order sent");
}

/// Receipts for envelopes that a gateway accepted before it restarted (same
/// gateway id) reach the restarted gateway while it waits for new sends of
/// its own: each new send is acked with its own stored message, never with
/// an older one's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_acks_each_send_with_its_own_message() {
    let mut cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("r", &["ada"]).await;
    // The worker hangs, so what the old gateway accepted waits on the stream.
    cluster.workers[0].process.pause();
    let mut before = cluster.gateway(0).connect("ada").await;
    for n in 0..20 {
        before
            .writer
            .send("r", &format!("old-{n}"), "before the restart")
            .await
            .unwrap();
    }
    // The gateway publishes them all before it dies.
    let js = cluster.jetstream().await;
    let gateway = cluster.gateway(0).id();
    wait_for("the gateway to publish every send", STEP, || async {
        let published: usize = js
            .gateway_batches(&gateway)
            .await
            .iter()
            .map(Vec::len)
            .sum();
        (published == 20).then_some(())
    })
    .await;
    cluster.restart_gateway(0).await;
    let mut ada = cluster
        .gateway(0)
        .connect_with("ada", Encoding::Proto)
        .await;
    let mut sent = HashMap::new();
    for n in 0..20 {
        let id = format!("new-{n}");
        sent.insert(
            ada.writer
                .send("r", &id, "after the restart")
                .await
                .unwrap(),
            id,
        );
    }
    cluster.workers[0].process.resume();
    let (_, acks) = ada.collect(0, sent.len(), None, STEP).await;
    let stored: HashMap<String, i64> = cluster
        .stored("r")
        .await
        .into_iter()
        .map(|(seq, _, id, _)| (id, seq))
        .collect();
    assert_eq!(stored.len(), 40, "old and new sends stored once each");
    for (request_id, ack) in acks {
        let id = &sent[&request_id];
        assert_eq!(&ack.client_msg_id, id, "ack for another send");
        assert_eq!(ack.seq as i64, stored[id], "{id} acked with a wrong seq");
    }
}

/// NATS restarts (keeping its store). Pull requests die with the connection,
/// so the worker must pull again as soon as it reconnects: a send made once
/// everything is ready again is stored within the gateway's ack timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_pulls_again_as_soon_as_nats_is_back() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "3000");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("n", &["nina"]).await;
    let mut nina = cluster.gateway(0).connect("nina").await;
    nina.send_and_wait("n", "before", "x").await.unwrap();

    cluster.nats.stop();
    cluster.nats.restart().await;
    for url in [
        cluster.gateway(0).url("/readyz"),
        cluster.worker(0).url("/readyz"),
    ] {
        wait_for("ready again with NATS back", STEP, || {
            let url = url.clone();
            async move {
                let status = reqwest::get(url).await.ok()?.status();
                status.is_success().then_some(())
            }
        })
        .await;
    }
    let ack = nina
        .send_and_wait("n", "after", "y")
        .await
        .expect("stored within the ack timeout");
    assert_eq!(ack.seq, 2);
}
