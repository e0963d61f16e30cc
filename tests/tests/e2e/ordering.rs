//! Fan-out is core NATS: a gateway may miss a message. These tests store
//! messages the way a worker does but never publish them, as if NATS had
//! dropped the fan-out, and check that every member still gets them in order.

use chat_protocol::codec::Encoding;
use chat_protocol::RoomId;
use chat_tests::{assert_gap_free, Cluster, ClusterOptions, Frames, STEP};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_fan_out_was_lost_is_filled_in_before_the_next_one() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("gap", &["ann", "ben", "ghost"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut ben = cluster
        .gateway(1)
        .connect_with("ben", Encoding::Proto)
        .await;
    ann.join("gap").await;
    ben.join("gap").await;
    let mut ghost = cluster.gateway(0).connect("ghost").await;
    ghost.send_and_wait("gap", "one", "1").await.unwrap();
    // Seq 2 is committed but no gateway hears of it (and Redis has no copy):
    // seq 3 arrives first and reveals the gap, filled from Postgres.
    let lost = cluster.store_without_fanout("gap", "two").await;
    assert_eq!(lost.seq, 2);
    ghost.send_and_wait("gap", "three", "3").await.unwrap();
    for (who, reader) in [("ann", &mut ann.reader), ("ben", &mut ben.reader)] {
        let (got, _) = reader.collect_messages(3, STEP).await;
        assert_gap_free(&got, 3, who);
        assert_eq!(got[1].body, "dropped fan-out");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_last_message_is_found_by_the_head_probe() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("tail", &["cat", "ghost"]).await;
    let mut cat = cluster.gateway(0).connect("cat").await;
    cat.join("tail").await;
    let mut ghost = cluster
        .gateway(0)
        .connect_with("ghost", Encoding::Proto)
        .await;
    ghost.send_and_wait("tail", "first", "1").await.unwrap();
    // The last message's fan-out is lost and nothing follows it; the worker
    // had cached it in Redis, which the gateway's probe reads.
    let lost = cluster.store_without_fanout("tail", "last").await;
    let mut redis = chat_cache::connect(&cluster.redis.url(), &Default::default())
        .await
        .unwrap();
    chat_cache::remember(&mut redis, &[(RoomId::parse("tail").unwrap(), lost)], 100)
        .await
        .unwrap();
    let (got, _) = cat.collect_messages(2, STEP).await;
    assert_gap_free(&got, 2, "cat");
}

/// The client_msg_ids of `sender`'s stored messages in `room`, by seq.
async fn stored_order(cluster: &Cluster, room: &str, sender: &str) -> Vec<String> {
    cluster
        .stored(room)
        .await
        .into_iter()
        .filter(|(_, s, _, _)| s == sender)
        .map(|(_, _, id, _)| id)
        .collect()
}

/// A socket writes 300 sends back to back before reading any ack: they are
/// sequenced in the order it wrote them, and every member sees that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_sends_of_one_socket_are_sequenced_in_the_order_sent() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_INFLIGHT_SENDS", "1000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("fifo", &["typist", "reader"]).await;
    let mut reader = cluster
        .gateway(0)
        .connect_with("reader", Encoding::Proto)
        .await;
    reader.join("fifo").await;
    let mut typist = cluster.gateway(0).connect("typist").await;
    let sent: Vec<String> = (0..300).map(|n| format!("t{n:03}")).collect();
    for id in &sent {
        typist
            .writer
            .send("fifo", id, "typed in order")
            .await
            .unwrap();
    }
    let (_, acks) = typist.collect(0, sent.len(), None, STEP).await;
    assert_eq!(acks.len(), sent.len());
    assert_eq!(stored_order(&cluster, "fifo", "typist").await, sent);
    let (seen, _) = reader.collect_messages(sent.len(), STEP).await;
    let seen: Vec<String> = seen.into_iter().map(|m| m.client_msg_id).collect();
    assert_eq!(seen, sent, "the reader saw the typist's order");
}

/// Under overload (a sender pushing 500 msg/s into a room with 20 readers,
/// several pipelined at once), each sender's messages keep its order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_under_overload_keeps_its_order() {
    let readers: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
    let mut members: Vec<&str> = readers.iter().map(String::as_str).collect();
    members.extend(["hot", "warm"]);
    // Overload means acks lag; the cap on sends in flight is not under test.
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_INFLIGHT_SENDS", "2000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("loud", &members).await;
    let mut sockets = Vec::new();
    for user in &readers {
        let mut reader = cluster.gateway(0).connect_with(user, Encoding::Proto).await;
        reader.join("loud").await;
        sockets.push(reader.into_parts());
    }
    let drain = tokio::spawn(async move {
        // Readers read everything, so none is cut off as a slow consumer.
        let mut tasks = Vec::new();
        for (w, mut r) in sockets {
            tasks.push(tokio::spawn(async move {
                while let Ok(Some(_)) = tokio::time::timeout(STEP, r.next()).await {}
                drop(w);
            }));
        }
        futures::future::join_all(tasks).await;
    });
    let mut senders = Vec::new();
    for (user, per_sec) in [("hot", 400u64), ("warm", 100)] {
        let (mut w, mut r) = cluster.gateway(0).connect(user).await.into_parts();
        senders.push(tokio::spawn(async move {
            let count = per_sec * 3;
            let every = std::time::Duration::from_micros(1_000_000 / per_sec);
            let reader =
                tokio::spawn(
                    async move { r.collect(0, count as usize, None, STEP * 2).await.1.len() },
                );
            let mut tick = tokio::time::interval(every);
            let mut ids = Vec::new();
            for n in 0..count {
                tick.tick().await;
                let id = format!("{user}{n:04}");
                w.send("loud", &id, "fast").await.unwrap();
                ids.push(id);
            }
            assert_eq!(
                reader.await.unwrap(),
                count as usize,
                "{user}: every send acked"
            );
            (user, ids)
        }));
    }
    for sender in senders {
        let (user, ids) = sender.await.unwrap();
        assert_eq!(
            stored_order(&cluster, "loud", user).await,
            ids,
            "{user}'s order"
        );
    }
    drain.abort();
}

/// Postgres fails every insert for a second (a retryable serialization
/// failure, from a trigger) while a socket streams sends: the worker retries
/// in place instead of letting later sends overtake, so the stored order is
/// still the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_keeps_its_order_through_retries() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_INFLIGHT_SENDS", "1000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("flaky", &["typist"]).await;
    let pg = cluster.postgres.client().await;
    pg.batch_execute(
        "CREATE TABLE chaos (on_since timestamptz);
         CREATE FUNCTION chaos() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF EXISTS (SELECT 1 FROM chaos) THEN
                 RAISE EXCEPTION 'chaos' USING ERRCODE = '40001';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER chaos BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION chaos();",
    )
    .await
    .unwrap();
    let (mut w, mut r) = cluster
        .gateway(0)
        .connect_with("typist", Encoding::Proto)
        .await
        .into_parts();
    let sent: Vec<String> = (0..200).map(|n| format!("k{n:03}")).collect();
    let acks = tokio::spawn(async move { r.collect(0, 200, None, STEP * 2).await.1.len() });
    for (n, id) in sent.iter().enumerate() {
        if n == 50 {
            pg.execute("INSERT INTO chaos VALUES (now())", &[])
                .await
                .unwrap();
        }
        if n == 150 {
            pg.execute("DELETE FROM chaos", &[]).await.unwrap();
        }
        w.send("flaky", id, "typed in order").await.unwrap();
        // Paces the stream so the failure window falls mid-stream.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(acks.await.unwrap(), sent.len(), "every send acked");
    assert_eq!(stored_order(&cluster, "flaky", "typist").await, sent);
    let m = cluster.worker(0).metrics().await;
    let retried = m.total("chat_worker_retries_total", &[]);
    println!("{retried} retries while Postgres refused inserts");
    assert!(retried > 0.0, "the failure window was hit");
}
