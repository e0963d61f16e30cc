//! A gateway's life: draining on SIGTERM without losing what it accepted,
//! and connection churn that leaves nothing behind; a worker's SIGTERM,
//! which finishes what it holds. (The spread of a drain: `drain.rs`.)

use std::{collections::HashMap, time::Duration};

use chat_client::{Client, ClientOptions, Event};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{
    assert_gap_free, envelope, wait_for, Cluster, ClusterOptions, Frames, Role, STEP,
};
use tokio::time::Instant;

/// SIGTERM one of two gateways while a client streams sends through it:
/// the gateway answers what it accepted, closes with 1012, and the client
/// resends its unacknowledged sends on the other gateway. Every send is
/// stored once and the room's reader sees every seq once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_gateway_answers_what_it_accepted_then_closes_with_1012() {
    let options = ClusterOptions::new(2, 1)
        .gateway_env("CHAT_GATEWAY_DRAIN_DELAY_MS", "300")
        .gateway_env("CHAT_GATEWAY_DRAIN_SPREAD_MS", "1000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("d", &["s", "r"]).await;
    let mut r = cluster.gateway(1).connect_with("r", Encoding::Proto).await;
    r.join("d").await;
    let mut s = cluster.gateway(0).connect("s").await;
    // Stream sends (32 in flight) until the gateway closes the socket.
    let mut unacked: HashMap<String, String> = HashMap::new();
    let mut acked = Vec::new();
    let mut sent = Vec::new();
    let mut terminated_at = None;
    let started = Instant::now();
    let close = loop {
        while unacked.len() < 32 {
            let id = format!("d{:05}", sent.len());
            match s.writer.send("d", &id, "draining").await {
                Ok(request_id) => {
                    unacked.insert(request_id, id.clone());
                    sent.push(id);
                }
                Err(_) => break,
            }
        }
        if terminated_at.is_none() && started.elapsed() > Duration::from_millis(500) {
            cluster.gateways[0].process.sigterm();
            terminated_at = Some(acked.len());
        }
        match tokio::time::timeout(STEP, s.reader.next()).await {
            Ok(Some(Ok(Event::Frame(f)))) => {
                if let Some(Kind::Ack(_)) = f.kind {
                    acked.push(unacked.remove(&f.request_id).expect("ack for a send"));
                } else if let Some(Kind::Error(e)) = f.kind {
                    panic!("error while draining: {e:?}");
                }
            }
            Ok(Some(Ok(Event::Closed(frame)))) => break frame,
            other => panic!("expected a frame or a close, got {other:?}"),
        }
    };
    let close = close.expect("a close frame");
    assert_eq!(u16::from(close.code), 1012);
    let before = terminated_at.unwrap();
    println!(
        "{} sent, {before} acked before SIGTERM, {} after, {} unanswered at the close",
        sent.len(),
        acked.len() - before,
        unacked.len()
    );
    assert!(acked.len() > before, "the draining gateway kept acking");
    // What was not acked is resent, in order, on the other gateway, as the
    // client library does after a 1012.
    let options = ClientOptions::new(
        [cluster.gateway(1).ws_url()],
        cluster.token("s"),
        Encoding::Json,
    );
    let (client, _) = Client::connect(options);
    let mut rest: Vec<String> = unacked.into_values().collect();
    rest.sort();
    let resent: Vec<_> = rest
        .iter()
        .map(|id| client.submit("d", id, "draining"))
        .collect();
    for ack in futures::future::join_all(resent).await {
        ack.expect("resend acked");
    }
    let stored = cluster.stored("d").await;
    let ids: Vec<&String> = stored.iter().map(|(_, _, id, _)| id).collect();
    assert_eq!(ids.len(), sent.len(), "every send stored exactly once");
    assert_eq!(ids, sent.iter().collect::<Vec<_>>(), "in the order sent");
    let (seen, _) = r.collect_messages(sent.len(), STEP).await;
    assert_gap_free(&seen, sent.len(), "reader");
}

/// Sockets opened and closed as fast as 16 clients can for 5 seconds: the
/// connection gauge and the gateway's memory come back to where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_churn_leaves_nothing_behind() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let gauge = || async {
        let m = cluster.gateway(0).metrics().await;
        m.total("chat_gateway_connections", &[])
    };
    let churn = |secs: u64| {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let options = cluster
                    .gateway(0)
                    .connect_options(&format!("c{i}"), Encoding::Json);
                tokio::spawn(async move {
                    let until = Instant::now() + Duration::from_secs(secs);
                    let mut n = 0u32;
                    while Instant::now() < until {
                        let (w, _r) = chat_client::connect(&options).await.unwrap();
                        w.close().await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        async move {
            let mut n = 0;
            for t in tasks {
                n += t.await.unwrap();
            }
            n
        }
    };
    let settle = || async {
        wait_for("every socket to be gone", STEP, || async {
            (gauge().await == 0.0).then_some(())
        })
        .await
    };
    // Warm up, so the allocator's pools are as big as churn makes them.
    churn(1).await;
    settle().await;
    let gateway = &cluster.gateways[0].process;
    let before = gateway.rss_kib();
    let opened = churn(5).await;
    settle().await;
    let limit = before + before / 10;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = gateway.rss_kib();
    while after > limit && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = gateway.rss_kib();
    }
    println!(
        "{opened} connections in 5 s ({}/s); RSS {before} KiB before, {after} KiB after",
        opened / 5
    );
    assert!(
        after <= limit,
        "RSS {after} KiB after churn, {before} KiB before"
    );
    let m = cluster.gateway(0).metrics().await;
    let accepted = m.total("chat_gateway_connects_total", &[("result", "accepted")]);
    let closed = m.total("chat_gateway_disconnects_total", &[]);
    assert_eq!(accepted, closed, "every accepted socket was counted closed");
}

/// SIGTERM a worker while it holds sends it cannot store yet (their room's
/// row is locked): it stops pulling but stays until it has stored and acked
/// every one of them, then exits, leaving JetStream nothing to redeliver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_worker_stores_and_acks_what_it_holds_before_exiting() {
    const SENDS: usize = 40;
    let options =
        ClusterOptions::new(1, 1).env(Role::Workers, "CHAT_WORKER_BATCH__MAX_MESSAGES", "16");
    let mut cluster = Cluster::start(options).await;
    cluster.create_room("held", &["h"]).await;
    let js = cluster.jetstream().await;
    let pg = cluster.postgres.client().await;
    pg.batch_execute("BEGIN; SELECT 1 FROM rooms WHERE id = 'held' FOR UPDATE")
        .await
        .unwrap();
    let sent: Vec<String> = (0..SENDS).map(|n| format!("h{n:02}")).collect();
    for id in &sent {
        js.publish_ingest("held", envelope("held", "h", id, "held"))
            .await;
    }
    js.wait_until_workers_hold(SENDS).await;

    let worker = &mut cluster.workers[0].process;
    worker.sigterm();
    // Stays: a window in which the worker must not exit.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(worker.is_running(), "the worker waits for what it holds");
    pg.batch_execute("COMMIT").await.unwrap();
    wait_for("the worker to exit", STEP, || {
        let running = worker.is_running();
        async move { (!running).then_some(()) }
    })
    .await;
    assert!(worker.log().contains("worker stopped"), "a clean exit");
    assert_eq!(
        js.consumer_state().await,
        (0, 0, 0),
        "(pending, unacked, redelivered)"
    );
    let stored: Vec<String> = cluster
        .stored("held")
        .await
        .into_iter()
        .map(|(_, _, id, _)| id)
        .collect();
    assert_eq!(stored, sent, "stored once each, in order");
}
