//! Every connection is bounded in time and number: handshakes, silent
//! peers, peers that stop reading, sockets per gateway, rooms per socket.

use std::time::Duration;

use chat_client::ClientError;
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{wait_for, Cluster, ClusterOptions, Frames, STEP};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

/// How long the gateway keeps a raw TCP connection that sent `prefix`.
async fn held_for(cluster: &Cluster, prefix: &[u8]) -> Duration {
    let mut tcp = TcpStream::connect(("127.0.0.1", cluster.gateways[0].port))
        .await
        .unwrap();
    tcp.write_all(prefix).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(STEP, tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "expected the gateway to hang up, got {read:?}"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_that_never_completes_is_dropped_after_the_timeout() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__HANDSHAKE_TIMEOUT_MS", "1000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["ok"]).await;
    for (what, prefix) in [
        ("nothing", &b""[..]),
        ("half a request line", &b"GET /v1/ws HT"[..]),
        (
            "headers without their end",
            &b"GET /v1/ws HTTP/1.1\r\nHost: x\r\n"[..],
        ),
    ] {
        let held = held_for(&cluster, prefix).await;
        println!("{what}: dropped after {held:?}");
        assert!(
            held >= Duration::from_millis(800) && held < Duration::from_secs(5),
            "{what}: held {held:?}"
        );
    }
    let mut ok = cluster.gateway(0).connect("ok").await;
    ok.send_and_wait("room", "m1", "still open for business")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_answers_no_ping_is_closed_and_one_that_does_stays() {
    // A pong timeout shorter than the ping interval, as in production
    // (30 s and 10 s): a quiet socket must be pinged before it is judged.
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__PING_INTERVAL_MS", "500")
        .gateway_env("CHAT_GATEWAY_LIMITS__PONG_TIMEOUT_MS", "200");
    let cluster = Cluster::start(options).await;
    let mut silent = cluster.gateway(0).connect("mute").await;
    let mut chatty = cluster
        .gateway(0)
        .connect_with("chatty", Encoding::Proto)
        .await;
    // The chatty client speaks once, then only reads (its library answers
    // pings) for many ping intervals.
    let id = chatty.writer.ping().await.unwrap();
    assert_eq!(chatty.next_frame().await.request_id, id);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        match tokio::time::timeout(Duration::from_millis(50), chatty.reader.next()).await {
            Err(_) => {}
            Ok(other) => panic!("the chatty client got {other:?}"),
        }
    }
    let id = chatty.writer.ping().await.unwrap();
    let frame = chatty.next_frame().await;
    assert_eq!(frame.request_id, id);
    assert!(matches!(frame.kind, Some(Kind::Pong(_))));
    // The silent one read nothing, so it answered nothing: closed with
    // `timeout` (4000). Its own reads now fail on the answers to the pings
    // its library tries to send, so the gateway's count is the witness.
    let m = cluster.gateway(0).metrics().await;
    let timed_out = m.total("chat_gateway_disconnects_total", &[("reason", "timeout")]);
    assert_eq!(timed_out, 1.0);
    assert_eq!(m.total("chat_gateway_connections", &[]), 1.0);
    let gone = tokio::time::timeout(STEP, async {
        loop {
            match silent.reader.next().await {
                Some(Ok(chat_client::Event::Frame(_))) => continue,
                Some(Ok(chat_client::Event::Closed(frame))) => {
                    return frame.map(|f| u16::from(f.code));
                }
                _ => return None,
            }
        }
    })
    .await
    .expect("the silent socket ends");
    assert!(matches!(gone, None | Some(4000)), "closed with {gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_after_the_write_timeout() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__WRITE_TIMEOUT_MS", "1000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("big", &["stuck"]).await;
    let pg = cluster.postgres.client().await;
    pg.execute(
        "INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at) \
         SELECT 'big', g, gen_random_uuid(), 'x', 'f' || g, repeat('x', 16000), now() \
         FROM generate_series(1, 500) g",
        &[],
    )
    .await
    .unwrap();
    pg.execute("UPDATE rooms SET last_seq = 500 WHERE id = 'big'", &[])
        .await
        .unwrap();
    // Asks for 8 MB and reads none of it: the gateway's writes block.
    let stuck = cluster.gateway(0).connect("stuck").await;
    let mut w = stuck.writer;
    // The gateway counts a socket once its session starts, a moment after
    // the handshake: wait for that, or a count of 0 means nothing yet.
    wait_for("the socket to be counted", STEP, || async {
        (cluster
            .gateway(0)
            .metric("chat_gateway_connections", &[])
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    w.join("big", Some(0)).await.unwrap();
    let started = Instant::now();
    wait_for(
        "the stuck socket to be closed",
        Duration::from_secs(10),
        || async {
            (cluster
                .gateway(0)
                .metric("chat_gateway_connections", &[])
                .await
                == 0.0)
                .then_some(())
        },
    )
    .await;
    println!("closed {:?} after the join", started.elapsed());
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_write_timeouts_total", &[])
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_the_gateways_maximum_are_refused_with_503() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS", "2");
    let cluster = Cluster::start(options).await;
    let first = cluster.gateway(0).connect("a").await;
    let _second = cluster.gateway(0).connect("b").await;
    let refused =
        chat_client::connect(&cluster.gateway(0).connect_options("c", Encoding::Json)).await;
    assert!(
        matches!(refused, Err(ClientError::Refused(503))),
        "{:?}",
        refused.err()
    );
    let at_capacity = [("result", "at_capacity")];
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_connects_total", &at_capacity)
            .await,
        1.0
    );
    drop(first);
    wait_for("a slot to free up", STEP, || async {
        (cluster
            .gateway(0)
            .metric("chat_gateway_connections", &[])
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    cluster.gateway(0).connect("c").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_may_join_only_so_many_rooms_at_once() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_ROOMS_PER_CONNECTION", "2");
    let cluster = Cluster::start(options).await;
    for room in ["a", "b", "c"] {
        cluster.create_room(room, &["u"]).await;
    }
    let mut user = cluster.gateway(0).connect("u").await;
    user.join("a").await;
    user.join("b").await;
    let id = user.writer.join("c", None).await.unwrap();
    let (rid, e) = user.next_error().await;
    assert_eq!((rid, e.code.as_str()), (id, "limit_exceeded"));
    // Joining a room already joined is not a new one.
    user.join("b").await;
    user.writer.leave("a").await.unwrap();
    assert!(matches!(user.next_frame().await.kind, Some(Kind::Left(_))));
    user.join("c").await;
    let ack = user.send_and_wait("c", "m", "in c").await.unwrap();
    assert_eq!(ack.seq, 1);
}
