//! Read marks, in the bulk class: members' `markRead`s, pulled in batches
//! from their own stream and stored one batch per statement, never while a
//! partition has sends waiting (`intake::hold_while_sends_wait`), so that marking
//! read never delays a chat message. Then each asker is answered, every
//! marker the batch moved is signalled to its room (one `RoomSignals` on
//! `chat.signals`, from which gateways push `reads`), and the batch is acked. A crash before the
//! ack redelivers the batch, which stores nothing twice: a marker only moves
//! up.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_nats::jetstream::{self, AckKind};
use chat_proto::{
    internal::{room_signal, MarkRead, MarkReply, RoomSignal, RoomSignals},
    v1::ReadMarker,
};
use chat_protocol::{subjects, ErrorCode, RoomId, Seq, UserId};
use chat_store::{Mark, Marked};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::{
    ctx::Ctx,
    error::WorkerError,
    intake::{self, PullConsumer},
    metrics, retry,
};

/// The marks consumer's ack wait: a batch may be held `intake::MAX_HOLD`, then
/// stored in one short statement.
pub const ACK_WAIT: Duration = Duration::from_secs(5);

/// Stores marks until shutdown; the batch under way is finished first.
pub async fn run(ctx: Arc<Ctx>, consumer: PullConsumer, shutdown: CancellationToken) {
    let max = ctx.config.batch.max_messages;
    intake::pull_chunks(&consumer, max, "marks", &shutdown, |marks| {
        let ctx = Arc::clone(&ctx);
        async move {
            intake::hold_while_sends_wait(&ctx).await;
            store(&ctx, marks).await;
        }
    })
    .await
}

/// A pulled mark, decoded.
struct Pulled {
    msg: jetstream::Message,
    mark: Mark,
    reply_to: String,
}

/// Stores one batch, answers its askers, signals the markers it moved and
/// acks it; a batch Postgres failed is redelivered by the retry settings,
/// and its askers told `unavailable` once those are spent.
async fn store(ctx: &Ctx, msgs: Vec<jetstream::Message>) {
    let mut batch = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match decode(&msg.payload) {
            Some((mark, reply_to)) => batch.push(Pulled {
                msg,
                mark,
                reply_to,
            }),
            None => {
                tracing::warn!(subject = %msg.subject, "undecodable mark dropped");
                metrics::marks("undecodable", 1);
                settle(&msg, AckKind::Term).await;
            }
        }
    }
    if batch.is_empty() {
        return;
    }
    let marks: Vec<Mark> = batch.iter().map(|p| p.mark.clone()).collect();
    match ctx.store.mark_read(&marks).await {
        Ok(outcomes) => {
            fail::fail_point!("worker-marks-after-store", |_| std::process::abort());
            metrics::marks("stored", batch.len());
            for (pulled, outcome) in batch.iter().zip(&outcomes) {
                answer(ctx, pulled, reply(&pulled.mark, outcome)).await;
            }
            signal_moved(ctx, &batch, &outcomes).await;
            for pulled in &batch {
                settle(&pulled.msg, AckKind::Ack).await;
            }
        }
        Err(e) => fail(ctx, &batch, &WorkerError::from(e)).await,
    }
}

/// A failed batch: redelivered after a backoff, or, its attempts spent,
/// given up with an answer to each asker (their marks are not stored;
/// marking again is safe).
async fn fail(ctx: &Ctx, batch: &[Pulled], error: &WorkerError) {
    let attempts = batch
        .iter()
        .map(|p| p.msg.info().map_or(1, |i| i.delivered as u32))
        .max()
        .unwrap_or(1);
    match retry::decide(&ctx.config.retry, error, attempts) {
        retry::Decision::Retry(delay) => {
            tracing::warn!(error = %error.detail(), attempts, ?delay, "storing marks failed; retrying");
            metrics::marks("retried", batch.len());
            for pulled in batch {
                settle(&pulled.msg, AckKind::Nak(Some(delay))).await;
            }
        }
        retry::Decision::DeadLetter => {
            tracing::error!(error = %error.detail(), attempts, "storing marks failed; given up");
            metrics::marks("given_up", batch.len());
            for pulled in batch {
                let refusal = MarkReply {
                    marker: None,
                    error: ErrorCode::Unavailable.as_str().into(),
                    reason: "the read marker could not be stored; mark again".into(),
                };
                answer(ctx, pulled, refusal).await;
                settle(&pulled.msg, AckKind::Term).await;
            }
        }
    }
}

fn decode(payload: &[u8]) -> Option<(Mark, String)> {
    let mark = MarkRead::decode(payload).ok()?;
    Some((
        Mark {
            room: RoomId::parse(mark.room).ok()?,
            user: UserId::parse(mark.user).ok()?,
            seq: Seq::new(mark.seq),
        },
        mark.reply_to,
    ))
}

fn reply(mark: &Mark, outcome: &Marked) -> MarkReply {
    let refused = |code: ErrorCode, reason: String| MarkReply {
        marker: None,
        error: code.as_str().into(),
        reason,
    };
    match outcome {
        Marked::Marker {
            seq, unread, head, ..
        } => MarkReply {
            marker: Some(ReadMarker {
                room: mark.room.to_string(),
                seq: seq.get(),
                unread: *unread,
                head_seq: head.get(),
            }),
            error: String::new(),
            reason: String::new(),
        },
        Marked::NotMember => refused(ErrorCode::Forbidden, "not a member of this room".into()),
        Marked::BeyondHead { head } => refused(
            ErrorCode::InvalidArgument,
            format!("seq {} is past the room's last seq, {head}", mark.seq),
        ),
    }
}

/// Answers the asker's inbox (nowhere else: anything may publish a mark).
async fn answer(ctx: &Ctx, pulled: &Pulled, reply: MarkReply) {
    if !subjects::is_inbox(&pulled.reply_to) {
        return;
    }
    let payload = reply.encode_to_vec().into();
    if let Err(e) = ctx.publish(pulled.reply_to.clone(), None, payload).await {
        tracing::debug!(error = %e, "mark reply not sent");
    }
}

/// Tells each room whose markers moved, in one message: one signal per
/// member, with the highest seq the batch moved it to.
async fn signal_moved(ctx: &Ctx, batch: &[Pulled], outcomes: &[Marked]) {
    let mut moved: BTreeMap<(&RoomId, &UserId), u64> = BTreeMap::new();
    for (pulled, outcome) in batch.iter().zip(outcomes) {
        if let Marked::Marker {
            seq, moved: true, ..
        } = outcome
        {
            let newest = moved
                .entry((&pulled.mark.room, &pulled.mark.user))
                .or_default();
            *newest = (*newest).max(seq.get());
        }
    }
    if moved.is_empty() {
        return;
    }
    let signals = moved
        .into_iter()
        .map(|((room, user), seq)| RoomSignal {
            room: room.to_string(),
            user: user.to_string(),
            kind: Some(room_signal::Kind::ReadSeq(seq)),
        })
        .collect();
    let payload = RoomSignals { signals }.encode_to_vec().into();
    if let Err(e) = ctx.publish(subjects::signals(), None, payload).await {
        tracing::debug!(error = %e, "read signals not sent");
    }
}

async fn settle(msg: &jetstream::Message, kind: AckKind) {
    if let Err(e) = msg.ack_with(kind).await {
        tracing::warn!(error = %e, "settling a mark failed");
    }
}
