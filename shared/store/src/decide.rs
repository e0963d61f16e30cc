//! Whether a change to one member may be made, and what it comes to,
//! under the rules of `chat_protocol::access` and the room as it stands.

use chat_protocol::access::{self, Access, Actor, Op, Role, Standing};
use chat_protocol::{RoomId, UserId};
use deadpool_postgres::Transaction;

use crate::command::{MemberChange, NewCommand, Refused};
use crate::error::StoreError;
use crate::rows::access_from_row;
use crate::sql;

/// What a change to one member comes to, with the room's row locked.
#[derive(Debug)]
pub enum Decision {
    /// The rules forbid it, or it names no member: nothing is changed and
    /// the claim is rolled back with the rest.
    Refused(Refused),
    /// Allowed, but the room already is as asked (adding an existing member,
    /// removing a non-member, setting the access a member has): recorded, no event.
    Unchanged,
    /// The user becomes a member with this access (a `member_joined` event).
    Add(Access),
    /// The member leaves or is removed (a `member_left` event).
    Remove,
    /// The member's role and flags become these (a `role_changed` event).
    SetAccess(Access),
}

/// Checks a change to one member against the rules and the room as it
/// stands (its row locked).
pub async fn decide(
    tx: &Transaction<'_>,
    command: &NewCommand,
    user: &UserId,
    change: &MemberChange,
) -> Result<Decision, StoreError> {
    let room = &command.room;
    let target = access_in(tx, room, user).await?;
    let standing = match &command.actor {
        Actor::Service => Standing::Service,
        Actor::User(me) if me == user => Standing::User {
            access: target,
            is_target: true,
        },
        Actor::User(me) => Standing::User {
            access: access_in(tx, room, me).await?,
            is_target: false,
        },
    };
    let Some((op, after)) = operation(change, target) else {
        return Ok(Decision::Refused(Refused::NotAMember(user.clone())));
    };
    let owners = if target.is_some_and(|t| t.role == Role::Owner) {
        let row = tx.query_one(sql::COUNT_OWNERS, &[&room.as_str()]).await?;
        row.get::<_, i64>(0) as usize
    } else {
        0
    };
    if let Err(refusal) = access::check(standing, op, owners) {
        return Ok(Decision::Refused(refusal.into()));
    }
    Ok(match (change, target, after) {
        (MemberChange::Add, None, Some(a)) => Decision::Add(a),
        (MemberChange::Remove, Some(_), _) => Decision::Remove,
        (MemberChange::SetAccess { .. }, Some(_), Some(a)) => Decision::SetAccess(a),
        _ => Decision::Unchanged,
    })
}

/// The change as the rules see it, given the target's access now, and
/// the target's access after it if it changes (`None` also when removed);
/// `None` for a change of access of someone not a member.
fn operation(change: &MemberChange, target: Option<Access>) -> Option<(Op, Option<Access>)> {
    Some(match (change, target) {
        (MemberChange::Add, t) => (Op::Add, t.is_none().then(|| Access::new(Role::Member))),
        // Leaving a room one is not in is checked like any removal.
        (MemberChange::Remove, t) => (
            Op::Remove {
                target: t.unwrap_or(Access::new(Role::Member)),
            },
            None,
        ),
        (MemberChange::SetAccess { .. }, None) => return None,
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
    })
}

/// The user's access in the room, read inside the transaction.
pub(crate) async fn access_in(
    tx: &Transaction<'_>,
    room: &RoomId,
    user: &UserId,
) -> Result<Option<Access>, StoreError> {
    Ok(tx
        .query_opt(sql::MEMBER_ACCESS, &[&room.as_str(), &user.as_str()])
        .await?
        .as_ref()
        .and_then(|row| access_from_row(row, 0)))
}
