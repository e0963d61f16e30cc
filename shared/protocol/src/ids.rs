//! Newtype ids, validated once where they enter the system.
//!
//! Room ids become NATS subject tokens and Redis key parts, and user ids
//! become NATS header values and Redis key parts, so both are restricted to a
//! safe alphabet checked once here: a control character in either could
//! break a header or a key (a CR/LF in a header value panics the NATS client).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0} is longer than {1} bytes")]
    TooLong(&'static str, usize),
    #[error("{0} may only contain ASCII letters, digits, '-' and '_'")]
    BadChar(&'static str),
    #[error("{0} may only contain ASCII letters, digits, '-', '_', '.' and '@'")]
    BadUserChar(&'static str),
}

/// What every string id has besides its own `parse`: the text, and the
/// conversions serde uses (`try_from = "String"`, `into = "String"`).
macro_rules! string_id {
    ($id:ident) => {
        impl $id {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $id {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }

        impl From<$id> for String {
            fn from(id: $id) -> String {
                id.0
            }
        }

        impl fmt::Display for $id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A room's id: 1–64 of `[A-Za-z0-9_-]`, safe as a NATS token and Redis key part.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

impl RoomId {
    pub const MAX_LEN: usize = 64;

    /// Parses a room id from untrusted input.
    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        check_len("room", &s, Self::MAX_LEN)?;
        if !s.bytes().all(is_token_byte) {
            return Err(IdError::BadChar("room"));
        }
        Ok(Self(s))
    }
}

string_id!(RoomId);

impl RoomId {
    /// What every direct room's id starts with; reserved for them (a room
    /// cannot be created under such an id any other way).
    pub const DIRECT_PREFIX: &'static str = "dm-";

    /// The direct room of two users: `dm-` and 40 hex digits of a SHA-256
    /// of the pair in sorted order, so the same for (a, b) and (b, a), and
    /// within the room alphabet whatever the user ids (up to 128 bytes each).
    pub fn direct(a: &UserId, b: &UserId) -> Self {
        use sha2::{Digest, Sha256};
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        // '\n' is outside the user alphabet: no two pairs hash the same text.
        let digest = Sha256::digest(format!("{first}\n{second}"));
        let mut id = String::from(Self::DIRECT_PREFIX);
        for byte in &digest[..20] {
            id.push_str(&format!("{byte:02x}"));
        }
        Self(id)
    }

    /// Whether the id is in the direct rooms' reserved space.
    pub fn is_direct(&self) -> bool {
        self.0.starts_with(Self::DIRECT_PREFIX)
    }
}

/// A user's id: the `sub` of a verified token, 1–128 of `[A-Za-z0-9_.@-]`
/// (the room alphabet plus the '.' and '@' of e-mail-like subjects).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        check_len("user", &s, Self::MAX_LEN)?;
        if !s
            .bytes()
            .all(|b| is_token_byte(b) || b == b'.' || b == b'@')
        {
            return Err(IdError::BadUserChar("user"));
        }
        Ok(Self(s))
    }
}

string_id!(UserId);

/// The client's idempotency key for a `send`: 1–64 printable ASCII bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientMsgId(String);

impl ClientMsgId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        check_len("client_msg_id", &s, Self::MAX_LEN)?;
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::BadChar("client_msg_id"));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_len(what: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        Err(IdError::Empty(what))
    } else if s.len() > max {
        Err(IdError::TooLong(what, max))
    } else {
        Ok(())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A room's sequence number: the n-th stored message of the room has seq
/// n; `Seq::ZERO` is "before the first". On the wire it is a plain `u64`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(u64);

impl Seq {
    pub const ZERO: Seq = Seq(0);

    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The seq after this one.
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }

    /// The seq before this one (`ZERO` stays `ZERO`).
    pub const fn prev(self) -> Seq {
        Seq(self.0.saturating_sub(1))
    }

    /// How many seqs lie in `(earlier, self]`.
    pub const fn since(self, earlier: Seq) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl From<u64> for Seq {
    fn from(n: u64) -> Self {
        Self(n)
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> u64 {
        seq.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_subject_safe() {
        assert!(RoomId::parse("general-1_x").is_ok());
        assert_eq!(RoomId::parse(""), Err(IdError::Empty("room")));
        assert_eq!(RoomId::parse("a.b"), Err(IdError::BadChar("room")));
        assert_eq!(RoomId::parse("a*"), Err(IdError::BadChar("room")));
        assert_eq!(RoomId::parse("a b"), Err(IdError::BadChar("room")));
        assert!(RoomId::parse("x".repeat(65)).is_err());
    }

    #[test]
    fn a_pair_has_one_direct_room_whatever_the_order() {
        let user = |u: &str| UserId::parse(u).unwrap();
        let (a, b) = (user("alice"), user("bob"));
        let room = RoomId::direct(&a, &b);
        assert_eq!(room, RoomId::direct(&b, &a));
        assert!(room.is_direct());
        assert_eq!(RoomId::parse(room.as_str()), Ok(room.clone()));
        // Pinned: a pair's room id may never change, or it would get a second room.
        assert_eq!(room.as_str(), "dm-1cb15457d1ddab60e205c0fe3ca2f65d1e27e1b0");
        assert_ne!(room, RoomId::direct(&a, &user("carol")));
        let long = user(&"x".repeat(128));
        assert!(RoomId::parse(RoomId::direct(&long, &user("a.b@c")).as_str()).is_ok());
        assert!(!RoomId::parse("lobby").unwrap().is_direct());
    }

    #[test]
    fn user_ids_cannot_carry_control_characters() {
        assert!(UserId::parse("alice.smith@example.com").is_ok());
        assert!(UserId::parse("user-42_x").is_ok());
        for bad in ["a\r\nb", "a\nb", "a\0b", "a b", "a:b", "ä"] {
            assert_eq!(
                UserId::parse(bad),
                Err(IdError::BadUserChar("user")),
                "{bad:?}"
            );
        }
        assert_eq!(UserId::parse(""), Err(IdError::Empty("user")));
        assert!(UserId::parse("u".repeat(129)).is_err());
    }

    #[test]
    fn seqs_step_without_wrapping_below_zero() {
        let five = Seq::new(5);
        assert_eq!(five.next(), Seq::new(6));
        assert_eq!(five.prev(), Seq::new(4));
        assert_eq!(Seq::ZERO.prev(), Seq::ZERO);
        assert_eq!(Seq::new(9).since(five), 4);
        assert_eq!(five.since(Seq::new(9)), 0);
        assert!(five < five.next());
    }

    #[test]
    fn client_msg_ids_are_printable() {
        assert!(ClientMsgId::parse("0192f0c4-8e0a-7c1e-b7a4-1f2e3d4c5b6a").is_ok());
        assert!(ClientMsgId::parse("a b").is_err());
        assert!(ClientMsgId::parse("").is_err());
    }
}
