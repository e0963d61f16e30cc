//! The path of a message: send → JetStream → worker → Postgres → fan-out →
//! every member's socket, in seq order, exactly once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use chat_client::Writer;
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{assert_gap_free, Cluster, ClusterOptions, Frames, Session, STEP};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_acked_with_its_seq_and_delivered_to_members() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("lobby", &["alice", "bob"]).await;
    let mut alice = cluster.gateway(0).connect("alice").await;
    let mut bob = cluster
        .gateway(0)
        .connect_with("bob", Encoding::Proto)
        .await;
    assert_eq!(alice.join("lobby").await, 0);
    assert_eq!(bob.join("lobby").await, 0);

    let ack = alice.send_and_wait("lobby", "m-1", "hello").await.unwrap();
    assert_eq!(
        (ack.seq, ack.client_msg_id.as_str(), ack.room.as_str()),
        (1, "m-1", "lobby")
    );

    let (got, _) = bob.collect_messages(1, STEP).await;
    assert_eq!(got[0].body, "hello");
    assert_eq!(got[0].sender, "alice");
    assert_eq!(got[0].seq, 1);
    assert_eq!(got[0].id, ack.message_id);
    assert_eq!(cluster.stored("lobby").await.len(), 1);
}

/// Four clients over two gateways (JSON and protobuf mixed), two workers,
/// three senders, 2,000 messages: everyone sees seqs 1..=2000 once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_messages_over_two_gateways_and_two_workers_arrive_in_one_order() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    run_mixed_load(&cluster, 2000, |_| {}).await;
}

/// Sends a client keeps in flight, well under the gateway's per-socket cap.
const WINDOW: usize = 64;

/// Runs the 4-client, 3-sender load and checks every guarantee. `midway`
/// is called once half of the messages were sent (to inject a fault).
// Longer than 80 lines on purpose: one scenario read top to bottom, each
// step next to what it checks; split up, it would read as scattered fragments.
pub async fn run_mixed_load(cluster: &Cluster, total: usize, midway: impl FnOnce(usize) + Send) {
    let users = ["u0", "u1", "u2", "u3"];
    cluster.create_room("big", &users).await;
    let mut readers = Vec::new();
    let mut writers: Vec<Writer> = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let encoding = if i % 2 == 0 {
            Encoding::Json
        } else {
            Encoding::Proto
        };
        let mut session = cluster.gateway(i % 2).connect_with(user, encoding).await;
        session.join("big").await;
        let (w, r) = session.into_parts();
        writers.push(w);
        readers.push(r);
    }
    // Each sender keeps at most WINDOW sends awaiting their ack.
    let windows: Vec<Arc<Semaphore>> = (0..3).map(|_| Arc::new(Semaphore::new(WINDOW))).collect();
    let collectors: Vec<_> = readers
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            let acks = if i < 3 {
                (0..total).filter(|n| n % 3 == i).count()
            } else {
                0
            };
            let window = windows.get(i).cloned();
            tokio::spawn(async move {
                r.collect(total, acks, window, Duration::from_secs(120))
                    .await
            })
        })
        .collect();
    // Three senders; the fourth only listens. Sends are pipelined.
    let mut sent: HashMap<String, String> = HashMap::new();
    let mut midway = Some(midway);
    for n in 0..total {
        let sender = n % 3;
        let id = format!("{}-{n}", users[sender]);
        windows[sender].acquire().await.unwrap().forget();
        writers[sender]
            .send("big", &id, &format!("body {n}"))
            .await
            .unwrap();
        sent.insert(id, users[sender].to_string());
        if n == total / 2 {
            if let Some(f) = midway.take() {
                f(n);
            }
        }
    }
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut all = Vec::new();
    for (i, c) in collectors.into_iter().enumerate() {
        let (messages, acks) = c.await.expect("collector panicked");
        assert_gap_free(&messages, total, users[i]);
        for (_, ack) in acks {
            assert!(
                acked.insert(ack.client_msg_id.clone(), ack.seq).is_none(),
                "acked twice: {}",
                ack.client_msg_id
            );
        }
        all.push(messages);
    }
    // Every client saw the same message at each seq.
    for m in &all[1..] {
        for (a, b) in m.iter().zip(&all[0]) {
            assert_eq!((a.seq, &a.id), (b.seq, &b.id));
        }
    }
    // Every send acked, with the seq it was stored under.
    let by_id: HashMap<&str, u64> = all[0]
        .iter()
        .map(|m| (m.client_msg_id.as_str(), m.seq))
        .collect();
    assert_eq!(acked.len(), total, "every send is acked");
    for (id, seq) in &acked {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(seq),
            "ack of {id} carries its stored seq"
        );
    }
    // Postgres holds exactly these rows.
    let stored = cluster.stored("big").await;
    assert_eq!(stored.len(), total);
    for (i, (seq, sender, id, _)) in stored.iter().enumerate() {
        assert_eq!(*seq, i as i64 + 1);
        assert_eq!(sent.get(id), Some(sender));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_client_msg_id_is_stored_once_and_acked_with_the_same_seq() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("dup", &["carol"]).await;
    let mut carol = cluster.gateway(0).connect("carol").await;
    let first = carol.send_and_wait("dup", "same-id", "once").await.unwrap();
    let again = carol.send_and_wait("dup", "same-id", "once").await.unwrap();
    assert_eq!(
        (again.seq, &again.message_id),
        (first.seq, &first.message_id)
    );
    carol.writer.close().await;

    // After a reconnect, on the other gateway, in the other encoding.
    let mut carol_again = cluster
        .gateway(1)
        .connect_with("carol", Encoding::Proto)
        .await;
    let third = carol_again
        .send_and_wait("dup", "same-id", "once")
        .await
        .unwrap();
    assert_eq!(
        (third.seq, &third.message_id),
        (first.seq, &first.message_id)
    );
    let next = carol_again
        .send_and_wait("dup", "other-id", "twice")
        .await
        .unwrap();
    assert_eq!(next.seq, first.seq + 1);
    assert_eq!(cluster.stored("dup").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_resumes_from_its_last_seq_without_gaps() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("resume", &["dave", "erin"]).await;
    let mut dave = cluster.gateway(0).connect("dave").await;
    let mut erin = cluster
        .gateway(0)
        .connect_with("erin", Encoding::Proto)
        .await;
    erin.join("resume").await;
    for n in 0..5 {
        dave.send_and_wait("resume", &format!("a{n}"), "x")
            .await
            .unwrap();
    }
    let (seen, _) = erin.collect_messages(5, STEP).await;
    let last = seen.last().unwrap().seq;
    drop(erin);
    // Erin is away while ten more arrive.
    for n in 0..10 {
        dave.send_and_wait("resume", &format!("b{n}"), "y")
            .await
            .unwrap();
    }
    let mut erin = cluster.gateway(1).connect("erin").await;
    let head = erin.join_since("resume", last).await;
    assert_eq!(head, 15);
    for n in 0..3 {
        dave.send_and_wait("resume", &format!("c{n}"), "z")
            .await
            .unwrap();
    }
    let (rest, _) = erin.collect_messages(13, STEP).await;
    let seqs: Vec<u64> = rest.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (6..=18).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_trade_their_token_for_a_one_time_ticket() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("web", &["frank"]).await;
    let http = reqwest::Client::new();
    let response = http
        .post(cluster.gateway(0).url("/v1/ws/ticket"))
        .bearer_auth(cluster.token("frank"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ticket = response.json::<serde_json::Value>().await.unwrap()["ticket"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut options = cluster.gateway(0).connect_options("frank", Encoding::Json);
    options.credentials = chat_client::Credentials::Ticket(ticket);
    options.origin = Some(chat_tests::cluster::ALLOWED_ORIGIN.into());
    let (w, r) = chat_client::connect(&options)
        .await
        .expect("ticket accepted");
    let ack = Session::new("frank", w, r)
        .send_and_wait("web", "t1", "via ticket")
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    // The ticket was used up.
    let again = chat_client::connect(&options)
        .await
        .err()
        .expect("reuse refused");
    assert!(
        matches!(again, chat_client::ClientError::Refused(401)),
        "{again:?}"
    );
    // The ticket endpoint itself wants a valid token.
    let response = http
        .post(cluster.gateway(0).url("/v1/ws/ticket"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// After `left`, nothing of the room reaches the socket, though the room
/// goes on; joining again brings it back from where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_leave_nothing_of_the_room_is_delivered() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("l", &["stay", "go"]).await;
    let mut go = cluster.gateway(0).connect("go").await;
    let mut stay = cluster
        .gateway(0)
        .connect_with("stay", Encoding::Proto)
        .await;
    go.join("l").await;
    stay.join("l").await;
    stay.send_and_wait("l", "m1", "before").await.unwrap();
    assert_eq!(go.collect_messages(1, STEP).await.0[0].seq, 1);
    let id = go.writer.leave("l").await.unwrap();
    let frame = go.next_frame().await;
    assert_eq!(frame.request_id, id);
    assert!(matches!(frame.kind, Some(Kind::Left(_))));
    for n in 2..=4 {
        stay.send_and_wait("l", &format!("m{n}"), "after")
            .await
            .unwrap();
    }
    // The next frame the leaver gets is the answer to its ping: nothing of
    // the room came in between.
    let ping = go.writer.ping().await.unwrap();
    let frame = go.next_frame().await;
    assert_eq!(
        frame.request_id, ping,
        "got {:?} instead of the pong",
        frame.kind
    );
    go.writer.join("l", Some(1)).await.unwrap();
    let (back, _) = go.collect_messages(3, STEP).await;
    assert_eq!(back.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3, 4]);
}
