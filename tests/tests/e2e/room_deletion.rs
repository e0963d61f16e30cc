//! Deleting a room (`DELETE /v1/rooms/{room}`) on two gateways and two
//! workers while its members are connected and sending: refused for all
//! but its owners and the service; then everything stored for it is gone,
//! every socket in it hears `left` (reason `deleted`), another room loses
//! nothing, and a room made again under its id starts empty, at seq 1.

use std::sync::{atomic::AtomicBool, Arc};

use chat_proto::v1::{server_frame::Kind, Left};
use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions, Frames, Session, STEP};
use reqwest::Method;

async fn delete(cluster: &Cluster, token: &str, room: &str, key: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new()
        .request(
            Method::DELETE,
            cluster.gateway(1).url(&format!("/v1/rooms/{room}")),
        )
        .bearer_auth(token);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.expect("the gateway answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Rows left anywhere for the room (the deleting command's record aside).
async fn rows_for(cluster: &Cluster, room: &str, key: &str) -> Vec<(String, i64)> {
    let client = cluster.postgres.client().await;
    let mut counts = Vec::new();
    for (table, sql) in [
        ("rooms", "SELECT count(*) FROM rooms WHERE id = $1"),
        (
            "messages",
            "SELECT count(*) FROM messages WHERE room_id = $1",
        ),
        ("members", "SELECT count(*) FROM members WHERE room_id = $1"),
        (
            "read_markers",
            "SELECT count(*) FROM read_markers WHERE room_id = $1",
        ),
        (
            "reactions",
            "SELECT count(*) FROM reactions WHERE room_id = $1",
        ),
        (
            "scheduled_messages",
            "SELECT count(*) FROM scheduled_messages WHERE room_id = $1",
        ),
    ] {
        let n: i64 = client.query_one(sql, &[&room]).await.unwrap().get(0);
        counts.push((table.to_owned(), n));
    }
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM commands WHERE room_id = $1 AND id <> $2",
            &[&room, &key],
        )
        .await
        .unwrap()
        .get(0);
    counts.push(("commands".to_owned(), n));
    counts
}

/// Reads the session's frames until the server makes it leave `room`.
async fn left_reason(session: &mut Session, room: &str) -> String {
    loop {
        let frame = tokio::time::timeout(STEP, session.next_frame())
            .await
            .expect("told to leave in time");
        if let Some(Kind::Left(Left { room: r, reason })) = frame.kind {
            assert_eq!(r, room);
            assert_eq!(frame.request_id, "", "the server's doing, not a reply");
            return reason;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_deletes_a_room_while_its_members_send_and_it_starts_again_empty() {
    // A send in flight as the room goes times out: not after 10 s.
    let options =
        ClusterOptions::new(2, 2).gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "3000");
    let cluster = Cluster::start(options).await;
    let api = chat_client::RoomApi::new(cluster.gateway(0).url(""), ADMIN_TOKEN);
    api.create_room_owned("doomed", &["ann"], &["bob", "cat"])
        .await
        .unwrap();
    cluster.create_room("other", &["bob", "dan"]).await;

    let mut ann = cluster.gateway(0).connect("ann").await;
    ann.join("doomed").await;
    let mut bob = cluster.gateway(1).connect("bob").await;
    bob.join("doomed").await;
    let first = bob.send_and_wait("doomed", "bob-first", "hello").await;
    let first = first.expect("stored");
    bob.mark_read("doomed", first.seq as i64).await.unwrap();
    let mut cat = cluster.gateway(1).connect("cat").await;
    cat.join("doomed").await;
    let mut dan = cluster.gateway(0).connect("dan").await;
    dan.join("other").await;
    let stop = Arc::new(AtomicBool::new(false));
    let cat_sends = cat.chat_steadily("doomed", &stop);
    let dan_sends = dan.chat_steadily("other", &stop);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Refusals change nothing: a member who is not an owner, a stranger,
    // no token, a room that does not exist.
    let before = cluster.stored("doomed").await.len();
    let (status, body) = delete(&cluster, &cluster.token("bob"), "doomed", None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("forbidden"), "{body}");
    let (status, _) = delete(&cluster, &cluster.token("zed"), "doomed", None).await;
    assert_eq!(status, 403);
    let (status, _) = delete(&cluster, "not-a-token", "doomed", None).await;
    assert_eq!(status, 401);
    let (status, body) = delete(&cluster, ADMIN_TOKEN, "nowhere", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(cluster.stored("doomed").await.len() >= before);
    assert_eq!(rows_for(&cluster, "doomed", "-").await[0].1, 1);

    let key = "delete-doomed-1";
    let (status, body) = delete(&cluster, &cluster.token("ann"), "doomed", Some(key)).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(left_reason(&mut ann, "doomed").await, "deleted");
    assert_eq!(left_reason(&mut bob, "doomed").await, "deleted");
    // Past the ack timeout of a send that was in flight.
    tokio::time::sleep(std::time::Duration::from_millis(4000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    // Cat's sends went on through the deletion: after it each is refused
    // as from a non-member; one in flight as the room went is never acked
    // (a dead letter, `room_missing`).
    let cat_sends = cat_sends.await.unwrap();
    let after: Vec<_> = cat_sends.iter().skip_while(|(_, r)| r.is_ok()).collect();
    assert!(after.len() > 1, "sends after the deletion are refused");
    for (i, (id, reply)) in after.iter().enumerate() {
        let e = reply
            .as_ref()
            .expect_err("nothing is acked after the deletion");
        let in_flight = i == 0 && e.code == "timeout";
        assert!(in_flight || e.code == "forbidden", "{id}: {e:?}");
    }
    assert_eq!(
        rows_for(&cluster, "doomed", key).await,
        [
            ("rooms", 0),
            ("messages", 0),
            ("members", 0),
            ("read_markers", 0),
            ("reactions", 0),
            ("scheduled_messages", 0),
            ("commands", 0)
        ]
        .map(|(t, n)| (t.to_owned(), n)),
    );
    assert!(
        cluster.window("doomed").await.is_empty(),
        "its window is gone"
    );

    // The other room lost nothing: every acked send stored once, in order.
    let dan_sends = dan_sends.await.unwrap();
    let acked: Vec<&str> = dan_sends
        .iter()
        .map(|(id, r)| {
            r.as_ref().expect("the other room is untouched");
            id.as_str()
        })
        .collect();
    let stored = cluster.stored("other").await;
    let ids: Vec<&str> = stored.iter().map(|(_, _, id, _)| id.as_str()).collect();
    assert_eq!(ids, acked);

    // The same request again is answered as done; a new one finds nothing.
    let (status, _) = delete(&cluster, &cluster.token("ann"), "doomed", Some(key)).await;
    assert_eq!(status, 204, "a resend is answered as the first was");
    let (status, _) = delete(&cluster, &cluster.token("ann"), "doomed", None).await;
    assert_eq!(status, 404);
    let (status, _) = delete(&cluster, &cluster.token("bob"), "doomed", None).await;
    assert_eq!(status, 404, "no room, so no room to refuse");

    // Made again: empty, seq 1 first, delivered on both gateways.
    api.create_room_owned("doomed", &["bob"], &["ann"])
        .await
        .unwrap();
    let mut ann = cluster.gateway(0).connect("ann").await;
    assert_eq!(ann.join("doomed").await, 0, "a new room starts empty");
    let mut bob = cluster.gateway(1).connect("bob").await;
    assert_eq!(bob.join("doomed").await, 0);
    let ack = bob.send_and_wait("doomed", "bob-again", "anew").await;
    assert_eq!(ack.expect("stored").seq, 1);
    let (messages, _) = ann.collect_messages(1, STEP).await;
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1],
        "the other gateway delivers the new room from seq 1"
    );
}
