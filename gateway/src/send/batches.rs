//! The gateway's sends on their way to JetStream, in batches, one publisher
//! per ingest partition: each takes whatever sends to its partition's rooms
//! have queued up as one message, with up to [`BATCHES_IN_FLIGHT`] batches
//! awaiting JetStream's ack at once; while they are all on their way, the
//! next batch grows. One publish and one ack each way per batch, not per
//! send, and no waiting when the gateway is quiet (a lone send is a batch of
//! one). A partition whose stream is slow (electing a leader) holds up only
//! its own sends.

use std::{str::FromStr, sync::Arc, time::Duration};

use async_nats::{
    header::{HeaderValue, NATS_MESSAGE_ID},
    jetstream, HeaderMap,
};
use bytes::Bytes;
use chat_proto::internal::{Envelope, EnvelopeBatch};
use chat_protocol::{subjects, RoomId};
use prost::Message as _;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::metrics;

/// A send queued for the next batch.
pub struct Queued {
    pub envelope: Envelope,
    /// When the send must be in the stream, or fail.
    pub deadline: Instant,
    /// Told once JetStream holds the batch, or why it could not.
    pub stored: oneshot::Sender<Result<(), String>>,
}

/// Batches awaiting JetStream's ack at once: one slow ack does not hold up
/// the gateway's other sends.
const BATCHES_IN_FLIGHT: usize = 4;
/// Most sends in one batch: a worker stores up to 256 in one transaction.
const BATCH_SENDS: usize = 256;
/// Most envelope bytes in one batch: well under NATS's `max_payload` (1 MiB
/// by default), with a send's body at most 16 KiB by default.
const BATCH_BYTES: usize = 512 * 1024;

/// The queues of the partitions' publishers; they stop once this is dropped.
pub struct Batches {
    /// One per partition. Unbounded: every socket's in-flight permits bound them.
    queues: Vec<mpsc::UnboundedSender<Queued>>,
}

impl Batches {
    /// Starts a publisher per partition of `partitions`; the future runs them
    /// until shutdown (when every socket is gone).
    pub fn start(
        js: &jetstream::Context,
        gateway_id: &str,
        partitions: u32,
        shutdown: &CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()>) {
        let (queues, publishers): (Vec<_>, Vec<_>) = (0..partitions)
            .map(|partition| {
                let (queue, queued) = mpsc::unbounded_channel();
                let subject = subjects::ingest_batch(partition, gateway_id);
                let publisher = publish_batches(
                    js.clone(),
                    gateway_id.to_owned(),
                    subject,
                    queued,
                    shutdown.clone(),
                );
                (queue, publisher)
            })
            .unzip();
        let run = async move {
            futures::future::join_all(publishers).await;
        };
        (Self { queues }, run)
    }

    /// Queues a send to `room` for its partition's next batch; false if
    /// that publisher has stopped.
    pub fn queue(&self, room: &RoomId, queued: Queued) -> bool {
        let partition = subjects::partition(room, self.queues.len() as u32) as usize;
        self.queues[partition].send(queued).is_ok()
    }
}

/// Publishes one partition's queued sends in batches, [`BATCHES_IN_FLIGHT`]
/// at most at once, until shutdown. Each batch is whatever queued up
/// meanwhile, up to [`BATCH_SENDS`] and [`BATCH_BYTES`].
async fn publish_batches(
    js: jetstream::Context,
    gateway_id: String,
    subject: String,
    mut queue: mpsc::UnboundedReceiver<Queued>,
    shutdown: CancellationToken,
) {
    // A random start, so that a batch of this run never carries the
    // de-duplication id of one from before a restart (ids are stable).
    let mut number = rand::random::<u64>() >> 1;
    let mut left_over = None;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
    // Made once, not per batch: it registers a waiter under a lock.
    let stopping = shutdown.cancelled();
    tokio::pin!(stopping);
    loop {
        let first = match left_over.take() {
            Some(queued) => queued,
            None => tokio::select! {
                queued = queue.recv() => match queued {
                    Some(queued) => queued,
                    None => return,
                },
                () = &mut stopping => return,
            },
        };
        // Test builds: wait before gathering, so that sends sent together
        // share a batch (`gateway-batch-linger=return(<ms>)`).
        if let Some(ms) = linger() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut bytes = first.envelope.encoded_len();
        let mut batch = vec![first];
        while batch.len() < BATCH_SENDS {
            let Ok(queued) = queue.try_recv() else { break };
            bytes += queued.envelope.encoded_len();
            if bytes > BATCH_BYTES {
                left_over = Some(queued);
                break;
            }
            batch.push(queued);
        }
        number += 1;
        metrics::publish_batch(batch.len());
        let deadline = batch.iter().map(|q| q.deadline).min().expect("not empty");
        let (envelopes, waiting): (Vec<_>, Vec<_>) =
            batch.into_iter().map(|q| (q.envelope, q.stored)).unzip();
        let received: Vec<i64> = envelopes.iter().map(|e| e.received_us).collect();
        let payload = Bytes::from(EnvelopeBatch { envelopes }.encode_to_vec());
        let id = subjects::publish_id(&gateway_id, number);
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let (js, subject) = (js.clone(), subject.clone());
        tokio::spawn(async move {
            let outcome = publish_batch(&js, &subject, &id, payload, deadline).await;
            drop(permit);
            if outcome.is_ok() {
                for us in received {
                    let publish = chat_protocol::secs_since_us(us);
                    metrics::stage(metrics::Stage::Publish, publish);
                }
            }
            for stored in waiting {
                let _ = stored.send(outcome.clone());
            }
        });
    }
}

/// How long the failpoint `gateway-batch-linger` asks a batch to wait.
fn linger() -> Option<u64> {
    fail::fail_point!("gateway-batch-linger", |ms| ms
        .and_then(|ms| ms.parse().ok()));
    None
}

/// Publishes one batch, retried with the same `Nats-Msg-Id` (JetStream
/// drops a copy it already has) until `deadline`. An attempt under way at
/// the deadline is let finish (JetStream's own timeout bounds its ack, 5 s),
/// not cut: a cut attempt may not have reached JetStream, and the socket's
/// next send, released by the failure, would then be stored before this
/// one's resend.
async fn publish_batch(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: Bytes,
    deadline: Instant,
) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    // The fallible constructor: the infallible one panics on CR/LF.
    let id = HeaderValue::from_str(id).map_err(|e| e.to_string())?;
    headers.insert(NATS_MESSAGE_ID, id);
    let mut pause = Duration::from_millis(20);
    loop {
        let ack = match js
            .publish_with_headers(subject.to_owned(), headers.clone(), payload.clone())
            .await
        {
            Ok(ack) => ack.await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match ack {
            // A duplicate ack means an earlier try got through.
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() + pause < deadline => {
                tracing::debug!(error = %e, "batch publish failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(e) => return Err(e),
        }
    }
}
