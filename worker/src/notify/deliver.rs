//! The notification loop, in the bulk class: pulls queued messages, waits
//! while sends wait, finds who should hear of each and has no socket on
//! any gateway, and calls the webhook for them; then acks, or hands the
//! failure to the retry policy of `notify.retry` (backoff, then the
//! dead-letter stream).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream;
use chat_proto::v1::Message;
use chat_protocol::{RoomId, UserId};
use futures::future::join_all;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use super::{
    mentions::mentioned,
    webhook::{Notification, Webhook},
};
use crate::{
    ctx::Ctx,
    error::WorkerError,
    intake::{self, PullConsumer},
    metrics,
    retry::{self, Class},
};

/// The notification consumer's ack wait: a batch may be held, then each
/// call may take the whole timeout.
pub fn ack_wait(timeout: Duration) -> Duration {
    intake::MAX_HOLD + timeout + Duration::from_secs(5)
}

/// Delivers notifications until shutdown; the calls under way finish first.
pub async fn run(
    ctx: Arc<Ctx>,
    consumer: PullConsumer,
    webhook: Arc<Webhook>,
    shutdown: CancellationToken,
) {
    let at_once = ctx.config.notify.concurrency.get();
    intake::pull_chunks(&consumer, at_once, "notifications", &shutdown, |msgs| {
        let (ctx, webhook) = (Arc::clone(&ctx), Arc::clone(&webhook));
        async move {
            intake::hold_while_sends_wait(&ctx).await;
            join_all(msgs.iter().map(|msg| handle(&ctx, &webhook, msg))).await;
        }
    })
    .await
}

/// One notification, settled.
async fn handle(ctx: &Ctx, webhook: &Webhook, msg: &jetstream::Message) {
    let room = msg
        .subject
        .rsplit_once('.')
        .map_or("undecodable", |(_, room)| room)
        .to_owned();
    let outcome = match Message::decode(&msg.payload[..]) {
        Ok(message) => notify(ctx, webhook, message).await,
        Err(e) => Err(WorkerError::BadEnvelope(e.to_string())),
    };
    match outcome {
        Ok(called) => {
            metrics::notification(if called {
                "delivered"
            } else {
                "nobody_offline"
            });
            if let Err(e) = msg.ack().await {
                tracing::warn!(error = %e, "notification ack failed");
            }
        }
        Err(e) => {
            let config = &ctx.config.notify.retry;
            retry::fail_message(ctx.parking(), config, Class::Notification, msg, &room, &e).await
        }
    }
}

/// Calls the webhook for the message's recipients who have no socket;
/// whether there were any.
async fn notify(ctx: &Ctx, webhook: &Webhook, message: Message) -> Result<bool, WorkerError> {
    let room =
        RoomId::parse(message.room.clone()).map_err(|e| WorkerError::BadEnvelope(e.to_string()))?;
    let candidates = candidates(ctx, &room, &message).await?;
    if candidates.is_empty() {
        return Ok(false);
    }
    let online = chat_cache::presence::online(&mut ctx.redis.clone(), &candidates).await?;
    let recipients: Vec<String> = candidates
        .iter()
        .zip(online)
        .filter(|(_, online)| !online)
        .map(|(user, _)| user.to_string())
        .collect();
    if recipients.is_empty() {
        return Ok(false);
    }
    let notification = Notification {
        direct: room.is_direct(),
        room: message.room,
        seq: message.seq,
        message_id: message.id,
        sender: message.sender,
        body: message.body,
        ts_ms: message.ts_ms,
        recipients,
    };
    webhook.call(&notification).await?;
    Ok(true)
}

/// Who should hear of the message, online or not: the other member of a
/// direct room; else the members it mentions. Never its sender.
async fn candidates(
    ctx: &Ctx,
    room: &RoomId,
    message: &Message,
) -> Result<Vec<UserId>, WorkerError> {
    let sender = message.sender.as_str();
    if room.is_direct() {
        let members = ctx.store.members(room).await?.unwrap_or_default();
        return Ok(members
            .into_iter()
            .map(|(user, _)| user)
            .filter(|user| user.as_str() != sender)
            .collect());
    }
    let mut members = Vec::new();
    for user in mentioned(&message.body) {
        if user.as_str() != sender && ctx.store.access(room, &user).await?.is_some() {
            members.push(user);
        }
    }
    Ok(members)
}
