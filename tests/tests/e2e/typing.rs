//! Typing: ephemeral signals between gateways over core NATS. A member's
//! `typing` reaches every joined socket of the room on every gateway, in
//! both encodings, and a socket that joins meanwhile; it lapses a few
//! seconds after the last one; it is never stored; floods and outsiders
//! are refused.

use std::time::{Duration, Instant};

use chat_proto::v1::{client_frame::Kind as Ask, server_frame::Kind, Typing, TypingNow};
use chat_protocol::codec::Encoding;
use chat_tests::{Cluster, ClusterOptions, Frames, Session, STEP};

fn typing(room: &str) -> Ask {
    Ask::Typing(Typing { room: room.into() })
}

/// The next `typingNow` pushed to the socket (skipping other frames).
async fn typing_now(session: &mut Session) -> TypingNow {
    loop {
        if let Some(Kind::TypingNow(now)) = session.next_frame().await.kind {
            return now;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_every_gateway_lapses_and_is_never_stored() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("team", &["ann", "bob", "cat"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    ann.join("team").await;
    bob.join("team").await;
    let stored = cluster.stored("team").await;

    ann.writer.request(typing("team")).await.unwrap();
    let typed = Instant::now();
    let seen = typing_now(&mut bob).await;
    assert_eq!(
        (seen.room.as_str(), seen.users),
        ("team", vec!["ann".to_owned()])
    );
    assert_eq!(
        typing_now(&mut ann).await.users,
        ["ann"],
        "her own socket too"
    );

    // A socket that joins while ann types hears it right after `joined`.
    let mut cat = cluster
        .gateway(1)
        .connect_with("cat", Encoding::Proto)
        .await;
    cat.join("team").await;
    assert_eq!(typing_now(&mut cat).await.users, ["ann"]);

    // Again within the second: refused, and it does not extend the signal.
    match ann.ask(typing("team")).await {
        Kind::Error(e) => assert_eq!(e.code, "rate_limited"),
        other => panic!("expected rate_limited, got {other:?}"),
    }
    // An outsider may not type in the room.
    let mut zed = cluster.gateway(0).connect("zed").await;
    match zed.ask(typing("team")).await {
        Kind::Error(e) => assert_eq!(e.code, "forbidden"),
        other => panic!("expected forbidden, got {other:?}"),
    }

    // It lapses about five seconds after the last signal, everywhere.
    let lapsed = tokio::time::timeout(STEP, typing_now(&mut bob))
        .await
        .unwrap();
    assert!(lapsed.users.is_empty());
    let after = typed.elapsed();
    assert!(
        after >= Duration::from_secs(4) && after < Duration::from_secs(9),
        "lapsed after {after:?}"
    );
    assert!(typing_now(&mut cat).await.users.is_empty());
    assert_eq!(cluster.stored("team").await, stored, "nothing stored");
}
