//! Bad input gets a clear answer, never a panic, and costs nobody else
//! anything: after each one, the other member of the room still chats.

use chat_client::{ClientError, ConnectOptions, Credentials};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{Cluster, ClusterOptions, Frames, Session, STEP};
use tokio_tungstenite::tungstenite::Message as RawMessage;

/// A room with a victim (who misbehaves) and a bystander on the same gateway.
struct Scene {
    cluster: Cluster,
    victim: Session,
    bystander: Session,
}

async fn scene(encoding: Encoding) -> Scene {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__MAX_FRAME_BYTES", "4096")
        .gateway_env("CHAT_GATEWAY_LIMITS__MAX_BODY_BYTES", "1024");
    Scene::from(Cluster::start(options).await, encoding).await
}

impl Scene {
    async fn from(cluster: Cluster, encoding: Encoding) -> Self {
        cluster.create_room("room", &["victim", "bystander"]).await;
        cluster.create_room("private", &["owner"]).await;
        let mut victim = cluster.gateway(0).connect_with("victim", encoding).await;
        let mut bystander = cluster.gateway(0).connect("bystander").await;
        victim.join("room").await;
        bystander.join("room").await;
        Scene {
            cluster,
            victim,
            bystander,
        }
    }
}

impl Scene {
    /// The bystander can still send, and the room still delivers to both
    /// (to the victim too, unless its socket was closed).
    async fn room_still_works(&mut self, victim_open: bool, expected_seq: u64) {
        let ack = (self.bystander)
            .send_and_wait("room", &format!("after-{expected_seq}"), "still here")
            .await
            .unwrap();
        assert_eq!(ack.seq, expected_seq);
        if victim_open {
            let victim = &mut self.victim;
            let (got, _) = victim.collect_messages(1, STEP).await;
            assert_eq!(got[0].seq, expected_seq);
            let own = victim
                .send_and_wait("room", &format!("victim-{expected_seq}"), "me too")
                .await
                .unwrap();
            assert_eq!(own.seq, expected_seq + 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_json_frame_gets_bad_frame_and_the_socket_stays_open() {
    let mut s = scene(Encoding::Json).await;
    let victim = &mut s.victim;
    victim
        .writer
        .raw(RawMessage::Text("{\"send\": {\"room\": ".into()))
        .await
        .unwrap();
    let (_, e) = victim.next_error().await;
    assert_eq!(e.code, "bad_frame");
    // Wrong field types are malformed too.
    victim
        .writer
        .raw(RawMessage::Text(
            r#"{"requestId":"7","send":{"room":5}}"#.into(),
        ))
        .await
        .unwrap();
    assert_eq!(victim.next_error().await.1.code, "bad_frame");
    s.room_still_works(true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_protobuf_frame_gets_bad_frame_and_the_socket_stays_open() {
    let mut s = scene(Encoding::Proto).await;
    let victim = &mut s.victim;
    // Field 4 (send), length-delimited, claims 100 bytes but has 2.
    victim
        .writer
        .raw(RawMessage::Binary(vec![0x22, 100, 0x0a, 0x01].into()))
        .await
        .unwrap();
    assert_eq!(victim.next_error().await.1.code, "bad_frame");
    // A text frame on a protobuf socket is malformed as well.
    victim
        .writer
        .raw(RawMessage::Text("hello".into()))
        .await
        .unwrap();
    assert_eq!(victim.next_error().await.1.code, "bad_frame");
    s.room_still_works(true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_closes_the_socket_with_1009_and_others_carry_on() {
    let mut s = scene(Encoding::Json).await;
    let victim = &mut s.victim;
    let huge = format!(
        r#"{{"requestId":"1","send":{{"room":"room","clientMsgId":"x","body":"{}"}}}}"#,
        "a".repeat(8000)
    );
    victim
        .writer
        .raw(RawMessage::Text(huge.into()))
        .await
        .unwrap();
    let close = victim.expect_close().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    s.room_still_works(false, 1).await;
    assert_eq!(
        s.cluster.stored("room").await.len(),
        1,
        "only the bystander's message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_gets_invalid_argument_and_is_not_stored() {
    let mut s = scene(Encoding::Json).await;
    let victim = &mut s.victim;
    let e = victim
        .send_and_wait("room", "big", &"b".repeat(2000))
        .await
        .unwrap_err();
    assert_eq!(e.code, "invalid_argument");
    s.room_still_works(true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_to_a_room_one_is_not_a_member_of_is_forbidden_and_stores_nothing() {
    let mut s = scene(Encoding::Proto).await;
    let victim = &mut s.victim;
    let e = victim
        .send_and_wait("private", "sneak", "let me in")
        .await
        .unwrap_err();
    assert_eq!(e.code, "forbidden");
    let request_id = victim.writer.join("private", None).await.unwrap();
    let (rid, e) = victim.next_error().await;
    assert_eq!((rid, e.code.as_str()), (request_id, "forbidden"));
    // A room that does not exist is no different from one you are not in.
    let e = victim
        .send_and_wait("nowhere", "x", "hello?")
        .await
        .unwrap_err();
    assert_eq!(e.code, "forbidden");
    assert!(s.cluster.stored("private").await.is_empty());
    s.room_still_works(true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_frame_type_gets_unsupported() {
    let mut s = scene(Encoding::Json).await;
    let victim = &mut s.victim;
    victim
        .writer
        .raw(RawMessage::Text(
            r#"{"requestId":"42","dance":{"style":"tango"}}"#.into(),
        ))
        .await
        .unwrap();
    let (rid, e) = victim.next_error().await;
    assert_eq!((rid.as_str(), e.code.as_str()), ("42", "unsupported"));
    s.room_still_works(true, 1).await;

    // The same on a protobuf socket: a field number the schema does not
    // have (30, a length of 0).
    let mut proto = s
        .cluster
        .gateway(0)
        .connect_with("victim", Encoding::Proto)
        .await;
    proto
        .writer
        .raw(RawMessage::Binary(
            vec![0x0a, 0x01, b'9', 0xf2, 0x01, 0x00].into(),
        ))
        .await
        .unwrap();
    let (rid, e) = proto.next_error().await;
    assert_eq!((rid.as_str(), e.code.as_str()), ("9", "unsupported"));
    assert!(matches!(
        next_frame_after_ping(&mut proto).await,
        Kind::Pong(_)
    ));
}

async fn next_frame_after_ping(session: &mut Session) -> Kind {
    let id = session.writer.ping().await.unwrap();
    let frame = session.next_frame().await;
    assert_eq!(frame.request_id, id);
    frame.kind.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_expired_or_missing_tokens_are_refused_with_401_before_the_upgrade() {
    let mut s = scene(Encoding::Json).await;
    let url = s.cluster.gateway(0).ws_url();
    let forged = chat_auth::mint_hs256("another-secret-of-at-least-32-bytes!", "victim", 60);
    for (what, credentials) in [
        ("forged", Credentials::Bearer(forged)),
        ("expired", Credentials::Bearer(expired_token())),
        ("garbage", Credentials::Bearer("not.a.jwt".into())),
        ("missing", Credentials::None),
        ("unknown ticket", Credentials::Ticket("00".repeat(24))),
    ] {
        let options = ConnectOptions {
            credentials,
            ..ConnectOptions::new(url.clone(), "", Encoding::Json)
        };
        let err = chat_client::connect(&options).await.err();
        assert!(
            matches!(err, Some(ClientError::Refused(401))),
            "{what}: {err:?}"
        );
    }
    s.room_still_works(true, 1).await;
}

fn expired_token() -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let claims = chat_auth::Claims {
        sub: "victim".into(),
        exp: 1_000_000,
        iat: 999_000,
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(chat_tests::cluster::JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_from_an_origin_not_allowed_is_refused_with_403() {
    let mut s = scene(Encoding::Json).await;
    let mut options = s
        .cluster
        .gateway(0)
        .connect_options("victim", Encoding::Json);
    options.origin = Some("https://evil.example".into());
    assert!(matches!(
        chat_client::connect(&options).await,
        Err(ClientError::Refused(403))
    ));
    options.origin = Some(chat_tests::cluster::ALLOWED_ORIGIN.into());
    assert!(chat_client::connect(&options).await.is_ok());
    s.room_still_works(true, 1).await;
}

/// With an RS256 public key configured, tokens signed by its private key get
/// in and HS256 tokens (even with the old secret) do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_tokens_are_checked_against_the_configured_public_key() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(status.status.success(), "openssl {args:?}");
        status.stdout
    };
    run(&["genrsa", "-out", key.to_str().unwrap(), "2048"]);
    let public = String::from_utf8(run(&["rsa", "-in", key.to_str().unwrap(), "-pubout"])).unwrap();
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_JWT__HS256_SECRET", "")
        .gateway_env("CHAT_GATEWAY_JWT__RS256_PUBLIC_KEY_PEM", &public);
    let cluster = Cluster::start(options).await;
    cluster.create_room("rsa", &["rita"]).await;
    let claims = chat_auth::Claims {
        sub: "rita".into(),
        exp: (chat_protocol::now_ms() / 1000) as u64 + 600,
        iat: 0,
    };
    let private = std::fs::read(&key).unwrap();
    let token = encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(&private).unwrap(),
    )
    .unwrap();
    let options = ConnectOptions::new(cluster.gateway(0).ws_url(), token, Encoding::Proto);
    let (w, r) = chat_client::connect(&options)
        .await
        .expect("RS256 token accepted");
    let ack = Session::new("rita", w, r)
        .send_and_wait("rsa", "r1", "signed with RSA")
        .await
        .unwrap();
    assert_eq!(ack.seq, 1);
    let hs = ConnectOptions::new(
        cluster.gateway(0).ws_url(),
        cluster.token("rita"),
        Encoding::Json,
    );
    assert!(matches!(
        chat_client::connect(&hs).await,
        Err(ClientError::Refused(401))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_subject_could_break_a_header_is_refused_with_401() {
    let mut s = scene(Encoding::Json).await;
    for sub in ["victim\r\nX-Evil: 1", "victim\n", "vic tim", "victim\0"] {
        let token = chat_auth::mint_hs256(chat_tests::cluster::JWT_SECRET, sub, 60);
        let options = ConnectOptions::new(s.cluster.gateway(0).ws_url(), token, Encoding::Json);
        let err = chat_client::connect(&options).await.err();
        assert!(
            matches!(err, Some(ClientError::Refused(401))),
            "{sub:?}: {err:?}"
        );
    }
    s.room_still_works(true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_a_nul_character_gets_invalid_argument_and_is_not_stored() {
    let mut s = scene(Encoding::Proto).await;
    let victim = &mut s.victim;
    let e = victim
        .send_and_wait("room", "nul", "a\0b")
        .await
        .unwrap_err();
    assert_eq!(e.code, "invalid_argument");
    s.room_still_works(true, 1).await;
    assert_eq!(s.cluster.stored("room").await.len(), 2);
}

/// A bug that panics while a frame is served (injected with failpoints,
/// which the test build compiles in) answers `unavailable`, is counted, and
/// leaves the socket and the room working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_serving_a_frame_answers_unavailable_and_is_counted() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("FAILPOINTS", "session-frame=1*panic;send-task=1*panic");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["victim"]).await;
    let mut victim = cluster.gateway(0).connect("victim").await;
    // The first frame panics in the socket's own task.
    victim.writer.ping().await.unwrap();
    let (rid, e) = victim.next_error().await;
    assert_eq!((rid.as_str(), e.code.as_str()), ("", "unavailable"));
    victim.join("room").await;
    // The first send panics in its commit-waiting task.
    let e = victim
        .send_and_wait("room", "lost", "boom")
        .await
        .unwrap_err();
    assert_eq!(e.code, "unavailable");
    let ack = victim.send_and_wait("room", "kept", "fine").await.unwrap();
    assert_eq!(ack.seq, 1);
    let metrics = cluster.gateway(0).metrics().await;
    let panics = "chat_gateway_panics_total";
    assert_eq!(metrics.total(panics, &[("task", "session")]), 1.0);
    assert_eq!(metrics.total(panics, &[("task", "send")]), 1.0);
    let stored = cluster.stored("room").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].2, "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_valid_yet_is_refused_with_401() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let mut s = scene(Encoding::Json).await;
    let now = (chat_protocol::now_ms() / 1000) as u64;
    // `Claims` has no `nbf`: a JSON object carries it.
    let claims = |nbf: u64| serde_json::json!({ "sub": "victim", "exp": now + 600, "nbf": nbf });
    let key = EncodingKey::from_secret(chat_tests::cluster::JWT_SECRET.as_bytes());
    let token = |nbf| encode(&Header::default(), &claims(nbf), &key).unwrap();
    let options = |token| ConnectOptions::new(s.cluster.gateway(0).ws_url(), token, Encoding::Json);
    // An hour ahead is far outside the 30 s leeway.
    let err = chat_client::connect(&options(token(now + 3600)))
        .await
        .err();
    assert!(matches!(err, Some(ClientError::Refused(401))), "{err:?}");
    assert!(chat_client::connect(&options(token(now - 10)))
        .await
        .is_ok());
    s.room_still_works(true, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_authenticates_before_it_reads_the_request() {
    let s = scene(Encoding::Json).await;
    let http = reqwest::Client::new();
    let url = s.cluster.gateway(0).url("/v1/rooms");
    let member_url = s.cluster.gateway(0).url("/v1/rooms/room/members/x%0Ay");
    // Without the token, whatever the body: 401, and nothing about the body.
    for (content_type, body) in [
        ("application/json", "{not json"),
        ("text/plain", "hello"),
        ("application/json", r#"{"rooms": 5}"#),
    ] {
        let r = http
            .post(&url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{body}");
        let json: serde_json::Value = r.json().await.unwrap();
        assert_eq!(json["code"], "unauthorized");
    }
    let r = http.delete(&member_url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // With it, a bad body is our `invalid_argument`, in our JSON shape.
    let r = http
        .post(&url)
        .bearer_auth(chat_tests::cluster::ADMIN_TOKEN)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let json: serde_json::Value = r.json().await.unwrap();
    assert_eq!(json["code"], "invalid_argument");
    let r = http
        .delete(&member_url)
        .bearer_auth(chat_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a user id with a line break");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticket_endpoint_answers_cors_preflights_from_allowed_origins_only() {
    let s = scene(Encoding::Json).await;
    let http = reqwest::Client::new();
    let url = s.cluster.gateway(0).url("/v1/ws/ticket");
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let allowed = chat_tests::cluster::ALLOWED_ORIGIN;
    let ok = preflight(allowed).await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], allowed);
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    assert!(h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // The real request from the allowed page can read its ticket.
    let r = http
        .post(&url)
        .header("Origin", allowed)
        .bearer_auth(s.cluster.token("victim"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], allowed);
}

/// More sends in flight than allowed get `rate_limited`; the ones within
/// the cap are stored and acked once the worker catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_beyond_the_in_flight_cap_get_rate_limited() {
    let options =
        ClusterOptions::new(1, 1).gateway_env("CHAT_GATEWAY_LIMITS__MAX_INFLIGHT_SENDS", "2");
    let cluster = Cluster::start(options).await;
    cluster.create_room("room", &["eager"]).await;
    let mut eager = cluster.gateway(0).connect("eager").await;
    // The worker hangs: nothing is acked, so sends stay in flight.
    cluster.workers[0].process.pause();
    let first = eager.writer.send("room", "f1", "one").await.unwrap();
    let second = eager.writer.send("room", "f2", "two").await.unwrap();
    let third = eager.writer.send("room", "f3", "three").await.unwrap();
    let frame = eager.next_frame().await;
    assert_eq!(frame.request_id, third);
    assert!(matches!(frame.kind, Some(Kind::Error(e)) if e.code == "rate_limited"));
    cluster.workers[0].process.resume();
    // Acks of pipelined sends may come in either order.
    let (_, acks) = eager.collect(0, 2, None, STEP).await;
    let seq_of = |id: &str| acks.iter().find(|(rid, _)| rid == id).map(|(_, a)| a.seq);
    assert_eq!((seq_of(&first), seq_of(&second)), (Some(1), Some(2)));
    let ack = eager.send_and_wait("room", "f4", "four").await.unwrap();
    assert_eq!(ack.seq, 3);
    let ids: Vec<String> = cluster
        .stored("room")
        .await
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(ids, ["f1", "f2", "f4"]);
}
