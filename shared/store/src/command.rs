//! Commands: changes to a room's members that a worker applies once per
//! id, and what applying one did.

use chat_proto::v1::Message;
use chat_protocol::access::{Access, Actor, Permissions, Refusal, Role};
use chat_protocol::{RoomId, UserId};

/// A change to a room, as a worker applies it.
#[derive(Clone, Debug)]
pub enum Change {
    /// Creates the room (if new) with these members, `owners` as owners
    /// and the rest as plain members; no events: a room's sequence starts
    /// empty.
    CreateRoom {
        members: Vec<UserId>,
        owners: Vec<UserId>,
    },
    /// A change to one member, under the rules of who may change whom.
    Member(UserId, MemberChange),
    /// Opens the direct room of the actor (a user) and this peer: made
    /// with both as members if new; the actor is added back if they left.
    OpenDirect(UserId),
    /// Deletes the room and everything stored for it (`delete_room`).
    DeleteRoom,
    /// The room's own retention limits (`None`: the workers' default).
    SetRetention(Limits),
}

#[derive(Clone, Debug)]
pub enum MemberChange {
    Add,
    Remove,
    /// A new role (with its default flags) if given, then flags granted
    /// and revoked.
    SetAccess {
        role: Option<Role>,
        grant: Permissions,
        revoke: Permissions,
    },
}

/// Limits: at most `count` newest entries, none older than `max_age_secs`
/// (either or both; neither: kept for ever).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub count: Option<i64>,
    pub max_age_secs: Option<i64>,
}

/// A command to apply once, by id.
#[derive(Clone, Debug)]
pub struct NewCommand {
    pub id: String,
    pub room: RoomId,
    pub actor: Actor,
    pub change: Change,
}

impl NewCommand {
    /// Who does what, recorded with its id: an id reused for another
    /// change (or by another actor) is refused.
    pub(crate) fn describe(&self) -> String {
        let what = match &self.change {
            Change::CreateRoom { members, owners } => {
                format!("create:{}:{}", members.len(), owners.len())
            }
            Change::OpenDirect(peer) => format!("direct:{peer}"),
            Change::DeleteRoom => "delete".to_owned(),
            Change::SetRetention(limits) => format!(
                "retention:{}:{}",
                limits.max_age_secs.unwrap_or(0),
                limits.count.unwrap_or(0)
            ),
            Change::Member(user, MemberChange::Add) => format!("add:{user}"),
            Change::Member(user, MemberChange::Remove) => format!("remove:{user}"),
            Change::Member(
                user,
                MemberChange::SetAccess {
                    role,
                    grant,
                    revoke,
                },
            ) => format!(
                "access:{user}:{}:{}:{}",
                role.map_or("", Role::as_str),
                grant.bits(),
                revoke.bits()
            ),
        };
        format!("{}/{what}", self.actor.as_str())
    }
}

/// What applying a command did (the same answer however often it is applied).
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per command, matched as soon as it is returned: boxing the event saves nothing"
)]
pub enum Applied {
    Done {
        /// The room was created by this command.
        created: bool,
        /// The change's event in the room's sequence, if it changed anything.
        event: Option<Message>,
        /// Applied by this call, not found applied before (a redelivery,
        /// a resend): what follows a change is done once.
        fresh: bool,
        /// Members whose access this call changed, with their access now
        /// (`None`: no longer a member). Empty unless `fresh`.
        changed: Vec<(UserId, Option<Access>)>,
    },
    /// Nothing was changed (and nothing recorded: asking again re-checks).
    Refused(Refused),
}

/// Why a command changed nothing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("no such room")]
    RoomMissing,
    #[error("the room exists")]
    RoomExists,
    #[error("this command id was used for another change")]
    IdReused,
    #[error("{0} is not a member of this room")]
    NotAMember(UserId),
    #[error("ids starting with `dm-` are for direct rooms: open one with openDirect")]
    ReservedId,
    #[error("a direct room has its two members and no other")]
    DirectRoom,
    #[error("a direct room is between two different users")]
    DirectWithSelf,
    #[error("a direct room is opened by one of its pair, at the pair's room id")]
    NotThePair,
    #[error("only the room's owners may do this")]
    NotOwner,
    #[error("{0}")]
    Rule(#[from] Refusal),
}
