//! Offline notifications, on two gateways and two workers, against a local
//! webhook receiver that answers as each step sets it: 200, 500 twice, a
//! hang, a redirect. A mention or a direct message reaches the webhook for
//! the members with no socket, signed; failures are retried, then
//! dead-lettered; no send waits for any of it.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use chat_proto::v1::{client_frame::Kind as Ask, server_frame::Kind, OpenDirect, Presence};
use chat_tests::{header, wait_for, Cluster, ClusterOptions, Role, STEP};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "a-webhook-secret-of-at-least-32-bytes";

/// How the receiver answers `/hook`.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// 500 this many more times, then 200.
    Fail(u32),
    /// Never answers (the worker's timeout is 500 ms).
    Hang,
    /// 302 to `/elsewhere`.
    Redirect,
}

struct Call {
    path: &'static str,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    mode: Arc<Mutex<Mode>>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Waits until `n` calls in all arrived; the last one's JSON.
    async fn until_calls(&self, n: usize) -> Value {
        wait_for("webhook calls", STEP, || {
            let calls = self.calls.lock().unwrap();
            let last = (calls.len() >= n).then(|| verified(calls.last().unwrap()));
            async move { last }
        })
        .await
    }
}

/// The call's JSON, once its signature and headers check out.
fn verified(call: &Call) -> Value {
    let get = |name: &str| call.headers.get(name).unwrap().to_str().unwrap().to_owned();
    let timestamp = get("x-chat-timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&call.body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(get("x-chat-signature"), expected, "signed with the secret");
    let age = chat_protocol::now_ms() / 1000 - timestamp.parse::<i64>().unwrap();
    assert!((0..60).contains(&age), "a fresh timestamp");
    let json: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(get("x-chat-delivery"), json["messageId"].as_str().unwrap());
    json
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.calls.lock().unwrap().push(Call {
        path: "/hook",
        headers,
        body,
    });
    let mode = *r.mode.lock().unwrap();
    match mode {
        Mode::Ok => StatusCode::OK.into_response(),
        Mode::Fail(0) => StatusCode::OK.into_response(),
        Mode::Fail(n) => {
            r.set(Mode::Fail(n - 1));
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        Mode::Redirect => (StatusCode::FOUND, [("location", "/elsewhere")]).into_response(),
    }
}

async fn elsewhere(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.calls.lock().unwrap().push(Call {
        path: "/elsewhere",
        headers,
        body,
    });
    StatusCode::OK
}

/// Starts the receiver; its `/hook` URL.
async fn receiver() -> (Receiver, String) {
    let receiver = Receiver {
        mode: Arc::new(Mutex::new(Mode::Ok)),
        calls: Arc::default(),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/elsewhere", post(elsewhere))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_and_direct_messages_reach_the_webhook_for_offline_members() {
    let (receiver, url) = receiver().await;
    let mut options = ClusterOptions::new(2, 2);
    for (key, value) in [
        ("WEBHOOK_URL", url.as_str()),
        ("SECRET", SECRET),
        ("TIMEOUT_MS", "500"),
        ("RETRY__MAX_ATTEMPTS", "3"),
        ("RETRY__BASE_DELAY_MS", "100"),
        ("RETRY__MAX_DELAY_MS", "200"),
    ] {
        options = options.env(Role::Workers, &format!("CHAT_WORKER_NOTIFY__{key}"), value);
    }
    let cluster = Cluster::start(options).await;
    cluster.create_room("team", &["ann", "bob", "carl"]).await;
    cluster.create_room("other", &["dan"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let _carl = cluster.gateway(1).connect("carl").await;
    let carl_online = || {
        Ask::Presence(Presence {
            users: vec!["carl".into()],
        })
    };
    for _ in 0..100 {
        match ann.ask(carl_online()).await {
            Kind::PresenceNow(now) if now.users[0].online => break,
            Kind::PresenceNow(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("expected presenceNow, got {other:?}"),
        }
    }

    // bob has no socket, carl has one, dan is not in the room.
    let ack = ann
        .send_and_wait("team", "m1", "hi @bob, @carl and @dan")
        .await
        .unwrap();
    let call = receiver.until_calls(1).await;
    assert_eq!(call["recipients"], serde_json::json!(["bob"]));
    assert_eq!(
        (
            &call["room"],
            &call["seq"],
            &call["messageId"],
            &call["sender"]
        ),
        (
            &Value::from("team"),
            &Value::from(ack.seq),
            &Value::from(ack.message_id.as_str()),
            &Value::from("ann")
        )
    );
    assert_eq!(call["body"], "hi @bob, @carl and @dan");
    assert_eq!(call["direct"], false);

    let Kind::DirectRoom(dm) = ann
        .ask(Ask::OpenDirect(OpenDirect { user: "bob".into() }))
        .await
    else {
        panic!("expected directRoom");
    };
    ann.send_and_wait(&dm.room, "d1", "psst").await.unwrap();
    let call = receiver.until_calls(2).await;
    assert_eq!(
        (&call["room"], &call["direct"]),
        (&Value::from(dm.room.as_str()), &Value::from(true))
    );
    assert_eq!(call["recipients"], serde_json::json!(["bob"]));

    // Nobody offline to tell: no call (the next call is the next message's).
    ann.send_and_wait("team", "m2", "only @carl, who is here")
        .await
        .unwrap();
    ann.send_and_wait("team", "m3", "no mention").await.unwrap();
    receiver.set(Mode::Fail(2));
    let ack = ann.send_and_wait("team", "m4", "@bob again").await.unwrap();
    let call = receiver.until_calls(5).await;
    assert_eq!(
        call["messageId"],
        ack.message_id.as_str(),
        "500, 500, then 200"
    );
    {
        let calls = receiver.calls.lock().unwrap();
        let ids: Vec<Value> = calls[2..]
            .iter()
            .map(|c| verified(c)["messageId"].clone())
            .collect();
        assert!(
            ids.iter().all(|id| id == ack.message_id.as_str()),
            "{ids:?}"
        );
    }

    receiver.set(Mode::Hang);
    let hung = ann
        .send_and_wait("team", "m5", "@bob hang on")
        .await
        .unwrap();
    receiver.until_calls(8).await;
    let redirected_at = receiver.calls();
    let js = cluster.jetstream().await;
    let dead = wait_for("the hung notification dead-lettered", STEP, || {
        let letters = js.dead_letters();
        async move { (!letters.await.is_empty()).then_some(()) }
    });
    dead.await;
    let letters = js.dead_letters().await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].subject.as_str(), "chat.dead.notify.team");
    assert_eq!(header(&letters[0], "Chat-Dead-Reason"), Some("webhook"));
    assert_eq!(header(&letters[0], "Chat-Attempts"), Some("3"));
    assert_eq!(hung.seq, 5, "the send was acked meanwhile");

    receiver.set(Mode::Redirect);
    ann.send_and_wait("team", "m6", "@bob moved").await.unwrap();
    receiver.until_calls(redirected_at + 1).await;
    wait_for("the redirected notification dead-lettered", STEP, || {
        let letters = js.dead_letters();
        async move { (letters.await.len() == 2).then_some(()) }
    })
    .await;
    let letters = js.dead_letters().await;
    assert_eq!(
        header(&letters[1], "Chat-Dead-Reason"),
        Some("webhook_refused")
    );
    assert_eq!(header(&letters[1], "Chat-Attempts"), Some("1"));
    {
        let calls = receiver.calls.lock().unwrap();
        assert_eq!(calls.len(), redirected_at + 1, "tried once, not again");
        assert!(
            calls.iter().all(|c| c.path == "/hook"),
            "the redirect was not followed"
        );
    }
    let stored = cluster.stored("team").await;
    assert_eq!(stored.len(), 6, "every send stored");
}
