//! The cluster's JetStream as an operator (or a misbehaving gateway) sees
//! it: raw publishes to the ingest stream, the workers' consumer, and the
//! messages a stream holds.

use std::ops::Deref;

use async_nats::jetstream::{
    self, consumer::pull, message::StreamMessage, stream::RawMessageErrorKind,
};
use chat_proto::internal::Envelope;
use chat_protocol::subjects;
use prost::Message as _;

use crate::{cluster::Cluster, frames::STEP, wait_for};

/// A JetStream context on the cluster's NATS; derefs to the client's own.
pub struct JetStream(jetstream::Context);

impl Deref for JetStream {
    type Target = jetstream::Context;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Cluster {
    pub async fn jetstream(&self) -> JetStream {
        JetStream(jetstream::new(
            async_nats::connect(self.nats.url()).await.unwrap(),
        ))
    }
}

impl JetStream {
    /// Publishes raw bytes on a room's ingest subject (not through a
    /// gateway), and waits until the stream has stored them.
    pub async fn publish_ingest(&self, room: &str, payload: Vec<u8>) {
        self.publish(format!("chat.in.{room}"), payload.into())
            .await
            .unwrap()
            .await
            .expect("ingest stream stored the send");
    }

    /// The workers' consumer: (sends not yet delivered, delivered and not
    /// acked, of those delivered more than once).
    pub async fn consumer_state(&self) -> (u64, usize, usize) {
        let mut consumer: jetstream::consumer::Consumer<pull::Config> = self
            .get_stream(subjects::INGEST_STREAM)
            .await
            .unwrap()
            .get_consumer(subjects::WORKER_CONSUMER)
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        (info.num_pending, info.num_ack_pending, info.num_redelivered)
    }

    /// Waits until JetStream has delivered every send to the workers and
    /// at least `held` of them are not acked yet.
    pub async fn wait_until_workers_hold(&self, held: usize) {
        wait_for("the workers to hold the sends", STEP, || async {
            let (pending, unacked, _) = self.consumer_state().await;
            (pending == 0 && unacked >= held).then_some(())
        })
        .await;
    }

    /// Waits until every accepted send was handled: none left to deliver or ack.
    pub async fn wait_until_drained(&self) {
        wait_for("the workers to handle every send", STEP, || async {
            let (pending, unacked, _) = self.consumer_state().await;
            (pending == 0 && unacked == 0).then_some(())
        })
        .await;
    }

    /// Every message on the dead-letter stream, oldest first (`worker dlq`
    /// deletes some, leaving gaps in the seqs).
    pub async fn dead_letters(&self) -> Vec<StreamMessage> {
        self.stream_messages(subjects::DEAD_LETTER_STREAM).await
    }

    /// Every message a stream holds, oldest first, skipping deleted seqs.
    pub async fn stream_messages(&self, name: &str) -> Vec<StreamMessage> {
        let stream = self.get_stream(name).await.unwrap();
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

/// A header of a stored message, as text.
pub fn header<'a>(msg: &'a StreamMessage, name: &str) -> Option<&'a str> {
    msg.headers.get(name).map(|v| v.as_str())
}
