//! The feed of one's rooms, on two gateways and two workers: one socket of
//! a user in 500 rooms watches them all without joining any; a send to
//! any of them bumps that room's unread count on the feed within about a
//! second, and read markers, one's own messages, deletes, rooms joined and
//! left all show as they happen.

use std::time::{Duration, Instant};

use chat_client::{Client, ClientEncoding, ClientOptions, Signal, Signals};
use chat_proto::v1::{
    client_frame::Kind as Ask, server_frame::Kind, Feed, RoomSummary, UnwatchFeed, WatchFeed,
};
use chat_tests::{entries, Cluster, ClusterOptions, Frames, Session, ADMIN_TOKEN, STEP};
use futures::StreamExt;

const ROOMS: usize = 500;

/// Watches the feed: every room of the answer, and how many frames it took.
async fn watch(who: &mut Session) -> (Vec<RoomSummary>, usize) {
    let request_id = who
        .writer
        .request(Ask::WatchFeed(WatchFeed {}))
        .await
        .unwrap();
    let (mut rooms, mut frames) = (Vec::new(), 0);
    loop {
        let frame = who.next_frame().await;
        assert_eq!(frame.request_id, request_id, "the answer comes first");
        let Some(Kind::Feed(feed)) = frame.kind else {
            panic!("expected feed, got {:?}", frame.kind);
        };
        frames += 1;
        rooms.extend(feed.rooms);
        if !feed.more {
            return (rooms, frames);
        }
    }
}

/// The next pushed `feed` frame (other frames skipped).
async fn next_feed(who: &mut Session) -> Feed {
    loop {
        let frame = who.next_frame().await;
        if let (true, Some(Kind::Feed(feed))) = (frame.request_id.is_empty(), frame.kind) {
            return feed;
        }
    }
}

/// Reads pushed feeds until `room` shows as `check` wants; how long it took.
async fn until(who: &mut Session, room: &str, check: impl Fn(&RoomSummary) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let feed = tokio::time::timeout(STEP, next_feed(who))
            .await
            .expect("a feed frame");
        if feed.rooms.iter().any(|r| r.room == room && check(r)) {
            return started.elapsed();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_of_500_rooms_shows_each_change_without_joining() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let names: Vec<String> = (0..ROOMS).map(|i| format!("f{i:03}")).collect();
    futures::stream::iter(&names)
        .for_each_concurrent(16, |room| cluster.create_room(room, &["ann", "bob"]))
        .await;
    let mut bob = cluster.gateway(1).connect("bob").await;
    let (rooms, frames) = watch(&mut bob).await;
    assert_eq!(rooms.len(), ROOMS, "every room in the answer");
    assert_eq!(frames, ROOMS / 100, "100 rooms a frame");
    assert!(
        rooms.iter().all(|r| r.unread == 0 && r.head_seq == 0),
        "new rooms"
    );

    // Sends by ann to rooms bob has not joined: each bumps its unread count.
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut took = Vec::new();
    for i in (0..ROOMS).step_by(25) {
        let room = &names[i];
        let ack = ann
            .send_and_wait(room, &format!("a{i}"), "hello")
            .await
            .unwrap();
        let id = ack.message_id.clone();
        took.push(
            until(&mut bob, room, |r| {
                r.unread == 1
                    && r.head_seq == ack.seq
                    && r.last_message.as_ref().is_some_and(|m| m.id == id)
            })
            .await,
        );
    }
    took.sort();
    println!(
        "feed bumps after the ack: median {:?}, max {:?}",
        took[took.len() / 2],
        took[took.len() - 1]
    );
    assert!(took[took.len() / 2] < Duration::from_secs(1), "{took:?}");

    // bob's own message moves the head, not his unread count.
    let mut bob_writer = cluster.gateway(0).connect("bob").await;
    bob_writer
        .send_and_wait(&names[0], "b0", "mine")
        .await
        .unwrap();
    until(&mut bob, &names[0], |r| r.head_seq == 2 && r.unread == 1).await;
    // Read on another socket: unread 0 here.
    bob_writer.mark_read(&names[0], 2).await.unwrap();
    until(&mut bob, &names[0], |r| r.read_seq == 2 && r.unread == 0).await;
    // ann's message, then deleted: counted, then not (read again from Postgres).
    let ack = ann.send_and_wait(&names[25], "a25b", "oops").await.unwrap();
    until(&mut bob, &names[25], |r| r.unread == 2).await;
    ann.entry(entries::delete(&names[25], "a25del", ack.seq as i64))
        .await
        .unwrap();
    until(&mut bob, &names[25], |r| r.unread == 1).await;

    // A room made with bob joins the feed; a room he leaves goes.
    cluster.create_room("f-new", &["ann", "bob"]).await;
    until(&mut bob, "f-new", |r| r.head_seq == 0).await;
    let path = format!("/v1/rooms/{}/members/bob", names[499]);
    let (status, _) = cluster
        .gateway(0)
        .call(ADMIN_TOKEN, reqwest::Method::DELETE, &path, None)
        .await;
    assert_eq!(status, 204);
    loop {
        let feed = tokio::time::timeout(STEP, next_feed(&mut bob))
            .await
            .expect("a feed frame");
        if feed.removed.contains(&names[499]) {
            break;
        }
    }

    // Unwatched: answered, and nothing more comes.
    let request = bob
        .writer
        .request(Ask::UnwatchFeed(UnwatchFeed {}))
        .await
        .unwrap();
    loop {
        let frame = bob.next_frame().await;
        if frame.request_id == request {
            assert_eq!(frame.kind, Some(Kind::Feed(Feed::default())));
            break;
        }
    }
    ann.send_and_wait(&names[100], "after", "unwatched")
        .await
        .unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(1), next_feed(&mut bob)).await;
    assert!(quiet.is_err(), "no feed after unwatchFeed: {quiet:?}");
}

/// The client library watches the feed again after a reconnect: the new
/// gateway's answer lists every room as it stands, and what was said
/// meanwhile is counted (in that answer or, if it was stored after, in an
/// update).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_watches_the_feed_again_after_its_gateway_dies() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    for room in ["c1", "c2"] {
        cluster.create_room(room, &["ann", "bob"]).await;
    }
    let options = ClientOptions::new(
        [cluster.gateway(0).ws_url(), cluster.gateway(1).ws_url()],
        cluster.token("bob"),
        ClientEncoding::Json,
    );
    let (client, _messages, mut signals) = Client::connect_with_signals(options);
    client.watch_feed().unwrap();
    let whole = next_whole(&mut signals).await;
    assert_eq!(whole.len(), 2);

    let mut ann = cluster.gateway(1).connect("ann").await;
    ann.send_and_wait("c2", "x1", "while up").await.unwrap();
    loop {
        match tokio::time::timeout(STEP, signals.recv())
            .await
            .expect("a signal")
        {
            Some(Signal::Feed { feed, whole: false })
                if feed.rooms.iter().any(|r| r.unread == 1) =>
            {
                break
            }
            Some(_) => {}
            None => panic!("the client stopped"),
        }
    }
    cluster.gateways[0].process.kill();
    ann.send_and_wait("c2", "x2", "while bob moves")
        .await
        .unwrap();
    // The new gateway's whole answer may be read before x2 is stored; a
    // live update must then count it.
    let whole = next_whole(&mut signals).await;
    let mut c2 = whole.into_iter().find(|r| r.room == "c2").unwrap();
    while (c2.unread, c2.head_seq) != (2, 2) {
        match tokio::time::timeout(STEP, signals.recv())
            .await
            .unwrap_or_else(|_| panic!("x2 not counted: c2 at {c2:?}"))
        {
            Some(Signal::Feed { feed, .. }) => {
                c2 = (feed.rooms.into_iter())
                    .find(|r| r.room == "c2")
                    .unwrap_or(c2);
            }
            Some(_) => {}
            None => panic!("the client stopped"),
        }
    }
    client.close();
}

/// The rooms of the next whole answer (all its frames).
async fn next_whole(signals: &mut Signals) -> Vec<RoomSummary> {
    let mut rooms = Vec::new();
    loop {
        match tokio::time::timeout(STEP, signals.recv())
            .await
            .expect("a signal")
        {
            Some(Signal::Feed { feed, whole: true }) => {
                rooms.extend(feed.rooms);
                if !feed.more {
                    return rooms;
                }
            }
            Some(_) => {}
            None => panic!("the client stopped"),
        }
    }
}
