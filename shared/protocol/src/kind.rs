//! What an entry in a room's sequence is (`Message::kind`): a chat message
//! (empty), or a change to the room, which has its place in the sequence so
//! that everyone sees it at the same point and a resuming client replays it.

/// The kind of an entry in a room's sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A chat message (`kind` empty on the wire).
    Message,
    /// `member` was added to the room (by `sender`).
    MemberJoined,
    /// `member` was removed from the room (by `sender`): nothing of the room
    /// after this entry reaches them.
    MemberLeft,
    /// `member`'s role or flags changed (by `sender`); `access` holds the new ones.
    RoleChanged,
    /// The message at `target_seq` was edited by its sender; `body` is the new text.
    MessageEdited,
    /// The message at `target_seq` was deleted (by `sender`).
    MessageDeleted,
    /// `sender` reacted to the message at `target_seq` with `emoji`.
    ReactionAdded,
    /// `sender` took back their `emoji` reaction to the message at `target_seq`.
    ReactionRemoved,
}

/// Every kind, for lookups by name.
const ALL: [EntryKind; 8] = [
    EntryKind::Message,
    EntryKind::MemberJoined,
    EntryKind::MemberLeft,
    EntryKind::RoleChanged,
    EntryKind::MessageEdited,
    EntryKind::MessageDeleted,
    EntryKind::ReactionAdded,
    EntryKind::ReactionRemoved,
];

impl EntryKind {
    /// The `kind` field's value on the wire and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "",
            Self::MemberJoined => "member_joined",
            Self::MemberLeft => "member_left",
            Self::RoleChanged => "role_changed",
            Self::MessageEdited => "message_edited",
            Self::MessageDeleted => "message_deleted",
            Self::ReactionAdded => "reaction_added",
            Self::ReactionRemoved => "reaction_removed",
        }
    }

    /// Whether it changes another message (at its `target_seq`); such an
    /// entry comes from its sender through the ingest path, like a message.
    pub fn is_message_event(self) -> bool {
        matches!(
            self,
            Self::MessageEdited
                | Self::MessageDeleted
                | Self::ReactionAdded
                | Self::ReactionRemoved
        )
    }

    /// `None` for a kind this build does not know (a newer server's):
    /// readers skip what they cannot apply.
    pub fn parse(kind: &str) -> Option<Self> {
        ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_back_from_its_name() {
        for kind in ALL {
            assert_eq!(EntryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EntryKind::parse("message_edited_in_2030"), None);
    }
}
