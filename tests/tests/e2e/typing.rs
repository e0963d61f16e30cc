//! Typing: ephemeral signals between gateways over core NATS. A member's
//! `typing` reaches every joined socket of the room on every gateway, in
//! both encodings, and a socket that joins meanwhile; it lapses a few
//! seconds after the last one; it is never stored; floods and outsiders
//! are refused; many typists' signals cross NATS in a few batches.

use std::time::{Duration, Instant};

use chat_proto::{
    internal::{room_signal::Kind as Said, RoomSignals},
    v1::{client_frame::Kind as Ask, server_frame::Kind, Typing, TypingNow},
};
use chat_protocol::codec::Encoding;
use chat_tests::{Cluster, ClusterOptions, Frames, Session, STEP};
use futures::StreamExt;
use prost::Message as _;

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

/// Many sockets typing at once, on two gateways: every room's sockets on
/// both gateways hear all of their room's typists, and the signals cross
/// NATS gathered into a few messages, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_typists_cross_nats_in_a_few_messages() {
    const ROOMS: usize = 20;
    const SIZE: usize = 5;
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    let mut sessions = Vec::new();
    for r in 0..ROOMS {
        let room = format!("typing-{r}");
        let users: Vec<String> = (0..SIZE).map(|u| format!("t{r}-{u}")).collect();
        let names: Vec<&str> = users.iter().map(String::as_str).collect();
        cluster.create_room(&room, &names).await;
        for (u, user) in users.iter().enumerate() {
            let mut session = cluster.gateway(u % 2).connect(user).await;
            session.join(&room).await;
            sessions.push((room.clone(), session));
        }
    }
    let nats = cluster.nats.client().await;
    let mut batches = nats.subscribe("chat.signals").await.unwrap();
    nats.flush().await.unwrap();

    for (room, session) in &mut sessions {
        session.writer.request(typing(room)).await.unwrap();
    }
    for (room, session) in &mut sessions {
        let everyone = async {
            loop {
                let now = typing_now(session).await;
                assert_eq!(&now.room, room);
                if now.users.len() == SIZE {
                    return;
                }
            }
        };
        tokio::time::timeout(STEP, everyone)
            .await
            .unwrap_or_else(|_| panic!("{room}: not every typist was heard"));
    }

    // Counted by typing only: the sockets' coming online travels this way too.
    let (mut messages, mut signals) = (0, 0);
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(500), batches.next()).await
    {
        let batch = RoomSignals::decode(msg.payload).unwrap();
        let typed = batch
            .signals
            .iter()
            .filter(|s| matches!(s.kind, Some(Said::Typing(_))));
        let typed = typed.count();
        messages += usize::from(typed > 0);
        signals += typed;
    }
    assert_eq!(signals, ROOMS * SIZE, "each typist's signal, once");
    assert!(
        messages * 4 <= signals,
        "{signals} signals took {messages} NATS messages"
    );
}
