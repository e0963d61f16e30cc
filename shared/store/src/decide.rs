//! Whether a change to one member may be made, and what it comes to,
//! under the rules of `chat_protocol::access` and the room as it stands.

use chat_protocol::access::{self, Access, Actor, Op, Role};
use chat_protocol::{kind, RoomId, UserId};

use crate::command::{Asker, MemberChange, NewCommand, Refused};
use crate::error::StoreError;
use crate::rows::access_from_row;
use crate::sql;

/// Checks a change to one member against the rules and the room as it
/// stands (its row locked): the member's access after the change (`None`:
/// removed) and the event's kind, or `None` if it changes nothing.
pub async fn decide(
    tx: &deadpool_postgres::Transaction<'_>,
    command: &NewCommand,
    user: &UserId,
    change: &MemberChange,
) -> Result<Result<Option<(Option<Access>, &'static str)>, Refused>, StoreError> {
    let room = &command.room;
    let target = access_in(tx, room, user).await?;
    let actor = match &command.actor {
        Asker::Service => Actor::Service,
        Asker::User(me) if me == user => Actor::User {
            access: target,
            is_target: true,
        },
        Asker::User(me) => Actor::User {
            access: access_in(tx, room, me).await?,
            is_target: false,
        },
    };
    let (op, after) = match (change, target) {
        (MemberChange::Add, t) => (Op::Add, t.is_none().then(|| Access::new(Role::Member))),
        // Leaving a room one is not in is checked like any removal.
        (MemberChange::Remove, t) => (
            Op::Remove {
                target: t.unwrap_or(Access::new(Role::Member)),
            },
            None,
        ),
        (MemberChange::SetAccess { .. }, None) => {
            return Ok(Err(Refused::NotAMember(user.clone())))
        }
        (
            MemberChange::SetAccess {
                role,
                grant,
                revoke,
            },
            Some(t),
        ) => {
            let base = role.map_or(t.permissions, Role::defaults);
            let to = Access {
                role: role.unwrap_or(t.role),
                permissions: (base | *grant) - *revoke,
            };
            (Op::Change { target: t, to }, (to != t).then_some(to))
        }
    };
    let owners = if target.is_some_and(|t| t.role == Role::Owner) {
        let row = tx.query_one(sql::COUNT_OWNERS, &[&room.as_str()]).await?;
        row.get::<_, i64>(0) as usize
    } else {
        0
    };
    if let Err(refusal) = access::check(actor, op, owners) {
        return Ok(Err(refusal.into()));
    }
    Ok(Ok(match (change, target, after) {
        (MemberChange::Add, None, Some(a)) => Some((Some(a), kind::MEMBER_JOINED)),
        (MemberChange::Remove, Some(_), _) => Some((None, kind::MEMBER_LEFT)),
        (MemberChange::SetAccess { .. }, Some(_), Some(a)) => Some((Some(a), kind::ROLE_CHANGED)),
        _ => None,
    }))
}

async fn access_in(
    tx: &deadpool_postgres::Transaction<'_>,
    room: &RoomId,
    user: &UserId,
) -> Result<Option<Access>, StoreError> {
    Ok(tx
        .query_opt(sql::MEMBER_ACCESS, &[&room.as_str(), &user.as_str()])
        .await?
        .as_ref()
        .and_then(|row| access_from_row(row, 0)))
}
