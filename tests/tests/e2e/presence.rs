//! Presence: a user is online while they have a socket on any gateway.
//! Their rooms' sockets hear `presenceNow` when that changes (a reconnect
//! within the grace changes nothing they see); `presence` answers for up
//! to 100 users, showing online only those who share a room with the
//! asker; a gateway SIGKILLed takes its users offline within its TTL.

use std::time::Duration;

use chat_proto::v1::{client_frame::Kind as Ask, server_frame::Kind, Presence, PresenceNow};
use chat_protocol::codec::Encoding;
use chat_tests::{Cluster, ClusterOptions, Frames, Session, STEP};
use tokio::time::Instant;

fn options() -> ClusterOptions {
    ClusterOptions::new(2, 1)
        .gateway_env("CHAT_GATEWAY_PRESENCE__GRACE_MS", "1000")
        .gateway_env("CHAT_GATEWAY_PRESENCE__HEARTBEAT_MS", "500")
        .gateway_env("CHAT_GATEWAY_PRESENCE__GATEWAY_TTL_MS", "2000")
}

/// The next `presenceNow` pushed to the socket within `within` that
/// speaks of `user`, if any (one's own coming online is pushed too).
async fn pushed(session: &mut Session, user: &str, within: Duration) -> Option<PresenceNow> {
    tokio::time::timeout(within, async {
        loop {
            if let Some(Kind::PresenceNow(now)) = session.next_any_frame().await.kind {
                if now.users.iter().any(|u| u.user == user) {
                    return now;
                }
            }
        }
    })
    .await
    .ok()
}

fn changes(now: &PresenceNow) -> Vec<(&str, bool)> {
    now.users
        .iter()
        .map(|u| (u.user.as_str(), u.online))
        .collect()
}

/// Who of `users` `session` sees online, or the error code.
async fn ask(session: &mut Session, users: &[&str]) -> Result<Vec<(String, bool)>, String> {
    let users = users.iter().map(|u| u.to_string()).collect();
    match session.ask(Ask::Presence(Presence { users })).await {
        Kind::PresenceNow(now) => Ok(now.users.into_iter().map(|u| (u.user, u.online)).collect()),
        Kind::Error(e) => Err(e.code),
        other => panic!("expected presenceNow, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_follows_sockets_on_every_gateway_without_flapping() {
    let mut cluster = Cluster::start(options()).await;
    cluster.create_room("team", &["ann", "bob", "cat"]).await;
    cluster.create_room("apart", &["dan"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    ann.join("team").await;

    // Bob connects on the other gateway, speaking protobuf: ann hears it.
    let bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    let now = pushed(&mut ann, "bob", STEP)
        .await
        .expect("bob came online");
    assert_eq!(
        (now.room.as_str(), changes(&now)),
        ("team", vec![("bob", true)])
    );
    let _dan = cluster.gateway(1).connect("dan").await;
    let seen = ask(&mut ann, &["bob", "cat", "dan", "ann", "nobody"])
        .await
        .unwrap();
    let expected = [
        ("bob", true),
        ("cat", false),
        ("dan", false),
        ("ann", true),
        ("nobody", false),
    ];
    let expected: Vec<_> = expected.iter().map(|(u, o)| (u.to_string(), *o)).collect();
    assert_eq!(
        seen, expected,
        "dan shares no room with ann: not seen online"
    );

    // A reconnect within the grace, even to another gateway: no change.
    bob.writer.close().await;
    let bob = cluster.gateway(0).connect("bob").await;
    assert!(
        pushed(&mut ann, "bob", Duration::from_secs(2))
            .await
            .is_none(),
        "no flap"
    );
    assert_eq!(
        ask(&mut ann, &["bob"]).await.unwrap(),
        [("bob".to_string(), true)]
    );

    // Gone for good: offline once the grace runs out.
    bob.writer.close().await;
    let left = Instant::now();
    let now = pushed(&mut ann, "bob", STEP)
        .await
        .expect("bob went offline");
    assert_eq!(changes(&now), [("bob", false)]);
    assert!(
        left.elapsed() >= Duration::from_millis(900),
        "after the grace"
    );

    // A gateway SIGKILLed: its users go offline within its TTL.
    let doomed = cluster.start_gateway().await;
    let _cat = cluster.gateway(doomed).connect("cat").await;
    let now = pushed(&mut ann, "cat", STEP)
        .await
        .expect("cat came online");
    assert_eq!(changes(&now), [("cat", true)]);
    cluster.gateways[doomed].process.kill();
    let killed = Instant::now();
    let now = pushed(&mut ann, "cat", STEP)
        .await
        .expect("cat went offline");
    assert_eq!(changes(&now), [("cat", false)]);
    let took = killed.elapsed();
    println!("presence: a SIGKILLed gateway's user offline after {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "TTL 2 s + heartbeat: took {took:?}"
    );
    assert_eq!(
        ask(&mut ann, &["cat"]).await.unwrap(),
        [("cat".to_string(), false)]
    );

    // Too many users at once.
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(ask(&mut ann, &many).await.unwrap_err(), "invalid_argument");
    assert_eq!(
        ask(&mut ann, &["bad id!"]).await.unwrap_err(),
        "invalid_argument"
    );
}
