//! Client-side helpers that read like what a chat user does.

use std::{sync::Arc, time::Duration};

use chat_client::{Event, Reader, Writer};
use chat_proto::v1::{server_frame::Kind, Ack, Error as ErrorFrame, Message, ServerFrame};
use chat_shared::{
    config::{PostgresConfig, Secret},
    store::{NewMessage, Store},
    RoomId,
};
use chat_tests::Cluster;
use prometheus_parse::{Scrape, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;

pub const STEP: Duration = Duration::from_secs(15);

/// The next frame, failing the test on close, error or silence.
pub async fn next_frame(reader: &mut Reader) -> ServerFrame {
    match tokio::time::timeout(STEP, reader.next()).await {
        Ok(Some(Ok(Event::Frame(frame)))) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The close frame the server sends next (frames before it are skipped).
pub async fn expect_close(reader: &mut Reader) -> Option<CloseFrame> {
    loop {
        match tokio::time::timeout(STEP, reader.next()).await {
            Ok(Some(Ok(Event::Frame(_)))) => continue,
            Ok(Some(Ok(Event::Closed(frame)))) => return frame,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

/// Joins a room and returns the head seq the gateway reported.
pub async fn join(writer: &mut Writer, reader: &mut Reader, room: &str, since: Option<u64>) -> u64 {
    let request_id = writer.join(room, since).await.unwrap();
    let frame = next_frame(reader).await;
    assert_eq!(frame.request_id, request_id);
    match frame.kind {
        Some(Kind::Joined(j)) => j.head_seq,
        other => panic!("expected joined, got {other:?}"),
    }
}

/// Sends and waits for the reply to that request (skipping pushed messages).
pub async fn send_and_wait(
    writer: &mut Writer,
    reader: &mut Reader,
    room: &str,
    id: &str,
    body: &str,
) -> Result<Ack, ErrorFrame> {
    let request_id = writer.send(room, id, body).await.unwrap();
    reply_to(reader, &request_id).await
}

/// The ack or error answering `request_id`, skipping other frames.
pub async fn reply_to(reader: &mut Reader, request_id: &str) -> Result<Ack, ErrorFrame> {
    loop {
        let frame = next_frame(reader).await;
        if frame.request_id != request_id {
            continue;
        }
        return match frame.kind {
            Some(Kind::Ack(ack)) => Ok(ack),
            Some(Kind::Error(e)) => Err(e),
            other => panic!("unexpected reply {other:?}"),
        };
    }
}

/// The next error frame (skipping pushed messages).
pub async fn next_error(reader: &mut Reader) -> (String, ErrorFrame) {
    loop {
        let frame = next_frame(reader).await;
        if let Some(Kind::Error(e)) = frame.kind {
            return (frame.request_id, e);
        }
    }
}

/// Reads until `count` messages of the room arrived; also returns acks seen.
pub async fn collect_messages(
    reader: &mut Reader,
    count: usize,
    within: Duration,
) -> (Vec<Message>, Vec<(String, Ack)>) {
    collect(reader, count, 0, None, within).await
}

/// Reads until `count` messages and at least `acks_expected` acks arrived.
/// Each ack returns a permit to `window`, as a client that caps its sends
/// in flight would.
pub async fn collect(
    reader: &mut Reader,
    count: usize,
    acks_expected: usize,
    window: Option<Arc<Semaphore>>,
    within: Duration,
) -> (Vec<Message>, Vec<(String, Ack)>) {
    let mut messages = Vec::new();
    let mut acks = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while messages.len() < count || acks.len() < acks_expected {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, reader.next()).await {
            Ok(Some(Ok(Event::Frame(frame)))) => match frame.kind {
                Some(Kind::Message(m)) => messages.push(m),
                Some(Kind::Ack(a)) => {
                    acks.push((frame.request_id, a));
                    if let Some(w) = &window {
                        w.add_permits(1);
                    }
                }
                Some(Kind::Error(e)) => panic!("error frame while collecting: {e:?}"),
                _ => {}
            },
            other => panic!(
                "stopped after {} of {count} messages and {} of {acks_expected} acks: {other:?}",
                messages.len(),
                acks.len()
            ),
        }
    }
    (messages, acks)
}

/// Asserts the messages are exactly seqs 1..=n, in order.
pub fn assert_gap_free(messages: &[Message], n: usize, who: &str) {
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let expected: Vec<u64> = (1..=n as u64).collect();
    if seqs != expected {
        let first_bad = seqs.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "{who} saw {} messages, not seqs 1..={n} in order (first difference at index {first_bad:?})",
            seqs.len()
        );
    }
}

/// One scrape of a `/metrics` endpoint.
pub async fn scrape(url: &str) -> Scrape {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus text format")
}

/// Sum of a counter, gauge or histogram count over samples whose labels match.
pub fn total(scrapes: &[Scrape], metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrapes
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => 0.0,
        })
        .sum()
}

/// Stores a message the way a worker does but never publishes its fan-out,
/// as if NATS had dropped it.
pub async fn store_without_fanout(
    cluster: &Cluster,
    room: &str,
    id: &str,
) -> chat_proto::v1::Message {
    let store = Store::new(&PostgresConfig {
        url: Secret::new(cluster.postgres.url()),
        pool_size: 1,
    })
    .unwrap();
    let outcome = store
        .persist(&[NewMessage {
            room: RoomId::parse(room).unwrap(),
            sender: "ghost".into(),
            client_msg_id: id.into(),
            body: "dropped fan-out".into(),
        }])
        .await
        .unwrap();
    match outcome.into_iter().next().unwrap() {
        chat_shared::store::Persisted::Stored { message, .. } => message,
        other => panic!("not stored: {other:?}"),
    }
}
