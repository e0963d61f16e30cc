//! What an entry in a room's sequence is (`Message::kind`): a chat message
//! (empty), or a change to the room, which has its place in the sequence so
//! that everyone sees it at the same point and a resuming client replays it.

/// `member` was added to the room (by `sender`).
pub const MEMBER_JOINED: &str = "member_joined";
/// `member` was removed from the room (by `sender`): nothing of the room
/// after this entry reaches them.
pub const MEMBER_LEFT: &str = "member_left";
/// `member`'s role or flags changed (by `sender`); `access` holds the new ones.
pub const ROLE_CHANGED: &str = "role_changed";
