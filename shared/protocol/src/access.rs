//! Roles, permissions and the rules of who may change whom in a room: the
//! one place they are written. Workers apply them inside the transaction
//! that changes the room (so two commands never both pass on stale state);
//! gateways check a socket's own permissions on every frame they govern.
//!
//! The rules:
//! - Roles rank owner > admin > member. A new member is a `member` with
//!   `can_send_messages` only; owners and admins start with every flag.
//! - Adding a member takes the admin or owner role.
//! - Removing someone else takes `can_remove_members` and a role above
//!   theirs (an owner may remove another owner). Anyone may leave.
//! - Changing a role or flags takes `can_change_permissions` and a role
//!   above the target's (owners may change owners, themselves included);
//!   nobody grants a role above their own or a flag they lack.
//! - The last owner can neither leave, be removed nor be demoted: a room
//!   with an owner always keeps one.
//! - The trusted backend (service token) may do anything but the last.

use bitflags::bitflags;

use crate::ids::{IdError, UserId};
use chat_proto::v1::MemberAccess;

/// A member's rank in a room, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Member, Role::Admin, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The flags a member gets with this role, until changed.
    pub fn defaults(self) -> Permissions {
        match self {
            Self::Member => Permissions::SEND_MESSAGES,
            Self::Admin | Self::Owner => Permissions::all(),
        }
    }
}

bitflags! {
    /// Per-member permission flags (stored as a small integer).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Permissions: u8 {
        const SEND_MESSAGES = 1;
        const CHANGE_PERMISSIONS = 2;
        const REMOVE_MEMBERS = 4;
        /// Checked by message deletion, once that exists.
        const DELETE_OTHER_MESSAGES = 8;
    }
}

/// Each flag with its name on the wire.
const FLAG_NAMES: [(Permissions, &str); 4] = [
    (Permissions::SEND_MESSAGES, "can_send_messages"),
    (Permissions::CHANGE_PERMISSIONS, "can_change_permissions"),
    (Permissions::REMOVE_MEMBERS, "can_remove_members"),
    (
        Permissions::DELETE_OTHER_MESSAGES,
        "can_delete_other_messages",
    ),
];

impl Permissions {
    /// Flags from their wire names; an unknown name is returned as the error.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        names.into_iter().try_fold(Self::empty(), |acc, name| {
            FLAG_NAMES
                .iter()
                .find(|(_, n)| *n == name)
                .map(|(flag, _)| acc | *flag)
                .ok_or_else(|| name.to_owned())
        })
    }

    pub fn names(self) -> Vec<String> {
        FLAG_NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, n)| (*n).to_owned())
            .collect()
    }
}

/// A member's role and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    pub role: Role,
    pub permissions: Permissions,
}

impl Access {
    pub fn new(role: Role) -> Self {
        Self {
            role,
            permissions: role.defaults(),
        }
    }

    pub fn can(self, flag: Permissions) -> bool {
        self.permissions.contains(flag)
    }

    /// Compact form for caches and columns: `admin:15`.
    pub fn encode(self) -> String {
        format!("{}:{}", self.role.as_str(), self.permissions.bits())
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (role, bits) = s.split_once(':')?;
        Some(Self {
            role: Role::parse(role)?,
            permissions: Permissions::from_bits(bits.parse().ok()?)?,
        })
    }

    pub fn from_proto(access: &MemberAccess) -> Option<Self> {
        Some(Self {
            role: Role::parse(&access.role)?,
            permissions: Permissions::from_names(access.permissions.iter().map(String::as_str))
                .ok()?,
        })
    }

    pub fn to_proto(self) -> MemberAccess {
        MemberAccess {
            role: self.role.as_str().into(),
            permissions: self.permissions.names(),
        }
    }
}

/// Who asks for a change: the trusted backend, or a user. On the wire
/// (a command's `actor`, an event's `sender`) the service is
/// [`Actor::SERVICE`], which no user id can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The trusted backend, through the room API with the service token.
    Service,
    User(UserId),
}

impl Actor {
    /// `:` is not allowed in user ids, so no user can act as the service.
    pub const SERVICE: &'static str = "system:admin";

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s == Self::SERVICE {
            return Ok(Self::Service);
        }
        UserId::parse(s).map(Self::User)
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Service => Self::SERVICE,
            Self::User(user) => user.as_str(),
        }
    }
}

/// An actor as the room stands when its change is applied: what the rules
/// look at.
#[derive(Clone, Copy, Debug)]
pub enum Standing {
    /// The trusted backend (service token).
    Service,
    /// A user of the room (`None`: not a member of it).
    User {
        access: Option<Access>,
        is_target: bool,
    },
}

/// A change to one member.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Add,
    Remove { target: Access },
    Change { target: Access, to: Access },
}

/// Why a change is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a member of this room")]
    NotAMember,
    #[error("only admins and owners may add members")]
    MayNotAdd,
    #[error("you lack {0}")]
    Lacks(&'static str),
    #[error("you may only change members whose role is below yours")]
    NotAbove,
    #[error("you may not grant a role above your own")]
    RoleAboveOwn,
    #[error("you may not grant a permission you lack")]
    FlagNotHeld,
    #[error("the room's last owner cannot leave or be demoted; make another owner first")]
    LastOwner,
}

/// Whether an actor of this standing may do `op`; `owners` is how many owners the room has.
pub fn check(actor: Standing, op: Op, owners: usize) -> Result<(), Refusal> {
    let loses_owner = match op {
        Op::Add => false,
        Op::Remove { target } => target.role == Role::Owner,
        Op::Change { target, to } => target.role == Role::Owner && to.role != Role::Owner,
    };
    if loses_owner && owners <= 1 {
        return Err(Refusal::LastOwner);
    }
    let Standing::User { access, is_target } = actor else {
        return Ok(());
    };
    let me = access.ok_or(Refusal::NotAMember)?;
    let above = |target: Access| me.role == Role::Owner || me.role > target.role;
    match op {
        Op::Add if me.role >= Role::Admin => Ok(()),
        Op::Add => Err(Refusal::MayNotAdd),
        Op::Remove { .. } if is_target => Ok(()),
        Op::Remove { .. } if !me.can(Permissions::REMOVE_MEMBERS) => {
            Err(Refusal::Lacks("can_remove_members"))
        }
        Op::Remove { target } if !above(target) => Err(Refusal::NotAbove),
        Op::Remove { .. } => Ok(()),
        Op::Change { .. } if !me.can(Permissions::CHANGE_PERMISSIONS) => {
            Err(Refusal::Lacks("can_change_permissions"))
        }
        Op::Change { target, .. } if !above(target) => Err(Refusal::NotAbove),
        Op::Change { to, .. } if to.role > me.role => Err(Refusal::RoleAboveOwn),
        Op::Change { target, to }
            if !me.permissions.contains(to.permissions - target.permissions) =>
        {
            Err(Refusal::FlagNotHeld)
        }
        Op::Change { .. } => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_an_actor_no_user_can_be() {
        assert_eq!(Actor::parse(Actor::SERVICE), Ok(Actor::Service));
        let alice = Actor::parse("alice").unwrap();
        assert_eq!(alice.as_str(), "alice");
        assert!(Actor::parse("system:other").is_err());
    }

    fn user(role: Role) -> Standing {
        Standing::User {
            access: Some(Access::new(role)),
            is_target: false,
        }
    }

    #[test]
    fn encodes_and_decodes() {
        for role in Role::ALL {
            let a = Access::new(role);
            assert_eq!(Access::decode(&a.encode()), Some(a));
        }
        assert_eq!(Access::decode("1"), None);
        assert_eq!(Access::decode("boss:1"), None);
        assert_eq!(Access::decode("member:99"), None);
    }

    #[test]
    fn flag_names_round_trip_and_unknown_is_named() {
        let all = Permissions::all();
        let names = all.names();
        assert_eq!(
            Permissions::from_names(names.iter().map(String::as_str)),
            Ok(all)
        );
        assert_eq!(Permissions::from_names(["can_fly"]), Err("can_fly".into()));
    }

    #[test]
    fn an_admin_cannot_demote_an_owner_nor_promote_to_owner() {
        let owner = Access::new(Role::Owner);
        let member = Access::new(Role::Member);
        let demote = Op::Change {
            target: owner,
            to: member,
        };
        assert_eq!(check(user(Role::Admin), demote, 2), Err(Refusal::NotAbove));
        let promote = Op::Change {
            target: member,
            to: owner,
        };
        assert_eq!(
            check(user(Role::Admin), promote, 1),
            Err(Refusal::RoleAboveOwn)
        );
        assert_eq!(check(user(Role::Owner), promote, 1), Ok(()));
    }

    #[test]
    fn the_last_owner_stays_whoever_asks() {
        let owner = Access::new(Role::Owner);
        let leave = Op::Remove { target: owner };
        let me = Standing::User {
            access: Some(owner),
            is_target: true,
        };
        assert_eq!(check(me, leave, 1), Err(Refusal::LastOwner));
        assert_eq!(check(Standing::Service, leave, 1), Err(Refusal::LastOwner));
        assert_eq!(check(me, leave, 2), Ok(()));
    }

    #[test]
    fn nobody_grants_a_flag_they_lack() {
        let mut admin = Access::new(Role::Admin);
        admin.permissions -= Permissions::REMOVE_MEMBERS;
        let me = Standing::User {
            access: Some(admin),
            is_target: false,
        };
        let target = Access::new(Role::Member);
        let mut to = target;
        to.permissions |= Permissions::REMOVE_MEMBERS;
        assert_eq!(
            check(me, Op::Change { target, to }, 1),
            Err(Refusal::FlagNotHeld)
        );
        to.permissions = Permissions::empty();
        assert_eq!(check(me, Op::Change { target, to }, 1), Ok(()));
    }
}
