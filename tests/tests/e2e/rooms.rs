//! A room's delivery on a gateway under stress: joins racing the room's
//! retirement, replays to sockets that do not read, gaps under a steady
//! stream.

use std::{sync::Arc, time::Duration};

use chat_client::{Reader, Writer};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{wait_for, Cluster, ClusterOptions};
use tokio::{sync::Semaphore, time::Instant};

use crate::support::*;

/// Writes `count` messages of `size` bytes straight into a room's history.
async fn fill_history(cluster: &Cluster, room: &str, count: i64, size: i32) {
    let pg = cluster.postgres.client().await;
    pg.execute(
        "INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at) \
         SELECT $1, g, gen_random_uuid(), 'filler', 'fill-' || g, repeat('x', $3), now() \
         FROM generate_series(1::int8, $2::int8) g",
        &[&room, &count, &size],
    )
    .await
    .unwrap();
    pg.execute(
        "UPDATE rooms SET last_seq = $2 WHERE id = $1",
        &[&room, &count],
    )
    .await
    .unwrap();
}

/// The next frame within `within`, or `None` on silence.
async fn frame_within(reader: &mut Reader, within: Duration) -> Option<Kind> {
    match tokio::time::timeout(within, reader.next()).await {
        Ok(Some(Ok(chat_client::Event::Frame(frame)))) => frame.kind,
        Ok(other) => panic!("expected a frame, got {other:?}"),
        Err(_) => None,
    }
}

/// Several sockets join and leave one room as fast as they can, so the
/// room's task keeps retiring and starting while joins arrive: every join
/// is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_and_leaving_in_a_tight_loop_never_loses_a_joined() {
    let users = ["u0", "u1", "u2", "u3"];
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("door", &users).await;
    let mut tasks = Vec::new();
    for user in users {
        let (mut w, mut r) = cluster.connect(0, user, Encoding::Proto).await;
        tasks.push(tokio::spawn(async move {
            for round in 0..150 {
                w.join("door", None).await.unwrap();
                match frame_within(&mut r, STEP).await {
                    Some(Kind::Joined(_)) => {}
                    other => panic!("{user} round {round}: no joined, got {other:?}"),
                }
                w.leave("door").await.unwrap();
                match frame_within(&mut r, STEP).await {
                    Some(Kind::Left(_)) => {}
                    other => panic!("{user} round {round}: no left, got {other:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// A socket that resumes from seq 0 of a long history and does not read it.
async fn stalled_replayer(cluster: &Cluster, user: &str) -> (Writer, Reader) {
    let (mut w, mut r) = cluster.connect(0, user, Encoding::Json).await;
    w.join("busy", Some(0)).await.unwrap();
    assert!(matches!(
        frame_within(&mut r, STEP).await,
        Some(Kind::Joined(_))
    ));
    (w, r)
}

const HISTORY: i64 = 1500;
const BODY: i32 = 16_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_to_sockets_that_do_not_read_never_delay_the_room() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster
        .create_room("busy", &["by", "jo", "rp0", "rp1", "tx"])
        .await;
    fill_history(&cluster, "busy", HISTORY, BODY).await;
    let (mut bw, mut br) = cluster.connect(0, "by", Encoding::Proto).await;
    join(&mut bw, &mut br, "busy", None).await;
    let _stalled = [
        stalled_replayer(&cluster, "rp0").await,
        stalled_replayer(&cluster, "rp1").await,
    ];
    // A live message reaches the bystander at once.
    let (mut tw, mut tr) = cluster.connect(0, "tx", Encoding::Json).await;
    let started = Instant::now();
    send_and_wait(&mut tw, &mut tr, "busy", "live", "now")
        .await
        .unwrap();
    let (got, _) = collect_messages(&mut br, 1, STEP).await;
    let live = started.elapsed();
    assert_eq!(got[0].seq, HISTORY as u64 + 1);
    // Another member's join is answered at once.
    let (mut jw, mut jr) = cluster.connect(0, "jo", Encoding::Json).await;
    let started = Instant::now();
    join(&mut jw, &mut jr, "busy", None).await;
    let joined = started.elapsed();
    println!("while two sockets stall a replay: live message {live:?}, join {joined:?}");
    assert!(live < Duration::from_secs(1), "live message took {live:?}");
    assert!(joined < Duration::from_secs(1), "join took {joined:?}");
}

/// Eight sockets resume from seq 0 of 1,500 × 16 KB messages and never
/// read: each holds at most a replay window, not its history. After they
/// leave, the memory goes back to the allocator for reuse: later rounds of
/// stalled replays end where the first ended. (The allocator keeps the
/// first round's pages mapped, so RSS is compared round to round.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_hold_bounded_memory_that_returns_after_the_sockets_leave() {
    let replayers: Vec<String> = (0..8).map(|i| format!("rp{i}")).collect();
    let mut members: Vec<&str> = replayers.iter().map(String::as_str).collect();
    members.push("reader");
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("busy", &members).await;
    fill_history(&cluster, "busy", HISTORY, BODY).await;
    // Warm up: one socket replays the whole history and reads it.
    let (mut w, mut r) = cluster.connect(0, "reader", Encoding::Json).await;
    w.join("busy", Some(0)).await.unwrap();
    let (got, _) = collect_messages(&mut r, HISTORY as usize, STEP).await;
    assert_gap_free(&got, HISTORY as usize, "reader");
    drop((w, r));
    let gateway = &cluster.gateways[0].process;
    let gone = || {
        let url = cluster.http_url(0, "/metrics");
        async move {
            let m = [scrape(&url).await];
            (total(&m, "chat_gateway_connections", &[]) == 0.0).then_some(())
        }
    };
    wait_for("the reader to go", STEP, gone).await;
    // Three rounds: a leak would grow RSS by about the stalled replays'
    // size every round; the allocator's warm-up does not.
    let mut rounds = Vec::new();
    for round in 0..3 {
        let before = gateway.rss_kib();
        let mut stalled = Vec::new();
        for user in &replayers {
            stalled.push(stalled_replayer(&cluster, user).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = gateway.rss_kib();
        drop(stalled);
        wait_for("the replayers to go", STEP, gone).await;
        // Freed pages go back to the system with a delay: the last round
        // waits (up to 10 s) to come down to the earlier rounds' level.
        let settled_limit = rounds
            .iter()
            .map(|&(_, _, after): &(u64, u64, u64)| after)
            .max()
            .map(|a| a + a / 10);
        let deadline = Instant::now() + Duration::from_secs(if round == 2 { 10 } else { 1 });
        let mut after = gateway.rss_kib();
        while settled_limit.is_some_and(|l| after > l) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            after = gateway.rss_kib();
        }
        rounds.push((before, during, after));
    }
    println!("gateway RSS KiB (before, 8 stalled replays, after) per round: {rounds:?}");
    let (before, during, _) = rounds[0];
    let per_socket = during.saturating_sub(before) / 8;
    assert!(per_socket < 4 * 1024, "{per_socket} KiB per stalled replay");
    let earlier = rounds[0].2.max(rounds[1].2);
    let last = rounds[2].2;
    assert!(
        last <= earlier + earlier / 10,
        "RSS kept growing: {earlier} KiB after earlier rounds, {last} KiB after the third"
    );
}

/// One fan-out message is lost while a sender streams into the room: the
/// gap is filled within a second even though fan-out never pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_under_a_steady_stream_is_filled_within_a_second() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("stream", &["tx", "rx", "ghost"]).await;
    let (mut rw, mut rr) = cluster.connect(0, "rx", Encoding::Proto).await;
    join(&mut rw, &mut rr, "stream", None).await;
    let (mut tw, mut tr) = cluster.connect(0, "tx", Encoding::Proto).await;
    let window = Arc::new(Semaphore::new(64));
    let streaming = Duration::from_secs(4);
    let sender = {
        let window = Arc::clone(&window);
        tokio::spawn(async move {
            let until = Instant::now() + streaming;
            let mut n = 0;
            while Instant::now() < until {
                window.acquire().await.unwrap().forget();
                tw.send("stream", &format!("s{n}"), "steady").await.unwrap();
                n += 1;
            }
            n
        })
    };
    let acks = tokio::spawn(async move {
        // Acks return window permits; the sender's own copies are ignored.
        while let Some(Ok(chat_client::Event::Frame(f))) = tr.next().await {
            if matches!(f.kind, Some(Kind::Ack(_))) {
                window.add_permits(1);
            }
        }
    });
    // The member reads as it arrives, until the stream has been quiet a while.
    let receiver = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(kind) = frame_within(&mut rr, Duration::from_secs(3)).await {
            if let Kind::Message(m) = kind {
                seen.push((m, chat_protocol::now_ms()));
            }
        }
        seen
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lost = store_without_fanout(&cluster, "stream", "lost").await;
    let sent = sender.await.unwrap();
    let seen = receiver.await.unwrap();
    acks.abort();
    let (messages, arrivals): (Vec<_>, Vec<_>) = seen.into_iter().unzip();
    assert_gap_free(&messages, sent + 1, "rx");
    let latency = arrivals[lost.seq as usize - 1] - lost.ts_ms;
    println!(
        "{sent} streamed; the lost seq {} was filled {latency} ms after its commit",
        lost.seq
    );
    assert!(latency <= 1000, "gap filled after {latency} ms");
}

/// The reorder buffer is bounded: with a missing message and gap filling
/// far off, a room that buffers more than `max_pending` messages drops the
/// newest, refills from the store at once and counts it, and its members
/// still get everything, in order, long before the gap timer would fire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overflowing_reorder_buffer_refills_from_the_store() {
    let options = ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_DELIVERY__GAP_FILL_AFTER_MS", "60000")
        .gateway_env("CHAT_GATEWAY_DELIVERY__HEAD_PROBE_MS", "60000")
        .gateway_env("CHAT_GATEWAY_DELIVERY__IDLE_PROBE_MAX_MS", "60000")
        .gateway_env("CHAT_GATEWAY_DELIVERY__MAX_PENDING", "20");
    let cluster = Cluster::start(options).await;
    cluster.create_room("deep", &["tx", "rx", "ghost"]).await;
    let (mut rw, mut rr) = cluster.connect(0, "rx", Encoding::Proto).await;
    join(&mut rw, &mut rr, "deep", None).await;
    let lost = store_without_fanout(&cluster, "deep", "lost").await;
    assert_eq!(lost.seq, 1);
    let (mut tw, mut tr) = cluster.connect(0, "tx", Encoding::Json).await;
    for n in 0..40 {
        send_and_wait(&mut tw, &mut tr, "deep", &format!("d{n}"), "behind a gap")
            .await
            .unwrap();
    }
    let (got, _) = collect_messages(&mut rr, 41, Duration::from_secs(10)).await;
    assert_gap_free(&got, 41, "rx");
    let m = [scrape(&cluster.http_url(0, "/metrics")).await];
    assert!(total(&m, "chat_gateway_pending_overflows_total", &[]) >= 1.0);
}

/// A member removed through one gateway's admin API leaves the room on
/// every gateway at once: their joined socket elsewhere hears `left`, gets
/// nothing of the room after it, and their next send and join are refused,
/// while the others chat on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_leaves_the_room_on_every_gateway_at_once() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("club", &["ada", "bob"]).await;
    let (mut ada_w, mut ada_r) = cluster.connect(0, "ada", Encoding::Json).await;
    let (mut bob_w, mut bob_r) = cluster.connect(1, "bob", Encoding::Proto).await;
    join(&mut ada_w, &mut ada_r, "club", None).await;
    join(&mut bob_w, &mut bob_r, "club", None).await;
    send_and_wait(&mut ada_w, &mut ada_r, "club", "before", "hi bob")
        .await
        .unwrap();
    match frame_within(&mut bob_r, STEP).await {
        Some(Kind::Message(m)) => assert_eq!(m.client_msg_id, "before"),
        other => panic!("bob expected ada's message, got {other:?}"),
    }

    let removed_at = Instant::now();
    let response = reqwest::Client::new()
        .delete(cluster.http_url(0, "/v1/rooms/club/members/bob"))
        .bearer_auth(chat_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // The removal's event in the room's sequence may reach bob before the
    // gateway drops him (the announcement and the event race), never after.
    loop {
        match frame_within(&mut bob_r, STEP).await {
            Some(Kind::Left(left)) => break assert_eq!(left.room, "club"),
            Some(Kind::Message(m)) if m.kind == "member_left" => assert_eq!(m.member, "bob"),
            other => panic!("bob expected left, got {other:?}"),
        }
    }
    println!(
        "removal in effect on the other gateway after {:?}",
        removed_at.elapsed()
    );

    send_and_wait(&mut ada_w, &mut ada_r, "club", "after", "bye bob")
        .await
        .unwrap();
    let refused = send_and_wait(&mut bob_w, &mut bob_r, "club", "sneak", "still here?")
        .await
        .expect_err("a removed member's send is refused");
    assert_eq!(refused.code, "forbidden");
    let request_id = bob_w.join("club", None).await.unwrap();
    let reply = next_frame(&mut bob_r).await;
    assert_eq!(reply.request_id, request_id);
    match reply.kind {
        Some(Kind::Error(e)) => assert_eq!(e.code, "forbidden"),
        other => panic!("a removed member's join is refused, got {other:?}"),
    }
    assert_eq!(
        frame_within(&mut bob_r, Duration::from_millis(500)).await,
        None,
        "nothing of the room reaches bob after his removal"
    );
    let stored: Vec<(String, String)> = cluster
        .postgres
        .client()
        .await
        .query(
            "SELECT kind, body FROM messages WHERE room_id = 'club' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [("", "hi bob"), ("member_left", "bob"), ("", "bye bob")];
    assert_eq!(
        stored,
        expected.map(|(k, b)| (k.to_owned(), b.to_owned())),
        "the removal has its place in the room's sequence"
    );
    // Resuming from the start replays the removal in its place.
    let (mut again_w, mut again_r) = cluster.connect(1, "ada", Encoding::Json).await;
    join(&mut again_w, &mut again_r, "club", Some(0)).await;
    let (seen, _) = collect_messages(&mut again_r, 3, STEP).await;
    let kinds: Vec<(u64, &str, &str)> = seen
        .iter()
        .map(|m| (m.seq, m.kind.as_str(), m.member.as_str()))
        .collect();
    assert_eq!(kinds, [(1, "", ""), (2, "member_left", "bob"), (3, "", "")]);
}

/// Two gateways, two workers, five senders keeping the room busy: the
/// admin removes bob through gateway 0 while bob reads on gateway 1. Bob's
/// messages stop at his `member_left` (none with a later seq, none
/// missing before it), he hears `left`, his send is refused, and every
/// other sender's message is acked and stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_from_a_busy_room_gets_nothing_after_the_removal() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let senders = ["s0", "s1", "s2", "s3", "s4"];
    let mut members = senders.to_vec();
    members.push("bob");
    cluster.create_room("busy", &members).await;
    let (mut bob_w, mut bob_r) = cluster.connect(1, "bob", Encoding::Proto).await;
    let head = join(&mut bob_w, &mut bob_r, "busy", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut chatting = Vec::new();
    for sender in senders {
        chatting.push(chat_steadily(&cluster, sender, "busy", &stop).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let response = reqwest::Client::new()
        .delete(cluster.http_url(0, "/v1/rooms/busy/members/bob"))
        .bearer_auth(chat_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut seqs = Vec::new();
    let mut removal = None;
    loop {
        match frame_within(&mut bob_r, STEP).await {
            Some(Kind::Message(m)) => {
                if m.kind == "member_left" {
                    removal = Some(m.seq);
                }
                seqs.push(m.seq);
            }
            Some(Kind::Left(_)) => break,
            other => panic!("bob expected messages then left, got {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        frame_within(&mut bob_r, Duration::from_millis(300)).await,
        None,
        "nothing after left"
    );
    let refused = send_and_wait(&mut bob_w, &mut bob_r, "busy", "sneak", "still here?")
        .await
        .expect_err("a removed member may not send");
    assert_eq!(refused.code, "forbidden");
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for task in chatting {
        for (id, reply) in task.await.unwrap() {
            reply.unwrap_or_else(|e| panic!("{id} refused: {e:?}"));
            acked += 1;
        }
    }

    let stored = cluster.stored("busy").await;
    let removal_seq = stored
        .iter()
        .find(|(_, sender, _, body)| sender == "system:admin" && body == "bob")
        .map(|(seq, ..)| *seq as u64)
        .expect("the removal is stored");
    if let Some(seen) = removal {
        assert_eq!(seen, removal_seq);
    }
    let last = seqs.last().copied().unwrap_or(head);
    assert!(
        last <= removal_seq,
        "bob got seq {last} after his removal at {removal_seq}"
    );
    let expected: Vec<u64> = (head + 1..=last).collect();
    assert_eq!(seqs, expected, "no gap or duplicate before the removal");
    assert_eq!(stored.len(), acked + 1, "every acked send stored once");
    println!(
        "bob got {} messages, the last at seq {last}; removal at {removal_seq}; {acked} sends acked",
        seqs.len()
    );
}
