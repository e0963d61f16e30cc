//! Server publish (`POST /v1/rooms/{room}/messages`): a trusted backend
//! posts as a member with the service token. Its messages take a socket's
//! path and keep its promises (committed once per Idempotency-Key, in seq
//! order among socket sends, on two gateways and two workers, to members of
//! both encodings), bad input is refused with its code and stores nothing,
//! and a bot's burst is not held to people's send rates.

use std::time::Instant;

use chat_protocol::codec::Encoding;
use chat_tests::{
    assert_gap_free, cluster::ADMIN_TOKEN, wait_for, Cluster, ClusterOptions, Frames, Session, STEP,
};
use futures::{stream, StreamExt};
use serde_json::{json, Value};

/// A publish through gateway `gateway`: the status and the JSON answer.
/// `token` and `key` are left out when `None`.
async fn publish(
    http: &reqwest::Client,
    cluster: &Cluster,
    gateway: usize,
    token: Option<&str>,
    key: Option<&str>,
    room: &str,
    body: Value,
) -> (u16, Value) {
    let path = format!("/v1/rooms/{room}/messages");
    let mut request = http.post(cluster.gateway(gateway).url(&path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A publish as the service with `key` and sender `bot`, which must be
/// answered 201: the answer.
async fn publish_ok(
    http: &reqwest::Client,
    cluster: &Cluster,
    gateway: usize,
    room: &str,
    key: &str,
    body: &str,
) -> Value {
    let message = json!({ "sender": "bot", "body": body });
    let (status, answer) = publish(
        http,
        cluster,
        gateway,
        Some(ADMIN_TOKEN),
        Some(key),
        room,
        message,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["room"], room);
    assert!(answer["messageId"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert!(answer["serverTsMs"].as_i64().is_some_and(|ts| ts > 0));
    assert!(answer["seq"].as_u64().is_some(), "{answer}");
    answer
}

fn seq(answer: &Value) -> u64 {
    answer["seq"].as_u64().expect("a seq")
}

/// Members `u0`..`u3`, two on each gateway, one of each encoding per
/// gateway, joined to `room`; and the room's head when they joined.
async fn members(cluster: &Cluster, room: &str) -> (Vec<Session>, u64) {
    let mut sessions = Vec::new();
    let mut head = 0;
    for (i, user) in ["u0", "u1", "u2", "u3"].into_iter().enumerate() {
        let encoding = if i % 2 == 0 {
            Encoding::Json
        } else {
            Encoding::Proto
        };
        let mut session = cluster.gateway(i / 2).connect_with(user, encoding).await;
        head = session.join(room).await;
        sessions.push(session);
    }
    (sessions, head)
}

/// The room's stored chat messages (member events left out).
async fn chat_rows(cluster: &Cluster, room: &str) -> Vec<(i64, String, String, String)> {
    let events: Vec<i64> = cluster
        .postgres
        .client()
        .await
        .query(
            "SELECT seq FROM messages WHERE room_id = $1 AND kind <> ''",
            &[&room],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut rows = cluster.stored(room).await;
    rows.retain(|row| !events.contains(&row.0));
    rows
}

/// Two sockets send while a backend publishes through both gateways, one
/// publish after another: every member (both gateways, both encodings)
/// sees one order without gap, each publish answered with its stored seq,
/// the backend's messages in the order it published them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_arrive_in_order_among_socket_sends() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster
        .create_room("lobby", &["u0", "u1", "u2", "u3", "bot"])
        .await;
    let (mut sessions, head) = members(&cluster, "lobby").await;
    let (per_socket, published) = (60, 60);
    // Sockets of their own, so that the members' sockets read every message.
    let mut senders = Vec::new();
    for (gateway, user) in [(0, "u0"), (1, "u2")] {
        let mut socket = cluster.gateway(gateway).connect(user).await;
        senders.push(tokio::spawn(async move {
            for n in 0..per_socket {
                socket
                    .send_and_wait("lobby", &format!("s{n}"), "from a socket")
                    .await
                    .unwrap();
            }
        }));
    }
    let http = reqwest::Client::new();
    let mut seqs = Vec::new();
    for n in 0..published {
        let key = format!("pub-{n}");
        let answer = publish_ok(&http, &cluster, n % 2, "lobby", &key, &format!("bot {n}")).await;
        seqs.push(seq(&answer));
    }
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "one publish after another: increasing seqs"
    );
    for sender in senders {
        sender.await.unwrap();
    }
    let total = 2 * per_socket + published;
    let mut orders = Vec::new();
    for (i, session) in sessions.iter_mut().enumerate() {
        let (mut messages, _) = session.collect(total, 0, None, STEP * 4).await;
        let bot: Vec<(u64, String)> = messages
            .iter()
            .filter(|m| m.sender == "bot")
            .map(|m| (m.seq, m.body.clone()))
            .collect();
        messages.iter_mut().for_each(|m| m.seq -= head);
        assert_gap_free(&messages, total, &format!("member {i}"));
        let expected: Vec<(u64, String)> = seqs
            .iter()
            .enumerate()
            .map(|(n, &seq)| (seq, format!("bot {n}")))
            .collect();
        assert_eq!(
            bot, expected,
            "member {i}: the backend's messages at their seqs"
        );
        orders.push(messages.into_iter().map(|m| m.id).collect::<Vec<_>>());
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "one order for all");
    assert_eq!(chat_rows(&cluster, "lobby").await.len(), total);
}

/// The same Idempotency-Key again, through the other gateway, and twice
/// at once: stored once, every answer the first one (a different body
/// changes nothing: the key names the message); members see it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_publish_is_stored_once_and_answered_with_the_same_seq() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster
        .create_room("lobby", &["u0", "u1", "u2", "u3", "bot"])
        .await;
    let (mut sessions, head) = members(&cluster, "lobby").await;
    let http = reqwest::Client::new();
    let first = publish_ok(&http, &cluster, 0, "lobby", "once", "hello").await;
    assert_eq!(seq(&first), head + 1);
    let again = publish_ok(&http, &cluster, 1, "lobby", "once", "hello").await;
    assert_eq!(again, first, "a retry is answered as the first publish was");
    let (a, b) = tokio::join!(
        publish_ok(&http, &cluster, 0, "lobby", "once", "hello"),
        publish_ok(&http, &cluster, 1, "lobby", "once", "another body"),
    );
    assert_eq!((&a, &b), (&first, &first));
    let next = publish_ok(&http, &cluster, 1, "lobby", "twice", "next").await;
    assert_eq!(seq(&next), head + 2, "the retries took no seq");

    let rows = chat_rows(&cluster, "lobby").await;
    let bodies: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(bodies, ["hello", "next"]);
    for (i, session) in sessions.iter_mut().enumerate() {
        let (messages, _) = session.collect_messages(2, STEP).await;
        let seen: Vec<(u64, &str)> = messages.iter().map(|m| (m.seq, m.body.as_str())).collect();
        assert_eq!(
            seen,
            [(head + 1, "hello"), (head + 2, "next")],
            "member {i}"
        );
        assert_eq!(messages[0].id, first["messageId"]);
    }
}

/// Every bad publish gets its code; none is stored, takes a seq or reaches
/// a member, and a good publish after them is the room's next message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_publishes_are_refused_with_their_code_and_store_nothing() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster
        .create_room("lobby", &["u0", "u1", "u2", "u3", "bot", "mute"])
        .await;
    let revoke = reqwest::Client::new()
        .put(
            cluster
                .gateway(0)
                .url("/v1/rooms/lobby/members/mute/access"),
        )
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "revoke": ["can_send_messages"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let (mut sessions, head) = members(&cluster, "lobby").await;
    let before = cluster.stored("lobby").await;
    let user = cluster.token("bot");
    let admin = Some(ADMIN_TOKEN);
    let good = json!({ "sender": "bot", "body": "hi" });
    let as_bot = |body: &str| json!({ "sender": "bot", "body": body });
    let cases = [
        ("no token", None, "lobby", good.clone(), 401, "unauthorized"),
        (
            "a bad token",
            Some("not-a-token"),
            "lobby",
            good.clone(),
            401,
            "unauthorized",
        ),
        (
            "a user's JWT",
            Some(user.as_str()),
            "lobby",
            good.clone(),
            403,
            "forbidden",
        ),
        (
            "an unknown room",
            admin,
            "nowhere",
            good.clone(),
            404,
            "not_found",
        ),
        (
            "a bad room id",
            admin,
            "bad.room",
            good.clone(),
            400,
            "invalid_argument",
        ),
        (
            "a non-member",
            admin,
            "lobby",
            json!({ "sender": "zed", "body": "hi" }),
            403,
            "forbidden",
        ),
        (
            "a member who may not send",
            admin,
            "lobby",
            json!({ "sender": "mute", "body": "hi" }),
            403,
            "forbidden",
        ),
        (
            "a bad sender id",
            admin,
            "lobby",
            json!({ "sender": "b o t", "body": "hi" }),
            400,
            "invalid_argument",
        ),
        (
            "an oversize body",
            admin,
            "lobby",
            as_bot(&"x".repeat(16_385)),
            400,
            "invalid_argument",
        ),
        (
            "a NUL",
            admin,
            "lobby",
            as_bot("a\u{0}b"),
            400,
            "invalid_argument",
        ),
        (
            "no sender",
            admin,
            "lobby",
            json!({ "body": "hi" }),
            400,
            "invalid_argument",
        ),
        (
            "replyTo (not yet)",
            admin,
            "lobby",
            json!({ "sender": "bot", "body": "hi", "replyTo": "x" }),
            400,
            "invalid_argument",
        ),
    ];
    let http = reqwest::Client::new();
    for (n, (what, token, room, body, status, code)) in cases.into_iter().enumerate() {
        let key = format!("bad-{n}");
        let (got, answer) = publish(&http, &cluster, n % 2, token, Some(&key), room, body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{what}: {answer}"
        );
    }
    for (what, key) in [
        ("no Idempotency-Key", None),
        ("an empty one", Some("")),
        ("one with a space", Some("a b")),
    ] {
        let (got, answer) = publish(&http, &cluster, 0, admin, key, "lobby", good.clone()).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (400, Some("invalid_argument")),
            "{what}: {answer}"
        );
    }
    assert_eq!(cluster.stored("lobby").await, before, "nothing stored");
    assert!(cluster.stored("nowhere").await.is_empty());

    let after = publish_ok(&http, &cluster, 1, "lobby", "good", "after").await;
    assert_eq!(seq(&after), head + 1, "no seq was taken");
    for (i, session) in sessions.iter_mut().enumerate() {
        let (messages, _) = session.collect_messages(1, STEP).await;
        assert_eq!(
            (messages[0].seq, messages[0].body.as_str()),
            (head + 1, "after"),
            "member {i}"
        );
    }
}

/// Gateways holding people to one send a second: a backend's 500
/// publishes, 50 at a time through both gateways, are all stored, none
/// `rate_limited`, and reach every member in order; a socket of the same
/// sender meanwhile is held to the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_500_publishes_is_not_held_to_the_send_rates() {
    let mut options = ClusterOptions::new(2, 2);
    for (name, value) in [
        ("SEND_RATE_PER_CONNECTION", "1"),
        ("SEND_BURST_PER_CONNECTION", "1"),
        ("SEND_RATE_PER_USER", "1"),
        ("SEND_BURST_PER_USER", "1"),
    ] {
        options = options.gateway_env(&format!("CHAT_GATEWAY_LIMITS__{name}"), value);
    }
    let cluster = Cluster::start(options).await;
    cluster
        .create_room("lobby", &["u0", "u1", "u2", "u3", "bot"])
        .await;
    let (mut sessions, head) = members(&cluster, "lobby").await;
    let http = reqwest::Client::new();
    let total = 500;
    let started = Instant::now();
    let answers: Vec<(u16, Value)> = stream::iter(0..total)
        .map(|n| {
            let (http, cluster) = (&http, &cluster);
            async move {
                let body = json!({ "sender": "bot", "body": format!("burst {n}") });
                let key = format!("burst-{n}");
                publish(
                    http,
                    cluster,
                    n % 2,
                    Some(ADMIN_TOKEN),
                    Some(&key),
                    "lobby",
                    body,
                )
                .await
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    let elapsed = started.elapsed();
    println!(
        "{total} publishes in {elapsed:?}: {:.0}/s",
        total as f64 / elapsed.as_secs_f64()
    );
    let mut seqs: Vec<u64> = answers
        .iter()
        .map(|(status, answer)| {
            assert_eq!(*status, 201, "{answer}");
            seq(answer)
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (head + 1..=head + total as u64).collect::<Vec<_>>());
    assert_eq!(chat_rows(&cluster, "lobby").await.len(), total);
    for (i, session) in sessions.iter_mut().enumerate() {
        let (mut messages, _) = session.collect_messages(total, STEP * 4).await;
        messages.iter_mut().for_each(|m| m.seq -= head);
        assert_gap_free(&messages, total, &format!("member {i}"));
    }

    let mut bot = cluster.gateway(0).connect("bot").await;
    let first = bot.send_and_wait("lobby", "s1", "by hand").await;
    let second = bot.send_and_wait("lobby", "s2", "too soon").await;
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(
        second.unwrap_err().code,
        "rate_limited",
        "the rates were in force"
    );
}

/// A gateway holds at most `limits.max_inflight_publishes` publishes
/// awaiting their commit: with the worker paused and two in flight, a
/// third is refused at once with 429 `rate_limited` and stores nothing;
/// the two are stored once the worker is back, and the refused one, sent
/// again with its key, is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_past_the_in_flight_cap_are_refused_and_store_nothing() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__MAX_INFLIGHT_PUBLISHES", "2")
        .gateway_env("CHAT_GATEWAY_LIMITS__ACK_TIMEOUT_MS", "20000");
    let cluster = Cluster::start(options).await;
    cluster.create_room("lobby", &["bot"]).await;
    let http = reqwest::Client::new();
    cluster.worker(0).process.pause();
    let waiting: Vec<_> = (0..2)
        .map(|n| {
            let (http, cluster) = (http.clone(), &cluster);
            async move { publish_ok(&http, cluster, 0, "lobby", &format!("held-{n}"), "held").await }
        })
        .collect();
    let held = stream::iter(waiting)
        .buffer_unordered(2)
        .collect::<Vec<_>>();
    let third_refused = async {
        wait_for("two publishes in flight", STEP, || async {
            let gateway = cluster.gateway(0);
            let in_flight = gateway
                .metric("chat_gateway_publishes_in_flight", &[])
                .await;
            (in_flight == 2.0).then_some(())
        })
        .await;
        let message = json!({ "sender": "bot", "body": "one too many" });
        let third = Some("third");
        let (status, refused) = publish(
            &http,
            &cluster,
            0,
            Some(ADMIN_TOKEN),
            third,
            "lobby",
            message,
        )
        .await;
        assert_eq!((status, &refused["code"]), (429, &json!("rate_limited")));
        assert!(
            cluster.stored("lobby").await.is_empty(),
            "nothing stored yet"
        );
        cluster.worker(0).process.resume();
    };
    let (answers, ()) = tokio::join!(held, third_refused);
    assert_eq!(answers.len(), 2);
    let third = publish_ok(&http, &cluster, 0, "lobby", "third", "one too many").await;
    let bodies: Vec<String> = chat_rows(&cluster, "lobby")
        .await
        .into_iter()
        .map(|r| r.3)
        .collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert_eq!(bodies.iter().filter(|b| *b == "one too many").count(), 1);
    assert_eq!(seq(&third), 3);
}
