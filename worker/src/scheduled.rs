//! Scheduled messages. Taking one (or cancelling it) is a command on the
//! room's command subject, answered once the row is committed. Sending the
//! due ones is a loop in every worker: one transaction takes a batch of due
//! rows (rows another worker holds are skipped), stores their messages and
//! marks them sent; then, like a stored batch, the rooms' windows are
//! written and the messages fanned out. A crash after the commit loses
//! only the fan-out, which the gateways' tail probes find as a gap and
//! read from Postgres: a scheduled message is sent once, whichever worker
//! is alive at its time.

use std::sync::Arc;

use chat_proto::internal::{command::Change as Requested, Command, CommandReply};
use chat_protocol::{ClientMsgId, RoomId, Seq, UserId};
use chat_store::{Persisted, ScheduleRefused, SentDue, ToSchedule};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{ctx::Ctx, error::WorkerError, fanout, metrics, notify};

/// Due messages taken in one transaction.
const BATCH: i64 = 100;

/// A scheduling command, decoded.
#[derive(Debug)]
pub enum Request {
    Schedule(ToSchedule),
    Cancel {
        room: RoomId,
        sender: UserId,
        id: Uuid,
    },
}

/// The scheduling request a command carries; `None` for any other change.
pub fn decode(command: &Command) -> Option<Result<Request, WorkerError>> {
    let bad = |e: &dyn std::fmt::Display| WorkerError::BadEnvelope(e.to_string());
    let parsed = |room: &str, actor: &str| -> Result<(RoomId, UserId), WorkerError> {
        let room = RoomId::parse(room).map_err(|e| bad(&e))?;
        let sender = UserId::parse(actor).map_err(|e| bad(&e))?;
        Ok((room, sender))
    };
    Some(match &command.change {
        Some(Requested::Schedule(s)) => {
            parsed(&command.room, &command.actor).and_then(|(room, sender)| {
                Ok(Request::Schedule(ToSchedule {
                    id: Uuid::parse_str(&command.command_id).map_err(|e| bad(&e))?,
                    room,
                    sender,
                    client_msg_id: ClientMsgId::parse(s.client_msg_id.clone())
                        .map_err(|e| bad(&e))?
                        .as_str()
                        .to_owned(),
                    body: s.body.clone(),
                    reply_to: (s.reply_to > 0).then(|| Seq::new(s.reply_to)),
                    deliver_at_ms: s.deliver_at_ms,
                }))
            })
        }
        Some(Requested::CancelScheduled(c)) => {
            parsed(&command.room, &command.actor).and_then(|(room, sender)| {
                Ok(Request::Cancel {
                    room,
                    sender,
                    id: Uuid::parse_str(&c.id).map_err(|e| bad(&e))?,
                })
            })
        }
        _ => return None,
    })
}

/// Applies a scheduling request and says how it stands.
pub async fn answer(
    ctx: &Ctx,
    command_id: String,
    request: Request,
) -> Result<CommandReply, WorkerError> {
    let (done, outcome) = match request {
        Request::Schedule(new) => (ctx.store.schedule(&new).await?, "scheduled"),
        Request::Cancel { room, sender, id } => (
            ctx.store.cancel_scheduled(&room, &sender, id).await?,
            "cancelled",
        ),
    };
    Ok(match done {
        Ok(row) => {
            metrics::scheduled(outcome, 1);
            CommandReply {
                command_id,
                scheduled: Some(row.to_proto()),
                ..CommandReply::default()
            }
        }
        Err(refused) => {
            metrics::scheduled("refused_request", 1);
            refusal(command_id, refused)
        }
    })
}

fn refusal(command_id: String, refused: ScheduleRefused) -> CommandReply {
    CommandReply {
        command_id,
        error: refused.code().as_str().into(),
        reason: refused.to_string(),
        ..CommandReply::default()
    }
}

/// Sends due messages until shutdown.
pub async fn run(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(ctx.config.scheduled_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // A full batch means more may be due: take the next at once.
        while let Ok(BATCH) = send_due(&ctx).await {}
    }
}

/// One transaction's worth of due messages; how many it took.
async fn send_due(ctx: &Ctx) -> Result<i64, WorkerError> {
    let due = match ctx.store.send_due(BATCH).await {
        Ok(due) => due,
        Err(e) => {
            // Nothing was committed: the rows stay due for the next turn.
            tracing::warn!(error = %e, "due scheduled messages not sent");
            return Err(e.into());
        }
    };
    if !due.is_empty() {
        // Test builds: a worker that dies between the commit and the fan-out.
        fail::fail_point!("worker-scheduled-after-commit", |_| std::process::abort());
    }
    let taken = due.len() as i64;
    let mut stored = Vec::with_capacity(due.len());
    for SentDue { room, row, outcome } in due {
        match outcome {
            Persisted::Stored { message, fresh } => {
                metrics::scheduled("sent", 1);
                if fresh {
                    stored.push((room, message));
                }
            }
            other => {
                metrics::scheduled("refused_at_time", 1);
                tracing::info!(id = %row.id, outcome = ?other, "scheduled message not sent");
            }
        }
    }
    let keep = ctx.config.recent_cache_len.get();
    if let Err(e) = chat_cache::remember(&mut ctx.redis.clone(), &stored, keep).await {
        // Only a cache: a window missing an entry is not whole, and is
        // read from Postgres.
        tracing::warn!(error = %e, "recent-message window not updated");
    }
    let notify: Vec<_> = (stored.iter().enumerate())
        .filter(|(_, (room, message))| notify::wanted(ctx, room, message))
        .map(|(i, (room, message))| (i, room.clone(), message.clone()))
        .collect();
    if !notify::enqueue(ctx, &notify).await.is_empty() {
        // Committed: nothing redelivers it.
        tracing::warn!("a scheduled message's notifications were not queued");
    }
    for (room, message) in &stored {
        if let Err(e) = fanout::publish_event(ctx, room, message).await {
            // Committed: gateways find the gap and read it from Postgres.
            tracing::warn!(error = %e, "scheduled message not fanned out");
        }
    }
    Ok(taken)
}
