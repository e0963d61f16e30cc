//! Slow consumers, by class: a socket whose queue fills is not closed for
//! it. Its stored messages stop at the first that does not fit, and it is
//! told `resync {room, fromSeq}`; joining again from there, it gets the rest
//! once each and in order. Only a socket that ignores the resync (neither
//! joins again nor leaves while the room goes on) is closed with 4008. A
//! bystander in the same room gets everything, on time.

use chat_client::{Client, ClientEncoding, ClientOptions, Event, Reader, Writer};
use chat_proto::v1::{server_frame::Kind, Message, Resync};
use chat_protocol::codec::Encoding;
use chat_tests::{assert_gap_free, Cluster, ClusterOptions, Frames, STEP};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

const SENDS: usize = 1200;

/// Sockets of 8 frames, told to resync after `resync_timeout_ms`.
fn options(resync_timeout_ms: &str) -> ClusterOptions {
    ClusterOptions::new(1, 1)
        .gateway_env("CHAT_GATEWAY_LIMITS__SOCKET_QUEUE", "8")
        .gateway_env(
            "CHAT_GATEWAY_DELIVERY__RESYNC_TIMEOUT_MS",
            resync_timeout_ms,
        )
}

/// `SENDS` sends of 16 KB to `room` from `talker` (64 in flight): enough to
/// fill a socket's TCP buffers (megabytes on loopback), then its queue.
async fn flood(cluster: &Cluster, room: &str) {
    let (mut tw, tr) = cluster.gateway(0).connect("talker").await.into_parts();
    let body = "z".repeat(16 * 1024);
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let acks = {
        let window = std::sync::Arc::clone(&window);
        let mut tr = tr;
        tokio::spawn(async move { tr.collect(0, SENDS, Some(window), STEP * 2).await })
    };
    for n in 0..SENDS {
        window.acquire().await.unwrap().forget();
        tw.send(room, &format!("t{n:04}"), &body).await.unwrap();
    }
    acks.await.unwrap();
}

/// What the socket got until the resync (or the close): its messages,
/// the resync if any, and the close if any.
async fn until_resync(reader: &mut Reader) -> (Vec<Message>, Option<Resync>, Option<CloseFrame>) {
    let mut messages = Vec::new();
    loop {
        match tokio::time::timeout(STEP, reader.next()).await {
            Ok(Some(Ok(Event::Frame(f)))) => match f.kind {
                Some(Kind::Message(m)) => messages.push(m),
                Some(Kind::Resync(resync)) => return (messages, Some(resync), None),
                _ => {}
            },
            Ok(Some(Ok(Event::Closed(frame)))) => return (messages, None, frame),
            other => panic!("expected frames then a resync or a close, got {other:?}"),
        }
    }
}

async fn join_since(writer: &mut Writer, reader: &mut Reader, room: &str, since: u64) {
    writer.join(room, Some(since)).await.unwrap();
    loop {
        if let Some(Kind::Joined(_)) = reader.next_frame().await.kind {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_falls_behind_is_told_to_resync_and_catches_up_without_a_gap() {
    // Time enough to read what it holds after the flood, then join again.
    let cluster = Cluster::start(options("30000")).await;
    cluster
        .create_room("room", &["slow", "quick", "talker"])
        .await;
    let (mut sw, mut sr) = cluster
        .gateway(0)
        .connect_with("slow", Encoding::Proto)
        .await
        .into_parts();
    join_since(&mut sw, &mut sr, "room", 0).await;
    // The bystander reads with the client library, which answers a resync
    // of its own (its queue holds only 8 frames too) by joining again.
    let options = ClientOptions::new(
        [cluster.gateway(0).ws_url()],
        cluster.token("quick"),
        ClientEncoding::Json,
    );
    let (quick, mut messages) = Client::connect(options);
    quick.join("room", None).await.unwrap();
    let bystander = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < SENDS {
            let next = tokio::time::timeout(STEP, messages.recv()).await;
            got.push(next.expect("the bystander keeps getting messages").unwrap());
        }
        got
    });
    // The slow socket reads nothing while the room is flooded.
    flood(&cluster, "room").await;
    let (got, resync, close) = until_resync(&mut sr).await;
    assert!(close.is_none(), "not closed: {close:?}");
    let resync = resync.expect("told to resync");
    assert_eq!(resync.room, "room");
    let last = got.last().map_or(0, |m| m.seq);
    assert_eq!(resync.from_seq, last + 1, "from the first it did not get");
    assert_gap_free(&got, last as usize, "slow before the resync");
    assert!((last as usize) < SENDS, "fell behind before the end");
    // Joining again from there: the rest, once each, in order.
    join_since(&mut sw, &mut sr, "room", last).await;
    let (rest, _) = sr.collect_messages(SENDS - last as usize, STEP).await;
    let seqs: Vec<u64> = rest.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (last + 1..=SENDS as u64).collect::<Vec<_>>());
    assert_gap_free(&bystander.await.unwrap(), SENDS, "the bystander");
    let metrics = cluster.gateway(0).metrics().await;
    assert!(metrics.total("chat_gateway_queue_drops_total", &[("what", "resync")]) >= 1.0);
    assert_eq!(
        metrics.total("chat_gateway_queue_drops_total", &[("what", "closed")]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_ignores_its_resync_is_closed_with_4008_and_resumes() {
    let cluster = Cluster::start(options("1000")).await;
    cluster.create_room("room", &["sleepy", "talker"]).await;
    let sleepy = cluster
        .gateway(0)
        .connect_with("sleepy", Encoding::Proto)
        .await;
    let (mut writer, mut reader) = sleepy.into_parts();
    writer.join("room", None).await.unwrap();
    // It reads nothing while the room is flooded, and keeps sending (under
    // its send rate): its acks wait behind the full queue, so sends are in
    // flight when the gateway closes it.
    let sending = tokio::spawn(async move {
        for i in 0.. {
            if writer
                .send("room", &format!("late{i:03}"), "late")
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    flood(&cluster, "room").await;
    // It never joins again; the room goes on past the deadline.
    let mut talker = cluster.gateway(0).connect("talker").await;
    talker
        .send_and_wait("room", "after", "still here")
        .await
        .unwrap();
    let (mut got, mut resync, mut acked) = (Vec::new(), None, std::collections::BTreeSet::new());
    let close = loop {
        match tokio::time::timeout(STEP * 2, reader.next()).await {
            Ok(Some(Ok(Event::Frame(f)))) => match f.kind {
                Some(Kind::Message(m)) if resync.is_none() => got.push(m),
                Some(Kind::Resync(r)) => resync = Some(r),
                Some(Kind::Ack(ack)) => drop(acked.insert(ack.client_msg_id)),
                _ => {}
            },
            Ok(Some(Ok(Event::Closed(frame)))) => break frame.expect("a close frame"),
            other => panic!("expected frames then a close, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 4008);
    let last = got.last().map_or(0, |m| m.seq);
    assert_eq!(resync.expect("told to resync").from_seq, last + 1);
    sending.await.unwrap();
    let stored = cluster.stored("room").await;
    let late: std::collections::BTreeSet<String> = (stored.iter())
        .filter(|m| m.2.starts_with("late"))
        .map(|m| m.2.clone())
        .collect();
    assert!(!late.is_empty(), "some sends were accepted");
    assert_eq!(
        acked, late,
        "every send stored was answered before the close"
    );
    let metrics = cluster.gateway(0).metrics().await;
    assert_eq!(
        metrics.total("chat_gateway_queue_drops_total", &[("what", "closed")]),
        1.0
    );
    // Resume from the last seq seen: the rest, once each.
    let mut resumed = cluster
        .gateway(0)
        .connect_with("sleepy", Encoding::Proto)
        .await;
    resumed.writer.join("room", Some(last)).await.unwrap();
    let total = SENDS + 1 + late.len();
    let (rest, _) = resumed.collect_messages(total - last as usize, STEP).await;
    let seqs: Vec<u64> = rest.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (last + 1..=total as u64).collect::<Vec<_>>());
}
