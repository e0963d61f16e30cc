//! Changes to rooms go through the workers as commands (`chat.cmd.<room>`,
//! their own stream, so a backlog of sends never delays them), and the
//! caller is answered once the worker has committed the change, as a send
//! is acked only once stored. A command carries an id: asking again with
//! the same id (the room API's `Idempotency-Key`) applies it once.

use std::time::Duration;

use chat_proto::internal::{
    command::Change, AccessChange, Command, CommandReply, DirectPair, MemberChange, SetRetention,
};
use chat_protocol::{
    access::{Actor, Permissions, Role},
    subjects, ClientMsgId, ErrorCode, RoomId, UserId,
};
use prost::Message as _;

use crate::{error::GatewayError, send::ask};

/// A command's id: the one the asker chose (so that asking again applies
/// it once), or a fresh one.
pub fn command_id(chosen: Option<&str>) -> Result<String, GatewayError> {
    match chosen {
        None | Some("") => Ok(uuid::Uuid::now_v7().to_string()),
        Some(id) => Ok(ClientMsgId::parse(id)?.as_str().to_owned()),
    }
}

pub fn add_member(user: String) -> Result<Change, GatewayError> {
    Ok(Change::AddMember(MemberChange {
        user: UserId::parse(user)?.into(),
    }))
}

pub fn remove_member(user: String) -> Result<Change, GatewayError> {
    Ok(Change::RemoveMember(MemberChange {
        user: UserId::parse(user)?.into(),
    }))
}

/// A change of role (empty: keep) and flags, checked for names that exist.
pub fn set_access(
    user: String,
    role: &str,
    grant: &[String],
    revoke: &[String],
) -> Result<Change, GatewayError> {
    if !role.is_empty() && Role::parse(role).is_none() {
        return Err(GatewayError::InvalidArgument(format!(
            "unknown role {role:?}: owner, admin or member"
        )));
    }
    let flags = |names: &[String]| {
        Permissions::from_names(names.iter().map(String::as_str))
            .map_err(|name| GatewayError::InvalidArgument(format!("unknown permission {name:?}")))
    };
    Ok(Change::SetAccess(AccessChange {
        user: UserId::parse(user)?.into(),
        role: role.to_owned(),
        grant: flags(grant)?.bits().into(),
        revoke: flags(revoke)?.bits().into(),
    }))
}

/// A room's own retention limits, each at least 1 (`None`: the workers'
/// default, sent as 0).
pub fn set_retention(
    max_age_secs: Option<i64>,
    max_count: Option<i64>,
) -> Result<Change, GatewayError> {
    let limit = |name: &str, n: Option<i64>| match n {
        None => Ok(0),
        Some(n) if n > 0 => Ok(n),
        Some(_) => Err(GatewayError::InvalidArgument(format!(
            "{name} must be at least 1 (leave it out for the default)"
        ))),
    };
    Ok(Change::SetRetention(SetRetention {
        max_age_secs: limit("maxAgeSeconds", max_age_secs)?,
        max_count: limit("maxCount", max_count)?,
    }))
}

/// Opens the direct room of `me` and `peer` through the workers (made on
/// first use, by either): the pair's room, and whether this call made it.
pub async fn open_direct(
    nats: &async_nats::Client,
    me: &UserId,
    peer: &UserId,
    timeout: Duration,
) -> Result<(RoomId, bool), GatewayError> {
    if peer == me {
        return Err(GatewayError::InvalidArgument(
            "a direct room is between two different users".into(),
        ));
    }
    let room = RoomId::direct(me, peer);
    let change = Change::OpenDirect(DirectPair {
        peer: peer.to_string(),
    });
    let actor = Actor::User(me.clone());
    let reply = run(nats, command_id(None)?, &actor, &room, change, timeout).await?;
    Ok((room, reply.created))
}

/// Publishes a command of `actor` and waits for the worker's reply (or
/// `timeout`).
pub async fn run(
    nats: &async_nats::Client,
    id: String,
    actor: &Actor,
    room: &RoomId,
    change: Change,
    timeout: Duration,
) -> Result<CommandReply, GatewayError> {
    let payload = |inbox| {
        Command {
            command_id: id,
            room: room.to_string(),
            actor: actor.as_str().into(),
            change: Some(change),
            reply_to: inbox,
        }
        .encode_to_vec()
    };
    let reply = ask::workers(nats, subjects::command(room), payload, timeout).await?;
    let reply = CommandReply::decode(reply)
        .map_err(|e| GatewayError::nats(format!("undecodable command reply: {e}")))?;
    match ErrorCode::parse(&reply.error) {
        None if reply.error.is_empty() => Ok(reply),
        Some(code) => Err(GatewayError::Refused {
            code,
            reason: reply.reason,
        }),
        None => Err(GatewayError::nats(format!(
            "command refused: {}",
            reply.error
        ))),
    }
}
