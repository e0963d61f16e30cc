//! Retention on two gateways and two workers: the workers' default count,
//! a room's own count and age (`PUT /v1/rooms/{room}/retention`), bad
//! settings refused without a change; what expired is gone from Postgres,
//! history, search and the Redis window, and a resume from before the cut
//! hears `resync` from the oldest seq kept, then gets the rest, gap-free.

use chat_proto::v1::server_frame::Kind;
use chat_tests::{wait_for, Cluster, ClusterOptions, Frames, Role, STEP};
use reqwest::Method;
use serde_json::{json, Value};

/// Sends `n` messages to `room` as `user`, bodies `<room>word<i>`.
async fn send(cluster: &Cluster, user: &str, room: &str, n: usize) {
    let mut session = cluster.gateway(0).connect(user).await;
    for i in 1..=n {
        let body = format!("{room}word{i}");
        session
            .send_and_wait(room, &format!("{room}-{i}"), &body)
            .await
            .expect("stored");
    }
}

async fn seqs(cluster: &Cluster, room: &str) -> Vec<i64> {
    cluster
        .stored(room)
        .await
        .into_iter()
        .map(|(seq, ..)| seq)
        .collect()
}

async fn wait_for_seqs(cluster: &Cluster, room: &str, expected: Vec<i64>) {
    wait_for(&format!("{room} to keep its newest"), STEP, || {
        let expected = expected.clone();
        async move { (seqs(cluster, room).await == expected).then_some(()) }
    })
    .await
}

async fn set(cluster: &Cluster, token: &str, room: &str, body: Value) -> (u16, Value) {
    let path = format!("/v1/rooms/{room}/retention");
    cluster
        .gateway(1)
        .call(token, Method::PUT, &path, Some(body))
        .await
}

fn as_seq(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .expect("a seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_go_from_everywhere_and_a_resume_from_before_is_told() {
    let options = ClusterOptions::new(2, 2)
        .env(Role::Workers, "CHAT_WORKER_RETENTION__SWEEP_MS", "200")
        .env(Role::Workers, "CHAT_WORKER_RETENTION__GRACE_MS", "0")
        .env(Role::Workers, "CHAT_WORKER_RETENTION__BATCH", "40")
        .env(Role::Workers, "CHAT_WORKER_RETENTION__MAX_COUNT", "250");
    let cluster = Cluster::start(options).await;
    let api =
        chat_client::RoomApi::new(cluster.gateway(0).url(""), chat_tests::cluster::ADMIN_TOKEN);
    for room in ["kept", "free", "aged"] {
        api.create_room_owned(room, &["ann"], &["bob"])
            .await
            .unwrap();
    }
    send(&cluster, "bob", "kept", 300).await;
    send(&cluster, "bob", "free", 300).await;

    // The workers' default: each room's newest 250.
    wait_for_seqs(&cluster, "free", (51..=300).collect()).await;
    wait_for_seqs(&cluster, "kept", (51..=300).collect()).await;

    // Bad settings change nothing.
    let (ann, bob) = (cluster.token("ann"), cluster.token("bob"));
    for (token, body, status, code) in [
        (&ann, json!({ "maxCount": 0 }), 400, "invalid_argument"),
        (
            &ann,
            json!({ "maxAgeSeconds": -5 }),
            400,
            "invalid_argument",
        ),
        (&ann, json!({ "maxCount": "ten" }), 400, "invalid_argument"),
        (&bob, json!({ "maxCount": 100 }), 403, "forbidden"),
    ] {
        let (got, answer) = set(&cluster, token, "kept", body.clone()).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (got, _) = set(&cluster, &ann, "nowhere", json!({ "maxCount": 5 })).await;
    assert_eq!(got, 404);
    let (got, _) = set(&cluster, "not-a-token", "kept", json!({ "maxCount": 5 })).await;
    assert_eq!(got, 401);
    let own: (Option<i64>, Option<i64>) = {
        let client = cluster.postgres.client().await;
        let row = client
            .query_one(
                "SELECT retain_count, retain_secs FROM rooms WHERE id = 'kept'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(own, (None, None), "refused settings are not stored");
    assert_eq!(seqs(&cluster, "kept").await, (51..=300).collect::<Vec<_>>());

    // The owner keeps only the newest 100 of `kept`.
    let (got, answer) = set(&cluster, &ann, "kept", json!({ "maxCount": 100 })).await;
    assert_eq!(got, 204, "{answer}");
    wait_for_seqs(&cluster, "kept", (201..=300).collect()).await;
    assert_eq!(seqs(&cluster, "free").await, (51..=300).collect::<Vec<_>>());

    // History, search and the window no longer show them.
    let (status, page) = cluster
        .gateway(0)
        .get(&bob, "/v1/rooms/kept/messages?after=0&limit=10")
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(as_seq(&page["messages"][0]["seq"]), 201);
    assert_eq!(page["hasBefore"], false);
    for (word, hits) in [("keptword150", 0), ("keptword250", 1)] {
        let (status, found) = cluster
            .gateway(1)
            .get(&bob, &format!("/v1/rooms/kept/search?q={word}"))
            .await;
        assert_eq!(status, 200, "{found}");
        let found = found["hits"].as_array().map_or(0, Vec::len);
        assert_eq!(found, hits, "{word}");
    }
    let window = cluster.window("kept").await;
    assert!(!window.is_empty());
    assert!(
        window.iter().all(|m| m.seq > 200),
        "the window dropped them"
    );

    // A resume from before the cut: `resync` from the oldest kept, then
    // every message from there, in order.
    let mut late = cluster.gateway(1).connect("bob").await;
    late.join_since("kept", 10).await;
    let from = loop {
        let frame = tokio::time::timeout(STEP, late.next_frame())
            .await
            .expect("told in time");
        match frame.kind {
            Some(Kind::Resync(resync)) => break resync.from_seq,
            Some(Kind::Message(m)) => panic!("seq {} before the resync", m.seq),
            _ => {}
        }
    };
    assert_eq!(from, 201);
    let (messages, _) = late.collect_messages(100, STEP).await;
    let replayed: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    assert_eq!(replayed, (201..=300).collect::<Vec<_>>());

    // An age: what is older than a second goes, what is sent after stays
    // at its seq.
    send(&cluster, "ann", "aged", 5).await;
    let (got, _) = set(&cluster, &ann, "aged", json!({ "maxAgeSeconds": 1 })).await;
    assert_eq!(got, 204);
    wait_for_seqs(&cluster, "aged", vec![]).await;
    let mut ann_socket = cluster.gateway(1).connect("ann").await;
    let ack = ann_socket.send_and_wait("aged", "aged-6", "later").await;
    assert_eq!(ack.unwrap().seq, 6);

    let mut deleted = 0.0;
    for i in 0..2 {
        let metrics = cluster.worker(i).metrics().await;
        deleted += metrics.total(
            "chat_worker_retention_deleted_total",
            &[("what", "entries")],
        );
    }
    assert!(deleted >= (200 + 50 + 5) as f64, "{deleted}");
}
