//! Changes to rooms go through the workers as commands (`chat.ctl.<room>`,
//! their own stream, so a backlog of sends never delays them), and the
//! caller is answered once the worker has committed the change, as a send
//! is acked only once stored. A command carries an id: asking again with
//! the same id (the admin API's `Idempotency-Key`) applies it once.

use std::time::Duration;

use chat_proto::internal::{command::Change, Command, CommandReply};
use chat_protocol::{subjects, ErrorCode, RoomId};
use futures::StreamExt;
use prost::Message as _;

use crate::error::GatewayError;

/// Who a command of the admin API is recorded as coming from: the sender
/// of its event. `:` is not allowed in user ids, so no user can send as
/// this sender (and collide with an event's client_msg_id).
pub const ADMIN_ACTOR: &str = "system:admin";

/// Publishes a command and waits for the worker's reply (or `timeout`).
pub async fn run(
    nats: &async_nats::Client,
    id: String,
    room: &RoomId,
    change: Change,
    timeout: Duration,
) -> Result<CommandReply, GatewayError> {
    let inbox = nats.new_inbox();
    let mut replies = nats
        .subscribe(inbox.clone())
        .await
        .map_err(GatewayError::nats)?;
    let command = Command {
        command_id: id,
        room: room.to_string(),
        actor: ADMIN_ACTOR.into(),
        change: Some(change),
        reply_to: inbox,
    };
    // No `Nats-Msg-Id`: JetStream would drop a resend within its window,
    // and the resend's asker would never hear back. The store applies a
    // command once per id.
    async_nats::jetstream::new(nats.clone())
        .publish(subjects::command(room), command.encode_to_vec().into())
        .await
        .map_err(GatewayError::nats)?
        .await
        .map_err(GatewayError::nats)?;
    let reply = tokio::time::timeout(timeout, replies.next())
        .await
        .map_err(|_| GatewayError::Timeout)?
        .ok_or_else(|| GatewayError::nats("reply subscription ended"))?;
    let reply = CommandReply::decode(reply.payload)
        .map_err(|e| GatewayError::nats(format!("undecodable command reply: {e}")))?;
    match reply.error.as_str() {
        "" => Ok(reply),
        code if code == ErrorCode::NotFound.as_str() => Err(GatewayError::NotFound),
        code if code == ErrorCode::InvalidArgument.as_str() => Err(GatewayError::InvalidArgument(
            "this Idempotency-Key was used for another change".into(),
        )),
        other => Err(GatewayError::nats(format!("command refused: {other}"))),
    }
}
