//! What a client adds to a room's sequence: a message (perhaps a reply), or
//! an event changing one. Each is sent, resent until acked and acked alike.

use chat_proto::v1::{client_frame::Kind, Delete, Edit, React, Send};

/// An entry to submit (see [`Client::submit_entry`](crate::Client::submit_entry)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewEntry {
    /// A chat message; with `reply_to`, an answer to the message at that seq.
    Message { body: String, reply_to: Option<u64> },
    /// New text for one's own message at `seq`.
    Edit { seq: u64, body: String },
    /// Deletes the message at `seq` (another's needs `can_delete_other_messages`).
    Delete { seq: u64 },
    /// Adds (or, with `remove`, takes back) this user's `emoji` on the message at `seq`.
    React {
        seq: u64,
        emoji: String,
        remove: bool,
    },
}

impl NewEntry {
    /// The frame that carries it.
    pub(crate) fn frame(self, room: &str, client_msg_id: &str) -> Kind {
        let (room, client_msg_id) = (room.to_owned(), client_msg_id.to_owned());
        match self {
            Self::Message { body, reply_to } => Kind::Send(Send {
                room,
                client_msg_id,
                body,
                reply_to: reply_to.map(wire_seq),
                deliver_at_ms: None,
            }),
            Self::Edit { seq, body } => Kind::Edit(Edit {
                room,
                seq: wire_seq(seq),
                body,
                client_msg_id,
            }),
            Self::Delete { seq } => Kind::Delete(Delete {
                room,
                seq: wire_seq(seq),
                client_msg_id,
            }),
            Self::React { seq, emoji, remove } => Kind::React(React {
                room,
                seq: wire_seq(seq),
                emoji,
                remove,
                client_msg_id,
            }),
        }
    }
}

/// A seq as the protocol's signed fields carry it.
pub(crate) fn wire_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
