//! Client-side helpers that read like what a chat user does.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_nats::jetstream::{
    self, consumer::pull, message::StreamMessage, stream::RawMessageErrorKind,
};
use chat_client::{Event, Reader, Writer};
use chat_config::Secret;
use chat_proto::{
    internal::Envelope,
    v1::{server_frame::Kind, Ack, Error as ErrorFrame, Message, ServerFrame},
};
use chat_protocol::{codec::Encoding, subjects, RoomId};
use chat_store::{
    PostgresConfig, {NewMessage, Store},
};
use chat_tests::{wait_for, Cluster};
use prometheus_parse::{Scrape, Value};
use prost::Message as _;
use tokio::{sync::Semaphore, task::JoinHandle};
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

/// A user on gateway 0 who sends to `room` one message at a time, each
/// after the previous one's reply, until `stop` is set. The task returns
/// each send's client_msg_id and reply, in order.
pub async fn chat_steadily(
    cluster: &Cluster,
    user: &str,
    room: &str,
    stop: &Arc<AtomicBool>,
) -> JoinHandle<Vec<(String, Result<Ack, ErrorFrame>)>> {
    let (mut writer, mut reader) = cluster.connect(0, user, Encoding::Json).await;
    let (user, room, stop) = (user.to_owned(), room.to_owned(), Arc::clone(stop));
    tokio::spawn(async move {
        let mut replies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let id = format!("{user}-{}", replies.len());
            let reply = send_and_wait(&mut writer, &mut reader, &room, &id, "steady").await;
            replies.push((id, reply));
        }
        replies
    })
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

/// Gateway 0's value of a metric, summed over samples whose labels match.
pub async fn gateway_metric(cluster: &Cluster, metric: &str, labels: &[(&str, &str)]) -> f64 {
    total(
        &[scrape(&cluster.http_url(0, "/metrics")).await],
        metric,
        labels,
    )
}

/// Sum of a counter, gauge or histogram count over samples whose labels match
/// (a histogram's sum is the untyped sample `<name>_sum`).
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
        pool_size: std::num::NonZeroUsize::MIN,
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
        chat_store::Persisted::Stored { message, .. } => message,
        other => panic!("not stored: {other:?}"),
    }
}

/// The metrics of worker `n`.
pub async fn worker_metrics(cluster: &Cluster, n: usize) -> Scrape {
    scrape(&cluster.worker_url(n, "/metrics")).await
}

/// Deletes a room straight from Postgres, as if it had been deleted after
/// the gateway accepted sends to it.
pub async fn delete_room(cluster: &Cluster, room: &str) {
    cluster
        .postgres
        .client()
        .await
        .execute("DELETE FROM rooms WHERE id = $1", &[&room])
        .await
        .unwrap();
}

/// A JetStream context on the cluster's NATS, as a gateway or an operator has.
pub async fn jetstream(cluster: &Cluster) -> jetstream::Context {
    jetstream::new(async_nats::connect(cluster.nats.url()).await.unwrap())
}

/// An envelope as a gateway publishes it, with nobody waiting for its receipt.
pub fn envelope(room: &str, sender: &str, client_msg_id: &str, body: &str) -> Vec<u8> {
    Envelope {
        room: room.into(),
        sender: sender.into(),
        client_msg_id: client_msg_id.into(),
        body: body.into(),
        received_ts_ms: chat_protocol::now_ms(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Publishes raw bytes on a room's ingest subject, straight to JetStream
/// (not through a gateway), and waits until the stream has stored them.
pub async fn publish_ingest(js: &jetstream::Context, room: &str, payload: Vec<u8>) {
    js.publish(format!("chat.in.{room}"), payload.into())
        .await
        .unwrap()
        .await
        .expect("ingest stream stored the send");
}

/// The workers' consumer as JetStream sees it: (sends not yet delivered,
/// delivered and not acked, of those delivered more than once).
pub async fn consumer_state(js: &jetstream::Context) -> (u64, usize, usize) {
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = js
        .get_stream(subjects::INGEST_STREAM)
        .await
        .unwrap()
        .get_consumer(subjects::WORKER_CONSUMER)
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    (info.num_pending, info.num_ack_pending, info.num_redelivered)
}

/// Waits until JetStream has delivered every send to the workers and at
/// least `held` of them are not acked yet.
pub async fn wait_until_workers_hold(js: &jetstream::Context, held: usize) {
    wait_for("the workers to hold the sends", STEP, || async {
        let (pending, unacked, _) = consumer_state(js).await;
        (pending == 0 && unacked >= held).then_some(())
    })
    .await;
}

/// Waits until every accepted send was handled: none left to deliver or ack.
pub async fn wait_until_drained(js: &jetstream::Context) {
    wait_for("the workers to handle every send", STEP, || async {
        let (pending, unacked, _) = consumer_state(js).await;
        (pending == 0 && unacked == 0).then_some(())
    })
    .await;
}

/// Every message on the dead-letter stream, oldest first (`worker dlq`
/// deletes some, leaving gaps in the seqs).
pub async fn dead_letters(js: &jetstream::Context) -> Vec<StreamMessage> {
    stream_messages(js, subjects::DEAD_LETTER_STREAM).await
}

/// Every message a stream holds, oldest first, skipping deleted seqs.
pub async fn stream_messages(js: &jetstream::Context, name: &str) -> Vec<StreamMessage> {
    let stream = js.get_stream(name).await.unwrap();
    let state = stream.cached_info().state.clone();
    let mut messages = Vec::new();
    if state.messages > 0 {
        for seq in state.first_sequence..=state.last_sequence {
            match stream.get_raw_message(seq).await {
                Ok(msg) => messages.push(msg),
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => {}
                Err(e) => panic!("reading {name} message {seq}: {e}"),
            }
        }
    }
    messages
}

/// A header of a stored message, as text.
pub fn header<'a>(msg: &'a StreamMessage, name: &str) -> Option<&'a str> {
    msg.headers.get(name).map(|v| v.as_str())
}
