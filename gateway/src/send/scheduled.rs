//! Scheduled messages go to the workers as commands on the room's command
//! subject: kept (or cancelled) by a worker, answered with the message as it
//! stands. Sending them at their time is the workers' alone.

use std::time::Duration;

use chat_proto::{
    internal::{command::Change, CancelScheduled, Schedule},
    v1::{server_frame::Kind, ScheduledMessage},
};
use chat_protocol::{access::Actor, ClientMsgId, RoomId, Seq, UserId};

use crate::{error::GatewayError, send::commands};

/// How far ahead a message may be scheduled.
pub const MAX_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);

/// A message to send later, its time checked by [`check_time`].
pub struct NewScheduled {
    pub room: RoomId,
    pub client_msg_id: ClientMsgId,
    pub body: String,
    pub reply_to: Option<Seq>,
    pub deliver_at_ms: i64,
}

/// Checks a send's `deliverAtMs` against the gateway's clock: at most
/// [`MAX_AHEAD`] from now. A time already past is the worker's to refuse:
/// a resend after the time is answered with the message as it stands.
pub fn check_time(deliver_at_ms: i64, now_ms: i64) -> Result<i64, GatewayError> {
    if deliver_at_ms <= 0 {
        return Err(GatewayError::InvalidArgument(format!(
            "deliverAtMs {deliver_at_ms} is not a time"
        )));
    }
    let ahead = Duration::from_millis(deliver_at_ms.saturating_sub(now_ms).max(0) as u64);
    if ahead > MAX_AHEAD {
        return Err(GatewayError::InvalidArgument(format!(
            "deliverAtMs is {} days ahead; at most {} days",
            ahead.as_secs() / 86_400,
            MAX_AHEAD.as_secs() / 86_400
        )));
    }
    Ok(deliver_at_ms)
}

/// A scheduled message's id as a client gives it.
pub fn parse_id(id: &str) -> Result<uuid::Uuid, GatewayError> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        GatewayError::InvalidArgument(format!("{id:?} is not a scheduled message's id"))
    })
}

/// Schedules `user`'s message through the workers; answers `scheduled`.
pub async fn schedule(
    nats: async_nats::Client,
    user: UserId,
    new: NewScheduled,
    timeout: Duration,
) -> Result<Kind, GatewayError> {
    let change = Change::Schedule(Schedule {
        client_msg_id: new.client_msg_id.as_str().to_owned(),
        body: new.body,
        reply_to: new.reply_to.map_or(0, Seq::get),
        deliver_at_ms: new.deliver_at_ms,
    });
    // A fresh id: the message's if this is its first schedule; a resend
    // (same client_msg_id) is answered with the first one's.
    let id = commands::command_id(None)?;
    run(nats, user, &new.room, id, change, timeout).await
}

/// Cancels `user`'s scheduled message `id`; answers `scheduled`.
pub async fn cancel(
    nats: async_nats::Client,
    user: UserId,
    room: RoomId,
    id: uuid::Uuid,
    timeout: Duration,
) -> Result<Kind, GatewayError> {
    let change = Change::CancelScheduled(CancelScheduled { id: id.to_string() });
    let command_id = commands::command_id(None)?;
    run(nats, user, &room, command_id, change, timeout).await
}

async fn run(
    nats: async_nats::Client,
    user: UserId,
    room: &RoomId,
    id: String,
    change: Change,
    timeout: Duration,
) -> Result<Kind, GatewayError> {
    let actor = Actor::User(user);
    let reply = commands::run(&nats, id, &actor, room, change, timeout).await?;
    let scheduled: ScheduledMessage = reply
        .scheduled
        .ok_or_else(|| GatewayError::nats("scheduling reply without its message"))?;
    Ok(Kind::Scheduled(scheduled))
}
