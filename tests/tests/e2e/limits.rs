//! Per-user and per-address limits: a client over one hears a clear error
//! code, and nobody else loses anything. Each test sets the limit it tests
//! low (the harness otherwise sets them out of the way).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    time::Duration,
};

use chat_client::{ClientOptions, ConnectOptions, Event};
use chat_proto::v1::{server_frame::Kind, Ack, Message};
use chat_protocol::codec::Encoding;
use chat_tests::{
    assert_gap_free, wait_for, Cluster, ClusterOptions, Frames, Session, ADMIN_TOKEN, STEP,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::http::Uri;

/// Sends `n` messages one at a time, each after the previous one's ack,
/// `every` apart; returns the acks and the room's messages seen meanwhile.
async fn send_steadily(
    session: &mut Session,
    prefix: &str,
    n: usize,
    every: Duration,
) -> (Vec<Ack>, Vec<Message>) {
    let (mut acks, mut seen) = (Vec::new(), Vec::new());
    for i in 0..n {
        let request_id = session
            .writer
            .send("room", &format!("{prefix}{i}"), "steady")
            .await
            .unwrap();
        loop {
            let frame = session.next_frame().await;
            match frame.kind {
                Some(Kind::Message(m)) => seen.push(m),
                Some(Kind::Ack(a)) if frame.request_id == request_id => {
                    acks.push(a);
                    break;
                }
                other => panic!("{prefix}: expected an ack or a message, got {other:?}"),
            }
        }
        // Pacing below the rate limit is what this sender is for.
        tokio::time::sleep(every).await;
    }
    (acks, seen)
}

/// The client_msg_ids stored for the room, once their number is `count`.
async fn stored_ids(cluster: &Cluster, count: usize) -> Vec<String> {
    wait_for("the room's messages to be stored", STEP, || async {
        let stored = cluster.stored("room").await;
        (stored.len() == count).then(|| stored.into_iter().map(|r| r.2).collect())
    })
    .await
}

/// A socket that keeps sending over its rate gets `rate_limited` for each
/// send over it (never stored), then, once the sends it accepted are
/// answered, is closed with 1008; another user in the room sends and
/// receives every message meanwhile, without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_socket_is_refused_then_closed_and_a_bystander_loses_nothing() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_CONNECTION", "5")
        .gateway_env("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_CONNECTION", "5")
        .gateway_env("CHAT_GATEWAY_LIMITS__RATE_LIMITED_CLOSE_AFTER", "20");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["flooder", "bystander"]).await;
    let mut flooder = cluster
        .gateway(0)
        .connect_with("flooder", Encoding::Proto)
        .await;
    let mut bystander = cluster.gateway(0).connect("bystander").await;
    flooder.join("room").await;
    bystander.join("room").await;

    // The bystander sends 4/s, under the rate, all through the flood.
    let steady = tokio::spawn(async move {
        let (acks, seen) = send_steadily(&mut bystander, "b", 12, Duration::from_millis(250)).await;
        (bystander, acks, seen)
    });
    let mut sent = Vec::new();
    for i in 0..300 {
        match flooder.writer.send("room", &format!("f{i}"), "flood").await {
            Ok(request_id) => sent.push(request_id),
            // The gateway closed the socket mid-flood.
            Err(_) => break,
        }
    }
    let index: HashMap<&str, usize> = sent
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut refused = Vec::new();
    let mut acked = HashSet::new();
    let close = loop {
        match tokio::time::timeout(STEP, flooder.reader.next()).await {
            Ok(Some(Ok(Event::Frame(frame)))) => match frame.kind {
                Some(Kind::Error(e)) => {
                    assert_eq!(e.code, "rate_limited", "{e:?}");
                    let at = index.get(frame.request_id.as_str());
                    refused.push(*at.expect("each refusal answers one of our sends"));
                }
                Some(Kind::Ack(ack)) => {
                    acked.insert(ack.client_msg_id);
                }
                Some(Kind::Message(_) | Kind::ReadMarker(_) | Kind::PresenceNow(_)) => {}
                other => panic!("flooder got {other:?}"),
            },
            Ok(Some(Ok(Event::Closed(frame)))) => break frame.expect("a close frame"),
            other => panic!("expected replies then a close, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("rate_limited"), "{close:?}");
    assert!(refused.len() >= 20, "{} refusals", refused.len());

    let (mut bystander, acks, mut seen) = steady.await.unwrap();
    assert_eq!(acks.len(), 12, "every bystander send acked");
    // The gateway read the flood up to the last refusal, then closed: of
    // those sends, exactly the ones not refused are stored.
    let last = *refused.iter().max().unwrap();
    let refused: HashSet<usize> = refused.into_iter().collect();
    let accepted: HashSet<String> = (0..=last)
        .filter(|i| !refused.contains(i))
        .map(|i| format!("f{i}"))
        .collect();
    assert!(accepted.len() >= 5, "the burst was accepted");
    let total_stored = accepted.len() + 12;
    let stored = stored_ids(&cluster, total_stored).await;
    let flood_stored: HashSet<String> = stored
        .iter()
        .filter(|id| id.starts_with('f'))
        .cloned()
        .collect();
    assert_eq!(flood_stored, accepted, "refused sends are never stored");
    assert_eq!(
        acked, accepted,
        "every send the gateway accepted is answered before it closes"
    );
    // The bystander saw every message of the room, in order, no gap.
    let missing = total_stored - seen.len();
    let (rest, _) = bystander.collect_messages(missing, STEP).await;
    seen.extend(rest);
    assert_gap_free(&seen, total_stored, "the bystander");

    let refusals = [("limit", "send_rate_connection")];
    let counted = cluster
        .gateway(0)
        .metric("chat_gateway_limit_refusals_total", &refusals)
        .await;
    assert!(counted >= 20.0, "{counted}");
    let closed = [("reason", "rate_limited")];
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_disconnects_total", &closed)
            .await,
        1.0
    );
}

/// A user's sockets share one bucket: what one socket spent, the other
/// cannot; another user is not touched, and the bucket refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_second_socket_shares_the_user_bucket() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_USER", "1")
        .gateway_env("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_USER", "3");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["alice", "bob"]).await;
    let mut alice = cluster.gateway(0).connect("alice").await;
    let mut alice_again = cluster
        .gateway(0)
        .connect_with("alice", Encoding::Proto)
        .await;
    let mut bob = cluster.gateway(0).connect("bob").await;
    for i in 0..3 {
        alice
            .send_and_wait("room", &format!("a1-{i}"), "x")
            .await
            .unwrap();
    }
    let refused = alice_again
        .send_and_wait("room", "a2-early", "x")
        .await
        .unwrap_err();
    assert_eq!(refused.code, "rate_limited");
    assert!(refused.message.contains("user"), "{}", refused.message);
    bob.send_and_wait("room", "bob-0", "x")
        .await
        .expect("another user has a bucket of their own");
    // Waits out the bucket's refill time (1/s): the refill is under test.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice_again
        .send_and_wait("room", "a2-later", "x")
        .await
        .expect("the bucket refilled");
    assert_eq!(
        stored_ids(&cluster, 5).await,
        ["a1-0", "a1-1", "a1-2", "bob-0", "a2-later"]
    );
    let refusals = [("limit", "send_rate_user")];
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_limit_refusals_total", &refusals)
            .await,
        1.0
    );
}

/// The client library does not retry a send refused with `rate_limited`
/// forever: after its attempts it hands the caller a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_reports_rate_limited_as_a_typed_error() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__SEND_RATE_PER_CONNECTION", "1")
        .gateway_env("CHAT_GATEWAY_LIMITS__SEND_BURST_PER_CONNECTION", "1");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["eager"]).await;
    let options = ClientOptions::new(
        [cluster.gateway(0).ws_url()],
        cluster.token("eager"),
        Encoding::Json,
    )
    .rate_limited_attempts(2);
    let (client, _messages) = chat_client::Client::connect(options);
    let first = client.submit("room", "c0", "x");
    let second = client.submit("room", "c1", "x");
    assert_eq!(first.await.unwrap().seq, 1);
    let err = second.await.unwrap_err();
    assert!(
        matches!(err, chat_client::ClientError::RateLimited(_)),
        "{err:?}"
    );
    assert_eq!(stored_ids(&cluster, 1).await, ["c0"]);
}

/// The status and JSON body of an upgrade request written by hand from
/// `from`, with `extra` header lines.
async fn upgrade_by_hand(
    cluster: &Cluster,
    user: &str,
    from: IpAddr,
    extra: &str,
) -> (u16, serde_json::Value) {
    let uri: Uri = cluster.gateway(0).ws_url().parse().unwrap();
    let mut tcp = chat_client::connect_from(from, &uri).await.unwrap();
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Authorization: Bearer {}\r\n{extra}\r\n",
        uri.authority().unwrap(),
        cluster.token(user)
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    let (head, body_len) = loop {
        let n = tokio::time::timeout(STEP, tcp.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed mid-response");
        response.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            break (text[..end].to_owned(), (end + 4, length));
        }
    };
    while response.len() < body_len.0 + body_len.1 {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        response.extend_from_slice(&chunk[..n]);
    }
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = &response[body_len.0..body_len.0 + body_len.1];
    let json = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

fn from(ip: &str, cluster: &Cluster, user: &str) -> ConnectOptions {
    ConnectOptions {
        local_addr: Some(ip.parse().unwrap()),
        ..cluster.gateway(0).connect_options(user, Encoding::Json)
    }
}

/// One socket per `(user, address)`.
async fn open_all(cluster: &Cluster, who: &[(&str, &str)]) -> Vec<Session> {
    let mut sockets = Vec::new();
    for (user, ip) in who {
        let opened = chat_client::connect(&from(ip, cluster, user)).await;
        let (w, r) = opened.unwrap_or_else(|e| panic!("{user} from {ip}: {e}"));
        sockets.push(Session::new(user, w, r));
    }
    sockets
}

/// Each socket still chats: joins, sends, and reads its own message back.
async fn all_still_chat(sockets: &mut [Session], tag: &str) {
    for (i, socket) in sockets.iter_mut().enumerate() {
        socket.join("room").await;
        socket
            .send_and_wait("room", &format!("{tag}-{i}"), "still here")
            .await
            .unwrap();
    }
}

/// A user's sockets beyond the cap are refused with 429 at the handshake,
/// with the usual JSON error body; the open ones keep working, and a
/// closed one frees its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_a_users_cap_are_refused_with_429_and_the_open_ones_carry_on() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_USER", "2");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["alice", "bob"]).await;
    let localhost: IpAddr = "127.0.0.1".parse().unwrap();
    let mut open = open_all(&cluster, &[("alice", "127.0.0.1"), ("alice", "127.0.0.1")]).await;
    let (status, body) = upgrade_by_hand(&cluster, "alice", localhost, "").await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "limit_exceeded", "{body}");
    assert!(body["message"].as_str().unwrap().contains("user"), "{body}");
    let refused =
        chat_client::connect(&cluster.gateway(0).connect_options("alice", Encoding::Json)).await;
    assert!(matches!(
        refused,
        Err(chat_client::ClientError::Refused(429))
    ));
    // Another user is not affected, and alice's open sockets carry on.
    open.extend(open_all(&cluster, &[("bob", "127.0.0.1")]).await);
    all_still_chat(&mut open, "open").await;
    // Counted before the slot frees up: the wait below may be refused a
    // few times while the gateway notices the close.
    let refusals = [("limit", "connections_per_user")];
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_limit_refusals_total", &refusals)
            .await,
        2.0
    );
    let result = [("result", "limit_exceeded")];
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_connects_total", &result)
            .await,
        2.0
    );
    // A closed socket frees its slot.
    open.remove(0).writer.close().await;
    wait_for("alice's slot to free up", STEP, || async {
        chat_client::connect(&cluster.gateway(0).connect_options("alice", Encoding::Json))
            .await
            .ok()
    })
    .await;
}

/// An address's sockets beyond the cap are refused with 429 whoever the
/// user, `X-Forwarded-For` is not believed unless configured, other
/// addresses are not affected and the open sockets keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_beyond_an_addresss_cap_are_refused_with_429_and_the_open_ones_carry_on() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_CONNECTIONS_PER_IP", "2");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["u1", "u2", "u3"]).await;
    let crowded: IpAddr = "127.0.0.2".parse().unwrap();
    let mut open = open_all(&cluster, &[("u1", "127.0.0.2"), ("u2", "127.0.0.2")]).await;
    for extra in ["", "X-Forwarded-For: 10.1.2.3\r\n"] {
        let (status, body) = upgrade_by_hand(&cluster, "u3", crowded, extra).await;
        assert_eq!(status, 429, "{extra}");
        assert_eq!(body["code"], "limit_exceeded", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("address"),
            "{body}"
        );
    }
    open.extend(open_all(&cluster, &[("u3", "127.0.0.3")]).await);
    all_still_chat(&mut open, "open").await;
    let refusals = [("limit", "connections_per_ip")];
    assert_eq!(
        cluster
            .gateway(0)
            .metric("chat_gateway_limit_refusals_total", &refusals)
            .await,
        2.0
    );
}

/// A user reading flat out (history pages, searches, room lists, over the
/// socket or HTTP) is refused `rate_limited` (429 over HTTP) beyond the
/// read rate, and nothing else: another user, and the service, read on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_reading_flat_out_is_rate_limited_and_others_read_on() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__READ_RATE_PER_USER", "2")
        .gateway_env("CHAT_GATEWAY_LIMITS__READ_BURST_PER_USER", "5");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["reader", "other"]).await;
    let gateway = cluster.gateway(0);
    let token = cluster.token("reader");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let (status, body) = gateway.get(&token, "/v1/rooms/room/messages").await;
        if status == 429 {
            assert_eq!(body["code"], "rate_limited");
        }
        statuses.push(status);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!((5..=6).contains(&ok), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 10 - ok);
    // The same bucket over the socket.
    let mut socket = gateway.connect_with("reader", Encoding::Proto).await;
    let ask = chat_proto::v1::client_frame::Kind::ListRooms(chat_proto::v1::ListRooms::default());
    match socket.ask(ask).await {
        Kind::Error(e) => assert_eq!(e.code, "rate_limited"),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    let (status, _) = gateway
        .get(&cluster.token("other"), "/v1/rooms/room/messages")
        .await;
    assert_eq!(status, 200, "another user reads on");
    let (status, _) = gateway.get(ADMIN_TOKEN, "/v1/rooms/room/messages").await;
    assert_eq!(status, 200, "the service is not a reader with a bucket");
    let refused = [("limit", "read_rate_user")];
    assert!(
        gateway
            .metric("chat_gateway_limit_refusals_total", &refused)
            .await
            >= 5.0
    );
}
