//! A room's delivery on a gateway under stress: joins racing the room's
//! retirement, replays to sockets that do not read, gaps under a steady
//! stream.

use std::{sync::Arc, time::Duration};

use chat_client::{Reader, Writer};
use chat_proto::v1::server_frame::Kind;
use chat_protocol::codec::Encoding;
use chat_tests::{
    assert_gap_free, is_status_push, wait_for, Cluster, ClusterOptions, Frames, Metrics, STEP,
};
use tokio::{sync::Semaphore, time::Instant};

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

/// The next frame within `within` (skipping status pushes: read markers,
/// presence), or `None` on silence.
async fn frame_within(reader: &mut Reader, within: Duration) -> Option<Kind> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, reader.next()).await {
            Ok(Some(Ok(chat_client::Event::Frame(frame)))) if is_status_push(&frame) => continue,
            Ok(Some(Ok(chat_client::Event::Frame(frame)))) => return frame.kind,
            Ok(other) => panic!("expected a frame, got {other:?}"),
            Err(_) => return None,
        }
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
        let mut socket = cluster.gateway(0).connect_with(user, Encoding::Proto).await;
        tasks.push(tokio::spawn(async move {
            for round in 0..150 {
                socket.writer.join("door", None).await.unwrap();
                match frame_within(&mut socket.reader, STEP).await {
                    Some(Kind::Joined(_)) => {}
                    other => panic!("{user} round {round}: no joined, got {other:?}"),
                }
                socket.writer.leave("door").await.unwrap();
                match frame_within(&mut socket.reader, STEP).await {
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
    let mut socket = cluster.gateway(0).connect(user).await;
    socket.writer.join("busy", Some(0)).await.unwrap();
    assert!(matches!(
        frame_within(&mut socket.reader, STEP).await,
        Some(Kind::Joined(_))
    ));
    socket.into_parts()
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
    let mut by = cluster.gateway(0).connect_with("by", Encoding::Proto).await;
    by.join("busy").await;
    let _stalled = [
        stalled_replayer(&cluster, "rp0").await,
        stalled_replayer(&cluster, "rp1").await,
    ];
    // A live message reaches the bystander at once.
    let mut tx = cluster.gateway(0).connect("tx").await;
    let started = Instant::now();
    tx.send_and_wait("busy", "live", "now").await.unwrap();
    let (got, _) = by.collect_messages(1, STEP).await;
    let live = started.elapsed();
    assert_eq!(got[0].seq, HISTORY as u64 + 1);
    // Another member's join is answered at once.
    let mut jo = cluster.gateway(0).connect("jo").await;
    let started = Instant::now();
    jo.join("busy").await;
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
    let mut reader = cluster.gateway(0).connect("reader").await;
    reader.writer.join("busy", Some(0)).await.unwrap();
    let (got, _) = reader.collect_messages(HISTORY as usize, STEP).await;
    assert_gap_free(&got, HISTORY as usize, "reader");
    drop(reader);
    let gateway = &cluster.gateways[0].process;
    let gone = || {
        let url = cluster.gateway(0).url("/metrics");
        async move {
            let m = Metrics::scrape(&url).await;
            (m.total("chat_gateway_connections", &[]) == 0.0).then_some(())
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
        // The replays stay stalled a set time before RSS is read.
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
    let mut rx = cluster.gateway(0).connect_with("rx", Encoding::Proto).await;
    rx.join("stream").await;
    let mut tx = cluster.gateway(0).connect_with("tx", Encoding::Proto).await;
    let window = Arc::new(Semaphore::new(64));
    let streaming = Duration::from_secs(4);
    let sender = {
        let window = Arc::clone(&window);
        tokio::spawn(async move {
            let until = Instant::now() + streaming;
            let mut n = 0;
            while Instant::now() < until {
                window.acquire().await.unwrap().forget();
                tx.writer
                    .send("stream", &format!("s{n}"), "steady")
                    .await
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    let acks = tokio::spawn(async move {
        // Acks return window permits; the sender's own copies are ignored.
        while let Some(Ok(chat_client::Event::Frame(f))) = tx.reader.next().await {
            if matches!(f.kind, Some(Kind::Ack(_))) {
                window.add_permits(1);
            }
        }
    });
    // The member reads as it arrives, until the stream has been quiet a while.
    let receiver = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(kind) = frame_within(&mut rx.reader, Duration::from_secs(3)).await {
            if let Kind::Message(m) = kind {
                seen.push((m, chat_protocol::now_ms()));
            }
        }
        seen
    });
    // A second into the 4 s stream, so the lost message falls mid-stream.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lost = cluster.store_without_fanout("stream", "lost").await;
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
    let mut rx = cluster.gateway(0).connect_with("rx", Encoding::Proto).await;
    rx.join("deep").await;
    let lost = cluster.store_without_fanout("deep", "lost").await;
    assert_eq!(lost.seq, 1);
    let mut tx = cluster.gateway(0).connect("tx").await;
    for n in 0..40 {
        tx.send_and_wait("deep", &format!("d{n}"), "behind a gap")
            .await
            .unwrap();
    }
    let (got, _) = rx.collect_messages(41, Duration::from_secs(10)).await;
    assert_gap_free(&got, 41, "rx");
    let m = cluster.gateway(0).metrics().await;
    assert!(m.total("chat_gateway_pending_overflows_total", &[]) >= 1.0);
}

/// A member removed through one gateway's admin API leaves the room on
/// every gateway at once: their joined socket elsewhere hears `left`, gets
/// nothing of the room after it, and their next send and join are refused,
/// while the others chat on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_leaves_the_room_on_every_gateway_at_once() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    cluster.create_room("club", &["ada", "bob"]).await;
    let mut ada = cluster.gateway(0).connect("ada").await;
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    ada.join("club").await;
    bob.join("club").await;
    ada.send_and_wait("club", "before", "hi bob").await.unwrap();
    match frame_within(&mut bob.reader, STEP).await {
        Some(Kind::Message(m)) => assert_eq!(m.client_msg_id, "before"),
        other => panic!("bob expected ada's message, got {other:?}"),
    }

    let removed_at = Instant::now();
    let response = reqwest::Client::new()
        .delete(cluster.gateway(0).url("/v1/rooms/club/members/bob"))
        .bearer_auth(chat_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    // The removal's event in the room's sequence may reach bob before the
    // gateway drops him (the announcement and the event race), never after.
    loop {
        match frame_within(&mut bob.reader, STEP).await {
            Some(Kind::Left(left)) => break assert_eq!(left.room, "club"),
            Some(Kind::Message(m)) if m.kind == "member_left" => assert_eq!(m.member, "bob"),
            other => panic!("bob expected left, got {other:?}"),
        }
    }
    println!(
        "removal in effect on the other gateway after {:?}",
        removed_at.elapsed()
    );

    ada.send_and_wait("club", "after", "bye bob").await.unwrap();
    let refused = bob
        .send_and_wait("club", "sneak", "still here?")
        .await
        .expect_err("a removed member's send is refused");
    assert_eq!(refused.code, "forbidden");
    let request_id = bob.writer.join("club", None).await.unwrap();
    let reply = bob.next_frame().await;
    assert_eq!(reply.request_id, request_id);
    match reply.kind {
        Some(Kind::Error(e)) => assert_eq!(e.code, "forbidden"),
        other => panic!("a removed member's join is refused, got {other:?}"),
    }
    assert_eq!(
        frame_within(&mut bob.reader, Duration::from_millis(500)).await,
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
    let mut again = cluster.gateway(1).connect("ada").await;
    again.join_since("club", 0).await;
    let (seen, _) = again.collect_messages(3, STEP).await;
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
    let mut bob = cluster
        .gateway(1)
        .connect_with("bob", Encoding::Proto)
        .await;
    let head = bob.join("busy").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut chatting = Vec::new();
    for sender in senders {
        chatting.push(
            cluster
                .gateway(0)
                .connect(sender)
                .await
                .chat_steadily("busy", &stop),
        );
    }
    wait_for("every sender to be chatting", STEP, || async {
        let stored = cluster.stored("busy").await;
        senders
            .iter()
            .all(|s| stored.iter().any(|(_, sender, _, _)| sender == s))
            .then_some(())
    })
    .await;

    let response = reqwest::Client::new()
        .delete(cluster.gateway(0).url("/v1/rooms/busy/members/bob"))
        .bearer_auth(chat_tests::cluster::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let mut seqs = Vec::new();
    let mut removal = None;
    loop {
        match frame_within(&mut bob.reader, STEP).await {
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
    // Stays: a window in which nothing more may arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        frame_within(&mut bob.reader, Duration::from_millis(300)).await,
        None,
        "nothing after left"
    );
    let refused = bob
        .send_and_wait("busy", "sneak", "still here?")
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
