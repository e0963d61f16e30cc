//! The cluster's JetStream as an operator (or a misbehaving gateway) sees
//! it: raw publishes to the ingest stream, the workers' consumer, and the
//! messages a stream holds.

use std::ops::Deref;

use async_nats::jetstream::{self, message::StreamMessage, stream::RawMessageErrorKind};
use chat_proto::internal::{Envelope, EnvelopeBatch};
use chat_protocol::{subjects, RoomId};
use futures::StreamExt;
use prost::Message as _;

use crate::{cluster::Cluster, frames::STEP, wait_for};

/// A JetStream context on the cluster's NATS; derefs to the client's own.
pub struct JetStream {
    context: jetstream::Context,
    /// The ingest partitions (P), as the streams record it.
    pub partitions: u32,
}

impl Deref for JetStream {
    type Target = jetstream::Context;

    fn deref(&self) -> &Self::Target {
        &self.context
    }
}

impl Cluster {
    /// A JetStream context; waits until JetStream answers (a NATS cluster
    /// just healed may take a few seconds), reading P from the partitions'
    /// streams, which exist once a gateway or worker has started.
    pub async fn jetstream(&self) -> JetStream {
        let context = jetstream::new(self.nats.client().await);
        let partitions = wait_for("JetStream to show the ingest streams", STEP, || async {
            chat_streams::partitions(&context).await.ok()
        })
        .await;
        JetStream {
            context,
            partitions,
        }
    }
}

impl JetStream {
    /// Publishes raw bytes as one envelope alone on a room's partition (not
    /// through a gateway), and waits until the stream has stored them.
    pub async fn publish_ingest(&self, room: &str, payload: Vec<u8>) {
        let room = RoomId::parse(room).unwrap();
        self.publish(subjects::ingest_one(&room, self.partitions), payload.into())
            .await
            .unwrap()
            .await
            .expect("ingest stream stored the send");
    }

    /// The room's partition.
    pub fn partition(&self, room: &str) -> u32 {
        subjects::partition(&RoomId::parse(room).unwrap(), self.partitions)
    }

    /// The server leading a stream's replicas (in a NATS cluster), if it
    /// has a leader now.
    pub async fn leader(&self, stream: &str) -> Option<String> {
        let mut stream = self.get_stream(stream).await.ok()?;
        let info = stream.info().await.ok()?;
        info.cluster.clone()?.leader
    }

    /// Waits until every stream has a leader and every replica is current:
    /// the cluster has healed, and losing another node loses no quorum.
    /// A minute: a dozen Raft groups catching up on a loaded 2-core CI
    /// machine once took more than 30 s (the recovery the faults measure is
    /// the first ack, not this).
    pub async fn wait_until_replicas_current(&self) {
        wait_for("every stream's replicas to catch up", STEP * 4, || async {
            let names: Vec<String> = self
                .stream_names()
                .filter_map(|n| async { n.ok() })
                .collect()
                .await;
            for name in names {
                let mut stream = self.get_stream(&name).await.ok()?;
                let cluster = stream.info().await.ok()?.cluster.clone()?;
                cluster.leader.as_ref()?;
                if cluster
                    .replicas
                    .iter()
                    .any(|peer| !peer.current || peer.offline)
                {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    /// The partitions' consumers together: (sends not yet delivered,
    /// delivered and not acked, of those delivered more than once).
    pub async fn consumer_state(&self) -> (u64, usize, usize) {
        let backlog = chat_streams::backlog(self, self.partitions).await.unwrap();
        (
            backlog.waiting,
            backlog.unacked as usize,
            backlog.redelivered as usize,
        )
    }

    /// Every message the partitions' streams hold, partition by partition.
    pub async fn ingest_messages(&self) -> Vec<StreamMessage> {
        let mut messages = Vec::new();
        for partition in 0..self.partitions {
            messages.extend(
                self.stream_messages(&subjects::ingest_stream(partition))
                    .await,
            );
        }
        messages
    }

    /// The envelopes of a gateway's batches the partitions hold, one list
    /// a batch.
    pub async fn gateway_batches(&self, gateway_id: &str) -> Vec<Vec<Envelope>> {
        let subjects: Vec<String> = (0..self.partitions)
            .map(|p| subjects::ingest_batch(p, gateway_id))
            .collect();
        self.ingest_messages()
            .await
            .into_iter()
            .filter(|m| subjects.iter().any(|s| s == m.subject.as_str()))
            .map(|m| EnvelopeBatch::decode(m.payload).expect("a batch").envelopes)
            .collect()
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

/// A room id starting with `prefix` whose sends go to `partition`: to put
/// rooms in one partition (one batch, one owner) or in different ones.
pub fn room_in_partition(partition: u32, prefix: &str, partitions: u32) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|room| subjects::partition(&RoomId::parse(room).unwrap(), partitions) == partition)
        .expect("some room falls in every partition")
}
