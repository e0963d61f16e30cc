//! The client library's `Client` against a real cluster: what an
//! application gets when gateways die and workers stall.

use std::time::Duration;

use chat_client::{Client, ClientEncoding, ClientError, ClientOptions, Message, Messages, RoomApi};
use chat_tests::{cluster::ADMIN_TOKEN, wait_for, Cluster, ClusterOptions, STEP};
use futures::future::join_all;

/// A client of `user` that tries the given gateways in turn, with short
/// backoff so that the tests do not wait on it.
fn client(
    cluster: &Cluster,
    gateways: &[usize],
    user: &str,
    encoding: ClientEncoding,
) -> (Client, Messages) {
    let urls: Vec<String> = gateways
        .iter()
        .map(|&g| cluster.gateway(g).ws_url())
        .collect();
    let options = ClientOptions::new(urls, cluster.token(user), encoding)
        .backoff(Duration::from_millis(50), Duration::from_secs(1));
    Client::connect(options)
}

fn room_api(cluster: &Cluster) -> RoomApi {
    RoomApi::new(cluster.gateway(0).url(""), ADMIN_TOKEN)
}

/// The next `n` messages the application is handed.
async fn take(messages: &mut Messages, n: usize) -> Vec<Message> {
    let mut taken = Vec::with_capacity(n);
    while taken.len() < n {
        match tokio::time::timeout(STEP, messages.recv()).await {
            Ok(Some(m)) => taken.push(m),
            other => panic!("got {} of {n} messages, then {other:?}", taken.len()),
        }
    }
    taken
}

/// Nothing more arrives: no duplicate trails the last message.
async fn assert_quiet(messages: &mut Messages) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), messages.recv()).await {
        panic!("unexpected extra message seq {}", m.seq);
    }
}

fn seqs(messages: &[Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn one_to(n: usize) -> Vec<u64> {
    (1..=n as u64).collect()
}

/// The client's gateway dies (SIGKILL) while it pipelines sends: it
/// reconnects to the other gateway, rejoins and resends what was not
/// acked, in the order first sent. Every send is acked with the seq of its
/// place in that order, stored once, and seen once by the sender itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_gateway_dies_mid_stream_finishes_on_another_in_order() {
    const TOTAL: usize = 1000;
    let mut cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    assert!(room_api(&cluster).create_room("a", &["ada"]).await.unwrap());
    let (client, mut messages) = client(&cluster, &[1, 0], "ada", ClientEncoding::Json);
    client.join("a", None).await.unwrap();

    let pending: Vec<_> = (0..TOTAL)
        .map(|n| client.submit("a", &format!("m{n}"), "x"))
        .collect();
    let mut seen = take(&mut messages, 50).await;
    cluster.gateways[1].process.kill();
    let stored_at_kill = cluster.stored("a").await.len();
    assert!(stored_at_kill < TOTAL, "the kill came mid-stream");

    let acks = tokio::time::timeout(Duration::from_secs(60), join_all(pending))
        .await
        .expect("every send acked in time");
    for (n, ack) in acks.into_iter().enumerate() {
        let ack = ack.unwrap_or_else(|e| panic!("send m{n}: {e}"));
        assert_eq!(ack.client_msg_id, format!("m{n}"));
        assert_eq!(ack.seq, n as u64 + 1, "m{n} stored in the order sent");
    }
    let stored = cluster.stored("a").await;
    let ids: Vec<String> = stored.into_iter().map(|(_, _, id, _)| id).collect();
    let sent: Vec<String> = (0..TOTAL).map(|n| format!("m{n}")).collect();
    assert_eq!(ids, sent, "stored once each, in the order sent");

    seen.extend(take(&mut messages, TOTAL - seen.len()).await);
    assert_eq!(seqs(&seen), one_to(TOTAL), "the app saw every seq once");
    assert_quiet(&mut messages).await;
}

/// The worker hangs: the gateway answers the sends with `timeout`, the
/// client resends them (same ids), and its socket is dropped by a gateway
/// restart on top. Once the worker is back, every send is acked once, in
/// the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_resent_until_acked_while_the_worker_hangs() {
    const TOTAL: usize = 40;
    let mut cluster = Cluster::start(
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "300"),
    )
    .await;
    room_api(&cluster).create_room("b", &["bo"]).await.unwrap();
    let (client, mut messages) = client(&cluster, &[0], "bo", ClientEncoding::Proto);
    client.join("b", None).await.unwrap();

    cluster.workers[0].process.pause();
    let pending: Vec<_> = (0..TOTAL)
        .map(|n| client.submit("b", &format!("b{n}"), "x"))
        .collect();
    // Rounds of `timeout` and resends...
    let resent = [("type", "send")];
    wait_for("the client to resend on timeout", STEP, || async {
        let sends_in = cluster
            .gateway(0)
            .metric("chat_gateway_frames_in_total", &resent)
            .await;
        (sends_in > TOTAL as f64).then_some(())
    })
    .await;
    // ...then the socket drops under it.
    cluster.restart_gateway(0).await;
    wait_for("the client to reconnect", STEP, || async {
        let sockets = cluster
            .gateway(0)
            .metric("chat_gateway_connections", &[])
            .await;
        (sockets == 1.0).then_some(())
    })
    .await;
    cluster.workers[0].process.resume();

    let acks = tokio::time::timeout(Duration::from_secs(60), join_all(pending))
        .await
        .expect("every send acked in time");
    for (n, ack) in acks.into_iter().enumerate() {
        let ack = ack.unwrap_or_else(|e| panic!("send b{n}: {e}"));
        assert_eq!(ack.seq, n as u64 + 1, "b{n} stored in the order sent");
    }
    let stored = cluster.stored("b").await;
    assert_eq!(stored.len(), TOTAL, "each send stored once");
    assert_eq!(seqs(&take(&mut messages, TOTAL).await), one_to(TOTAL));
    assert_quiet(&mut messages).await;
}

/// A reader's gateway dies while a writer on the other gateway keeps
/// sending: the reader reconnects there, rejoins with its last seq and
/// sees every message exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_resumes_on_another_gateway_without_gap_or_duplicate() {
    const TOTAL: usize = 600;
    let mut cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    room_api(&cluster)
        .create_room("c", &["writer", "reader"])
        .await
        .unwrap();
    let (reader, mut inbox) = client(&cluster, &[1, 0], "reader", ClientEncoding::Proto);
    reader.join("c", None).await.unwrap();
    let (writer, _writer_inbox) = client(&cluster, &[0], "writer", ClientEncoding::Json);

    let pending: Vec<_> = (0..TOTAL)
        .map(|n| writer.submit("c", &format!("c{n}"), "x"))
        .collect();
    let mut seen = take(&mut inbox, 30).await;
    cluster.gateways[1].process.kill();
    seen.extend(take(&mut inbox, TOTAL - seen.len()).await);
    assert_eq!(
        seqs(&seen),
        one_to(TOTAL),
        "one order, no gap, no duplicate"
    );
    assert_quiet(&mut inbox).await;
    for ack in join_all(pending).await {
        ack.unwrap();
    }
    assert_eq!(cluster.stored("c").await.len(), TOTAL);
}

/// The admin client manages membership: a removed member can no longer
/// join, an added one can; a bad admin token is refused with 401. A client
/// whose token is refused gives up instead of retrying forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_client_manages_members_and_a_refused_client_gives_up() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let admin = room_api(&cluster);
    assert!(admin.create_room("d", &["dee"]).await.unwrap());
    assert!(
        !admin.create_room("d", &[]).await.unwrap(),
        "exists already"
    );
    admin.add_member("d", "dum").await.unwrap();
    let (dum, _inbox) = client(&cluster, &[0], "dum", ClientEncoding::Json);
    dum.join("d", None).await.unwrap();
    dum.send("d", "hello").await.unwrap();

    admin.remove_member("d", "dee").await.unwrap();
    let (dee, _inbox) = client(&cluster, &[0], "dee", ClientEncoding::Json);
    let refused = dee.join("d", None).await.unwrap_err();
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");

    let wrong = RoomApi::new(cluster.gateway(0).url(""), "not-the-token");
    match wrong.create_room("e", &[]).await {
        Err(chat_client::RoomApiError::Refused { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }

    let (refused, mut inbox) = Client::connect(ClientOptions::new(
        [cluster.gateway(0).ws_url()],
        "not-a-jwt",
        ClientEncoding::Json,
    ));
    let err = refused.join("d", None).await.unwrap_err();
    assert!(matches!(err, ClientError::Stopped(_)), "{err}");
    assert!(inbox.recv().await.is_none(), "the message stream ends");
}
