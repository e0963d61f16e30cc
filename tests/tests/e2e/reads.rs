//! Read markers and unread counts: `markRead` moves a member's marker
//! (never back, never past the room's head), stored by the workers in
//! batches; the room's sockets on every gateway hear `reads`, at most one a
//! second; the unread count (others' chat messages after the marker) shows
//! after a join, in the room list and in `GET /v1/me/rooms`, and stays
//! equal to a count from Postgres under concurrent sends and marks.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chat_proto::v1::{server_frame::Kind, Reads};
use chat_protocol::codec::Encoding;
use chat_tests::{Cluster, ClusterOptions, Frames, Session, STEP};
use tokio::time::Instant;

/// The next `reads` pushed to the socket (skipping other frames).
async fn next_reads(session: &mut Session) -> Reads {
    loop {
        if let Some(Kind::Reads(reads)) = session.next_any_frame().await.kind {
            return reads;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markers_move_up_only_and_unread_counts_show_everywhere() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("team", &["ann", "bob"]).await;
    let mut ann = cluster.gateway(0).connect("ann").await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    assert_eq!(ann.join("team").await, 0);
    let joined = ann.next_read_marker().await;
    assert_eq!((joined.seq, joined.unread, joined.head_seq), (0, 0, 0));
    bob.join("team").await;
    for n in 1..=5 {
        ann.send_and_wait("team", &format!("a{n}"), "hi")
            .await
            .unwrap();
    }
    bob.send_and_wait("team", "b1", "mine").await.unwrap();
    ann.send_and_wait("team", "a6", "and one more")
        .await
        .unwrap();
    // Seqs 1-5 and 7 are ann's, 6 is bob's own.
    assert_eq!(bob.listed("team").await, (0, 6));
    let (status, body) = cluster
        .gateway(0)
        .get(&cluster.token("bob"), "/v1/me/rooms")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rooms"][0]["unread"], 6, "{body}");

    let marked = bob.mark_read("team", 3).await.unwrap();
    assert_eq!(
        (marked.seq, marked.unread, marked.head_seq),
        (3, 3, 7),
        "4, 5 and 7 are unread"
    );
    let reads = next_reads(&mut ann).await;
    assert_eq!(reads.room, "team");
    assert_eq!(
        reads
            .reads
            .iter()
            .map(|r| (r.user.as_str(), r.seq))
            .collect::<Vec<_>>(),
        [("bob", 3)]
    );
    assert_eq!(bob.listed("team").await, (3, 3));
    assert_eq!(cluster.unread("team", "bob").await, (3, 3));

    // Backwards: the marker stays where it is, and says so.
    assert_eq!(bob.mark_read("team", 2).await.unwrap().seq, 3);
    // Past the head, zero, negative: refused; an outsider: forbidden.
    assert_eq!(
        bob.mark_read("team", 8).await.unwrap_err(),
        "invalid_argument"
    );
    assert_eq!(
        bob.mark_read("team", 0).await.unwrap_err(),
        "invalid_argument"
    );
    assert_eq!(
        bob.mark_read("team", -4).await.unwrap_err(),
        "invalid_argument"
    );
    let mut zed = cluster.gateway(0).connect("zed").await;
    assert_eq!(zed.mark_read("team", 1).await.unwrap_err(), "forbidden");
    assert_eq!(cluster.unread("team", "bob").await, (3, 3));

    // A socket that joins again hears the marker and the unread up to the
    // head it joined at.
    let mut again = cluster.gateway(0).connect("bob").await;
    assert_eq!(again.join("team").await, 7);
    let rejoined = again.next_read_marker().await;
    assert_eq!(
        (
            rejoined.room.as_str(),
            rejoined.seq,
            rejoined.unread,
            rejoined.head_seq
        ),
        ("team", 3, 3, 7)
    );

    // Marks in a burst reach the room as at most one `reads` a second, the
    // last with the newest marker.
    let started = Instant::now();
    for seq in 4..=7 {
        bob.mark_read("team", seq).await.unwrap();
    }
    let mut frames = Vec::new();
    while frames.last().is_none_or(|r: &Reads| r.reads[0].seq < 7) {
        frames.push(next_reads(&mut ann).await);
    }
    let took = started.elapsed();
    assert!(
        frames.len() as u128 <= 1 + took.as_millis() / 1000,
        "{} reads in {took:?}",
        frames.len()
    );
    assert_eq!(cluster.unread("team", "bob").await, (7, 0));
    assert_eq!(bob.listed("team").await, (7, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_stay_true_under_concurrent_sends_and_marks() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    cluster.create_room("busy", &["ann", "bob", "cat"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = ["ann", "cat"]
        .into_iter()
        .enumerate()
        .map(|(i, user)| {
            let session = cluster.gateway(i);
            (user, session)
        })
        .collect();
    let mut chatting = Vec::new();
    for (user, gateway) in senders {
        let mut session = gateway.connect(user).await;
        session.join("busy").await;
        chatting.push(session.chat_steadily("busy", &stop));
    }
    // Bob reads along on the other gateway and marks what he has seen,
    // sometimes behind what he marked before.
    let mut bob = cluster.gateway(1).connect("bob").await;
    bob.join("busy").await;
    let mut highest = 0;
    let mut seen = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (messages, _) = bob.collect_messages(5, STEP).await;
        seen = seen.max(messages.last().unwrap().seq);
        let asked = if seen % 3 == 0 { seen / 2 } else { seen };
        let marker = bob.mark_read("busy", asked as i64).await.unwrap();
        assert!(marker.seq >= highest, "moved back to {}", marker.seq);
        highest = highest.max(asked);
        assert_eq!(marker.seq, highest);
    }
    stop.store(true, Ordering::Relaxed);
    for task in chatting {
        assert!(task.await.unwrap().iter().all(|(_, r)| r.is_ok()));
    }
    let (marker, unread) = cluster.unread("busy", "bob").await;
    assert_eq!(marker, highest);
    assert!(unread > 0, "sends went on after the last mark");
    assert_eq!(bob.listed("busy").await, (marker, unread));
    let (status, body) = cluster
        .gateway(0)
        .get(&cluster.token("bob"), "/v1/me/rooms")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["rooms"][0]["unread"], unread, "{body}");
}
