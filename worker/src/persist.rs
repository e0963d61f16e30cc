//! Stores a batch of sends in one transaction, then fans out, updates the
//! cache and acks. The order is the guarantee: nothing is acked before its
//! commit is known, and a crash anywhere means redelivery, which finds the
//! stored row (idempotent on room, sender, client_msg_id) and fans out again.

use async_nats::jetstream;
use chat_proto::internal::Envelope;
use chat_shared::telemetry;
use chat_shared::{
    cache,
    store::{NewMessage, Persisted},
    RoomId,
};
use prost::Message as _;
use tokio::time::Instant;
use tracing::{Instrument, Span};

use crate::{app::Ctx, error::WorkerError, fanout, metrics};

struct Item {
    msg: jetstream::Message,
    envelope: Envelope,
    room: RoomId,
    /// Continues the sender's trace, when the send carried one.
    span: Option<Span>,
}

fn decode(msg: &jetstream::Message) -> Result<(Envelope, RoomId), WorkerError> {
    let envelope = Envelope::decode(msg.payload.clone())
        .map_err(|e| WorkerError::BadEnvelope(e.to_string()))?;
    let room = RoomId::parse(envelope.room.clone())
        .map_err(|e| WorkerError::BadEnvelope(e.to_string()))?;
    Ok((envelope, room))
}

#[tracing::instrument(skip_all, fields(size = chunk.len()))]
pub async fn handle_batch(ctx: &Ctx, chunk: Vec<jetstream::Message>) {
    let mut items = Vec::with_capacity(chunk.len());
    for msg in chunk {
        match decode(&msg) {
            Ok((envelope, room)) => {
                let span = telemetry::has_trace(msg.headers.as_ref()).then(|| {
                    let span = tracing::info_span!("store", room = %room);
                    telemetry::continue_trace(&span, msg.headers.as_ref());
                    span
                });
                items.push(Item {
                    msg,
                    envelope,
                    room,
                    span,
                })
            }
            Err(e) => ctx.fail(&msg, "undecodable", &e).await,
        }
    }
    if items.is_empty() {
        return;
    }
    let batch: Vec<NewMessage> = items
        .iter()
        .map(|it| NewMessage {
            room: it.room.clone(),
            sender: it.envelope.sender.clone(),
            client_msg_id: it.envelope.client_msg_id.clone(),
            body: it.envelope.body.clone(),
        })
        .collect();
    let started = Instant::now();
    let persisted = ctx.store.persist(&batch).await;
    metrics::batch(batch.len(), started.elapsed());
    let outcomes = match persisted {
        Ok(outcomes) => outcomes,
        Err(e) => {
            let e = WorkerError::from(e);
            for it in &items {
                ctx.fail(&it.msg, it.room.as_str(), &e).await;
            }
            return;
        }
    };
    let mut fresh = Vec::new();
    let mut stored = Vec::with_capacity(items.len());
    for (item, outcome) in items.into_iter().zip(outcomes) {
        match outcome {
            Persisted::Stored {
                message,
                fresh: is_new,
            } => {
                metrics::envelope(if is_new { "stored" } else { "duplicate" });
                let publish = fanout::publish(&ctx.nats, &item.room, &item.envelope, &message);
                let published = match &item.span {
                    Some(span) => publish.instrument(span.clone()).await,
                    None => publish.await,
                };
                if let Err(e) = published {
                    ctx.fail(&item.msg, item.room.as_str(), &e).await;
                    continue;
                }
                if is_new {
                    fresh.push((item.room.clone(), message));
                }
                stored.push(item.msg);
            }
            Persisted::RoomMissing => {
                let e = WorkerError::RoomMissing;
                ctx.fail(&item.msg, item.room.as_str(), &e).await;
            }
        }
    }
    if let Err(e) =
        cache::remember(&mut ctx.redis.clone(), &fresh, ctx.config.recent_cache_len).await
    {
        // Only a cache: gateways fall back to Postgres.
        tracing::warn!(error = %e, "recent-message cache not updated");
    }
    for msg in stored {
        if let Err(e) = msg.ack().await {
            // Redelivery will find the row and fan out again; harmless.
            tracing::warn!(error = %e, "ack failed");
        }
    }
}
