//! Offline notifications. A stored chat message that mentions someone
//! (`@user`) or is in a direct room is queued on the notification stream
//! before its send is acked (`enqueue`), so a crash cannot lose it: a
//! redelivered send, found stored, queues it again and JetStream drops
//! the copy by its id. The `deliver` loop then calls the webhook for the
//! recipients with no socket, in the bulk class, retrying with backoff,
//! and dead-letters what it gives up on.

mod deliver;
mod mentions;
pub mod webhook;

use async_nats::{header::NATS_MESSAGE_ID, HeaderMap};
use chat_proto::v1::Message;
use chat_protocol::{subjects, RoomId};
use futures::future::join_all;
use prost::Message as _;

use crate::ctx::Ctx;

pub use deliver::{ack_wait, run};

/// Whether a stored chat message may need notifications. Cheap: it runs
/// for every message stored.
pub fn wanted(ctx: &Ctx, room: &RoomId, message: &Message) -> bool {
    ctx.config.notify.enabled() && (room.is_direct() || message.body.contains('@'))
}

/// Queues each message's notification; returns the indices of those that
/// JetStream did not take (their sends are to be tried again).
pub async fn enqueue(ctx: &Ctx, messages: &[(usize, RoomId, Message)]) -> Vec<usize> {
    let published = messages.iter().map(|(i, room, message)| async move {
        let mut headers = HeaderMap::new();
        headers.insert(NATS_MESSAGE_ID, subjects::notify_id(&message.id).as_str());
        let payload = message.encode_to_vec().into();
        let limit = ctx.publish_timeout();
        let acked =
            chat_streams::stored(&ctx.js, subjects::notify(room), headers, payload, limit).await;
        acked.is_err().then_some(*i)
    });
    let unqueued: Vec<usize> = join_all(published).await.into_iter().flatten().collect();
    if !unqueued.is_empty() {
        tracing::warn!(
            count = unqueued.len(),
            "notifications not queued; their sends retry"
        );
    }
    unqueued
}
