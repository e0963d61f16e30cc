//! Gateways' delivery canaries, answered as soon as they are pulled, ahead
//! of the lanes and storing nothing: a gateway learns that the ingest
//! stream and the workers' consumer move, and how fast, without a write to
//! Postgres or Redis.

use async_nats::jetstream;
use chat_proto::internal::Envelope;
use prost::Message as _;

use crate::{ctx::Ctx, fanout, metrics};

/// Answers a canary and acks it; a canary that cannot be answered is
/// dropped all the same (its gateway counts it failed; a later one is
/// worth more than a redelivered one).
pub async fn answer(ctx: &Ctx, msg: jetstream::Message) {
    metrics::canary();
    match Envelope::decode(msg.payload.clone()) {
        Ok(envelope) => {
            if let Err(e) = fanout::answer_canary(ctx, &envelope).await {
                tracing::warn!(error = %e, "canary not answered");
            }
        }
        Err(e) => tracing::warn!(error = %e, "undecodable canary"),
    }
    if let Err(e) = msg.ack().await {
        tracing::warn!(error = %e, "canary ack failed");
    }
}
