//! Stores a batch of sends in one transaction, then fans out, updates the
//! cache and acks. The order is the guarantee: nothing is acked before its
//! commit is known, and a crash anywhere means redelivery, which finds the
//! stored row (idempotent on room, sender, client_msg_id) and fans out again.
//!
//! One send Postgres refuses (a NUL byte in its body, say) fails the whole
//! statement. Such a batch is split in halves, stored first half first, until
//! the refused send is alone: every other send is stored, in order, and only
//! that one is dead-lettered.

use std::ops::Range;

use async_nats::jetstream;
use chat_proto::internal::Envelope;

use chat_protocol::{ErrorCode, RoomId};
use chat_store::{NewMessage, Persisted};
use tokio::time::Instant;
use tracing::Span;

use crate::{
    ctx::Ctx,
    error::WorkerError,
    fanout, metrics,
    retry::{self, Decision},
};

struct Item<'a> {
    msg: &'a jetstream::Message,
    envelope: Envelope,
    room: RoomId,
    /// Continues the sender's trace, when the send carried one.
    span: Option<Span>,
}

impl Item<'_> {
    fn to_store(&self) -> NewMessage {
        NewMessage {
            room: self.room.clone(),
            sender: self.envelope.sender.clone(),
            client_msg_id: self.envelope.client_msg_id.clone(),
            body: self.envelope.body.clone(),
        }
    }
}

/// An ingest payload as a send to store; anything else is permanent.
fn decode(payload: &[u8]) -> Result<(Envelope, RoomId), WorkerError> {
    chat_protocol::envelope::decode(payload).map_err(|e| WorkerError::BadEnvelope(e.to_string()))
}

/// Stores, publishes and acks a batch of sends pulled for one lane; each
/// send that cannot be stored is handed to the retry policy instead.
#[tracing::instrument(skip_all, fields(size = chunk.len()))]
pub async fn handle_batch(ctx: &Ctx, chunk: &[jetstream::Message]) {
    let mut items = Vec::with_capacity(chunk.len());
    for msg in chunk {
        match decode(&msg.payload) {
            Ok((envelope, room)) => {
                let span = chat_telemetry::has_trace(msg.headers.as_ref()).then(|| {
                    let span = tracing::info_span!("store", room = %room);
                    chat_telemetry::continue_trace(&span, msg.headers.as_ref());
                    span
                });
                items.push(Item {
                    msg,
                    envelope,
                    room,
                    span,
                })
            }
            Err(e) => ctx.fail(msg, "undecodable", &e).await,
        }
    }
    if items.is_empty() {
        return;
    }
    // Test builds: a worker that dies holding a pulled, unstored batch.
    fail::fail_point!("worker-before-store", |_| std::process::abort());
    let outcomes = store(ctx, &items).await;
    // Test builds: a worker that dies between the commit and the fan-out.
    fail::fail_point!("worker-after-commit", |_| std::process::abort());
    let mut fresh = Vec::new();
    let mut answered = Vec::with_capacity(items.len());
    let mut outbox = fanout::Outbox::default();
    for (i, outcome) in outcomes {
        let item = &items[i];
        match outcome {
            Persisted::Stored {
                message,
                fresh: is_new,
            } => {
                metrics::envelope(if is_new { "stored" } else { "duplicate" });
                if is_new {
                    fresh.push((item.room.clone(), message.clone()));
                }
                outbox.stored(i, &item.room, &item.envelope, message, item.span.as_ref());
                answered.push(i);
            }
            Persisted::RoomMissing => {
                let e = WorkerError::RoomMissing;
                ctx.fail(item.msg, item.room.as_str(), &e).await;
            }
            // An answer, not a failure: nothing to retry or keep.
            Persisted::Forbidden => {
                metrics::envelope("forbidden");
                outbox.refused(&item.envelope, ErrorCode::Forbidden);
                answered.push(i);
            }
        }
    }
    let unpublished = outbox.publish(&ctx.nats).await;
    for &i in &unpublished {
        let e = WorkerError::nats("fan-out not published");
        ctx.fail(items[i].msg, items[i].room.as_str(), &e).await;
    }
    if let Err(e) =
        chat_cache::remember(&mut ctx.redis.clone(), &fresh, ctx.config.recent_cache_len).await
    {
        // Only a cache: gateways fall back to Postgres.
        tracing::warn!(error = %e, "recent-message cache not updated");
    }
    for i in answered.into_iter().filter(|i| !unpublished.contains(i)) {
        if let Err(e) = items[i].msg.ack().await {
            // Redelivery will find the row and fan out again; harmless.
            tracing::warn!(error = %e, "ack failed");
        }
    }
}

/// Stores the items and returns the outcome of each one stored, by index,
/// in item order; the others are handed to the retry policy. A part that
/// Postgres refuses is split in halves, the first stored first, so each
/// room keeps its order. A failure worth retrying is retried in place, with
/// backoff, before anything after it is stored (the lane keeps the sends
/// alive meanwhile): a nak would let later sends of the room overtake it.
/// Once the retry budget is spent, that part and everything after it go to
/// the dead-letter stream.
async fn store(ctx: &Ctx, items: &[Item<'_>]) -> Vec<(usize, Persisted)> {
    let mut done = Vec::with_capacity(items.len());
    // Parts still to store; the next one is last.
    let all: Range<usize> = 0..items.len();
    let mut todo = vec![all];
    // Tries of the part at hand.
    let mut attempts = 1;
    while let Some(part) = todo.pop() {
        let batch: Vec<NewMessage> = items[part.clone()].iter().map(Item::to_store).collect();
        let started = Instant::now();
        let persisted = ctx.store.persist(&batch).await;
        metrics::batch(batch.len(), started.elapsed());
        let e = match persisted {
            Ok(outcomes) => {
                done.extend(part.zip(outcomes));
                attempts = 1;
                continue;
            }
            Err(e) => WorkerError::from(e),
        };
        if e.is_permanent() && part.len() > 1 {
            tracing::warn!(error = %e.detail(), size = part.len(), "batch refused; splitting it");
            metrics::split();
            let middle = part.start + part.len() / 2;
            todo.push(middle..part.end);
            todo.push(part.start..middle);
            continue;
        }
        if let Decision::Retry(delay) = retry::decide(&ctx.config.retry, &e, attempts) {
            tracing::warn!(error = %e.detail(), attempts, ?delay, "batch not stored; retrying it");
            metrics::retried(e.label());
            tokio::time::sleep(delay).await;
            attempts += 1;
            todo.push(part);
            continue;
        }
        let failed = if e.is_permanent() {
            part
        } else {
            // The parts still to do are exactly the items after this one.
            todo.clear();
            part.start..items.len()
        };
        for item in &items[failed] {
            ctx.fail_after(item.msg, item.room.as_str(), &e, attempts)
                .await;
        }
        attempts = 1;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message as _;

    proptest! {
        /// Whatever is published on the ingest stream, the worker gets a send
        /// or an error that dead-letters it at once; it never panics.
        #[test]
        fn any_payload_is_a_send_or_a_permanent_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            if let Err(e) = decode(&bytes) {
                prop_assert!(matches!(e, WorkerError::BadEnvelope(_)));
                prop_assert!(e.is_permanent());
            }
        }

        /// What a gateway publishes decodes to itself, the room validated.
        #[test]
        fn a_gateways_envelope_decodes_to_itself(
            room in "[a-z0-9_-]{1,32}",
            body in ".{0,64}",
            ticket in any::<u64>(),
        ) {
            let envelope = Envelope {
                room: room.clone(),
                sender: "alice".into(),
                client_msg_id: "c1".into(),
                body,
                received_ts_ms: 1,
                reply_to: "chat.receipt.gw1".into(),
                ticket,
            };
            let (back, parsed) = decode(&envelope.encode_to_vec()).unwrap();
            prop_assert_eq!(parsed.as_str(), room.as_str());
            prop_assert_eq!(back, envelope);
        }
    }
}
