//! Direct rooms: one room per pair of users, made on first use by either
//! (`openDirect` over both encodings, `POST /v1/direct/{user}`, the client
//! library), with both as members and nobody able to add a third; two
//! opens of one pair at once on two gateways make one room.

use std::time::Duration;

use chat_client::{Client, ClientEncoding, ClientOptions};
use chat_proto::v1::{server_frame::Kind, DirectRoom, Error as ErrorFrame};
use chat_protocol::{codec::Encoding, RoomId, UserId};
use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions, Frames, Session, STEP};
use reqwest::Method;
use serde_json::json;

/// `openDirect` on a raw socket: the answer to it.
async fn open_direct(session: &mut Session, user: &str) -> Result<DirectRoom, ErrorFrame> {
    let request_id = session.writer.open_direct(user).await.unwrap();
    loop {
        let frame = session.next_frame().await;
        if frame.request_id != request_id {
            continue;
        }
        return match frame.kind {
            Some(Kind::DirectRoom(room)) => Ok(room),
            Some(Kind::Error(e)) => Err(e),
            other => panic!("unexpected reply {other:?}"),
        };
    }
}

fn pair_room(a: &str, b: &str) -> String {
    let user = |u: &str| UserId::parse(u).unwrap();
    RoomId::direct(&user(a), &user(b)).to_string()
}

/// The room's members as `user:role`, read by the service.
async fn members(cluster: &Cluster, room: &str) -> Vec<String> {
    let path = format!("/v1/rooms/{room}/members");
    let (status, body) = cluster
        .gateway(0)
        .call(ADMIN_TOKEN, Method::GET, &path, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["user"].as_str().unwrap(),
                m["role"].as_str().unwrap()
            )
        })
        .collect()
}

async fn rooms_named(cluster: &Cluster, room: &str) -> i64 {
    cluster
        .postgres
        .client()
        .await
        .query_one("SELECT count(*) FROM rooms WHERE id = $1", &[&room])
        .await
        .unwrap()
        .get(0)
}

/// Alice opens it over JSON on one gateway, Bob finds the same room over
/// protobuf on the other and over HTTP; they chat in it; the client
/// library opens the same room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_shares_one_direct_room_over_both_encodings_and_gateways() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let mut alice = cluster
        .gateway(0)
        .connect_with("alice", Encoding::Json)
        .await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    let room = pair_room("alice", "bob");

    let opened = open_direct(&mut alice, "bob").await.unwrap();
    assert_eq!(
        (opened.room.as_str(), opened.created),
        (room.as_str(), true)
    );
    let found = open_direct(&mut bob, "alice").await.unwrap();
    assert_eq!((found.room.as_str(), found.created), (room.as_str(), false));
    let bob_token = cluster.token("bob");
    let (status, body) = cluster
        .gateway(0)
        .call(&bob_token, Method::POST, "/v1/direct/alice", None)
        .await;
    assert_eq!(
        (status, body),
        (200, json!({ "room": room, "created": false }))
    );
    assert_eq!(
        members(&cluster, &room).await,
        ["alice:member", "bob:member"]
    );

    alice.join(&room).await;
    bob.join(&room).await;
    alice.send_and_wait(&room, "a1", "hi bob").await.unwrap();
    let (got, _) = bob.collect_messages(1, STEP).await;
    assert_eq!(
        (got[0].sender.as_str(), got[0].body.as_str()),
        ("alice", "hi bob")
    );
    bob.send_and_wait(&room, "b1", "hi alice").await.unwrap();
    // Alice's own message may have come before her ack (and been passed
    // over with it): what she hears next is hers or Bob's, then Bob's.
    let mut heard: Vec<String> = Vec::new();
    while !heard.iter().any(|body| body == "hi alice") {
        assert!(heard.len() < 2, "alice heard {heard:?}");
        let (got, _) = alice.collect_messages(1, STEP).await;
        heard.extend(got.into_iter().map(|m| m.body));
    }

    let options = ClientOptions::new(
        vec![cluster.gateway(1).ws_url()],
        cluster.token("alice"),
        ClientEncoding::Proto,
    )
    .backoff(Duration::from_millis(50), Duration::from_secs(1));
    let (client, _messages) = Client::connect(options);
    let again = client.open_direct("bob").await.unwrap();
    assert_eq!((again.room.as_str(), again.created), (room.as_str(), false));
    assert_eq!(rooms_named(&cluster, &room).await, 1);
}

/// Twenty pairs, each opened by both users at the same moment on two
/// gateways (one over a raw socket, one with the client library), with
/// two workers applying commands: one room per pair, made once, both
/// members, and both users told the same room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_opens_of_one_pair_at_once_on_two_gateways_make_one_room() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    for n in 0..20 {
        let (a, b) = (format!("a{n}"), format!("b{n}"));
        let mut socket = cluster.gateway(0).connect_with(&a, Encoding::Json).await;
        let options = ClientOptions::new(
            vec![cluster.gateway(1).ws_url()],
            cluster.token(&b),
            ClientEncoding::Proto,
        );
        let (client, _messages) = Client::connect(options);
        let (one, other) = tokio::join!(open_direct(&mut socket, &b), client.open_direct(&a));
        let (one, other) = (one.unwrap(), other.unwrap());
        let room = pair_room(&a, &b);
        assert_eq!(
            (one.room.as_str(), other.room.as_str()),
            (room.as_str(), room.as_str())
        );
        assert!(
            one.created ^ other.created,
            "pair {n}: made once, {one:?} {other:?}"
        );
        assert_eq!(rooms_named(&cluster, &room).await, 1);
        assert_eq!(
            members(&cluster, &room).await,
            [format!("{a}:member"), format!("{b}:member")]
        );
        client.close();
    }
}

/// Nobody adds a member to a direct room: not the service, not a member,
/// not by creating a room under its id; a stranger cannot join. Members
/// may leave; opening it again adds the opener back, not the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_adds_a_third_member_to_a_direct_room() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let mut alice = cluster
        .gateway(0)
        .connect_with("alice", Encoding::Proto)
        .await;
    let room = open_direct(&mut alice, "bob").await.unwrap().room;
    let carol = format!("/v1/rooms/{room}/members/carol");
    let (status, body) = cluster
        .gateway(1)
        .call(ADMIN_TOKEN, Method::PUT, &carol, None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let alice_token = cluster.token("alice");
    let (status, body) = cluster
        .gateway(0)
        .call(&alice_token, Method::PUT, &carol, None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let request_id = alice
        .writer
        .request(chat_proto::v1::client_frame::Kind::AddMember(
            chat_proto::v1::AddMember {
                room: room.clone(),
                user: "carol".into(),
                command_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let (id, error) = alice.next_error().await;
    assert_eq!((id, error.code.as_str()), (request_id, "conflict"));
    let create = json!({ "room": room, "members": ["carol"] });
    let (status, body) = cluster
        .gateway(0)
        .call(ADMIN_TOKEN, Method::POST, "/v1/rooms", Some(create))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument")),
        "{body}"
    );
    let squat = json!({ "room": pair_room("dave", "erin") });
    let dave = cluster.token("dave");
    let (status, body) = cluster
        .gateway(1)
        .call(&dave, Method::POST, "/v1/rooms", Some(squat))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_argument")),
        "{body}"
    );
    assert_eq!(rooms_named(&cluster, &pair_room("dave", "erin")).await, 0);
    let mut carol = cluster.gateway(1).connect("carol").await;
    let request_id = carol.writer.join(&room, None).await.unwrap();
    let (id, error) = carol.next_error().await;
    assert_eq!((id, error.code.as_str()), (request_id, "forbidden"));
    assert_eq!(
        members(&cluster, &room).await,
        ["alice:member", "bob:member"]
    );
    assert!(
        cluster.stored(&room).await.is_empty(),
        "no event for a refusal"
    );

    // Bob leaves; Alice may leave and come back; Bob is not brought back.
    let bob_token = cluster.token("bob");
    let bob_path = format!("/v1/rooms/{room}/members/bob");
    let (status, _) = cluster
        .gateway(1)
        .call(&bob_token, Method::DELETE, &bob_path, None)
        .await;
    assert_eq!(status, 204);
    let alice_path = format!("/v1/rooms/{room}/members/alice");
    let (status, _) = cluster
        .gateway(0)
        .call(&alice_token, Method::DELETE, &alice_path, None)
        .await;
    assert_eq!(status, 204);
    let back = open_direct(&mut alice, "bob").await.unwrap();
    assert_eq!((back.room.as_str(), back.created), (room.as_str(), false));
    assert_eq!(members(&cluster, &room).await, ["alice:member"]);
    let kinds: Vec<(String, String)> = cluster
        .stored(&room)
        .await
        .into_iter()
        .map(|(_, sender, _, body)| (sender, body))
        .collect();
    assert_eq!(kinds.len(), 3, "two leaves and a return: {kinds:?}");
}

/// A direct room with oneself, with a bad user id, or opened with the
/// service token is refused with its code, and makes no room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_room_with_oneself_or_a_bad_user_is_refused() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    for (gateway, encoding) in [(0, Encoding::Json), (1, Encoding::Proto)] {
        let mut alice = cluster
            .gateway(gateway)
            .connect_with("alice", encoding)
            .await;
        for user in ["alice", "b o b", ""] {
            let refused = open_direct(&mut alice, user).await.unwrap_err();
            assert_eq!(
                refused.code, "invalid_argument",
                "{user:?} over {encoding:?}"
            );
        }
        // The socket carries on.
        alice.writer.ping().await.unwrap();
        assert!(matches!(alice.next_frame().await.kind, Some(Kind::Pong(_))));
    }
    let alice = cluster.token("alice");
    let cases = [
        (alice.as_str(), "/v1/direct/alice", 400, "invalid_argument"),
        (
            alice.as_str(),
            "/v1/direct/b%20o%20b",
            400,
            "invalid_argument",
        ),
        (ADMIN_TOKEN, "/v1/direct/alice", 403, "forbidden"),
        ("not-a-token", "/v1/direct/bob", 401, "unauthorized"),
    ];
    for (token, path, status, code) in cases {
        let (got, body) = cluster
            .gateway(1)
            .call(token, Method::POST, path, None)
            .await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let rooms: i64 = cluster
        .postgres
        .client()
        .await
        .query_one("SELECT count(*) FROM rooms", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rooms, 0, "no room made");
}
