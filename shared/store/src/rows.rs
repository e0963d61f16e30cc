//! Rows as the types they stand for, for the column layouts several
//! statements share (`sql::MESSAGE_AT` and its kin, a member's role and flags).

use std::collections::BTreeMap;

use chat_proto::v1::{Message, Reaction};
use chat_protocol::access::{Access, Permissions, Role};
use chat_protocol::kind::EntryKind;
use tokio_postgres::Row;
use uuid::Uuid;

/// A stored row as a client sees it. The `body` column holds a chat
/// message's text (an edit's new text), a member event's member, a
/// reaction's emoji; `target_seq` a chat message's reply target or an
/// event's message; `access` a member event's role and flags after it.
pub fn message_from_row(row: &Row) -> Message {
    let kind: String = row.get(7);
    let body: String = row.get(4);
    let seq = row.get::<_, i64>(1) as u64;
    let target_seq = row.get::<_, Option<i64>>(11).unwrap_or(0) as u64;
    let target_id = row
        .get::<_, Option<Uuid>>(12)
        .map_or_else(String::new, |id| id.to_string());
    let mut message = Message {
        room: row.get(0),
        seq,
        id: row.get::<_, Uuid>(2).to_string(),
        sender: row.get(3),
        ts_ms: row.get(5),
        client_msg_id: row.get(6),
        access: row
            .get::<_, Option<&str>>(8)
            .and_then(Access::decode)
            .map(Access::to_proto),
        ..Message::default()
    };
    let chat = EntryKind::parse(&kind) == Some(EntryKind::Message);
    place_entry(
        &mut message,
        EntryKind::parse(&kind),
        body,
        target_seq,
        target_id,
    );
    if chat {
        message.edited_ts_ms = row.get::<_, Option<i64>>(9).unwrap_or(0);
        message.deleted = row.get(10);
        message.reply_count = row.get::<_, i32>(13) as u32;
        message.reactions = reactions(row.get(14));
        message.changed_seq = row.get::<_, Option<i64>>(15).map_or(seq, |s| s as u64);
    }
    message.kind = kind;
    message
}

/// Where an entry's `body` column and target go in its `Message`, by kind
/// (`None`: a kind this build does not know, read as a member change):
/// a chat message's text and reply target; an edit's new text, a
/// reaction's emoji, a member change's member; an event's message.
pub fn place_entry(
    message: &mut Message,
    kind: Option<EntryKind>,
    body: String,
    target_seq: u64,
    target_id: String,
) {
    match kind {
        Some(EntryKind::Message) => {
            message.body = body;
            (message.reply_to, message.reply_to_id) = (target_seq, target_id);
            return;
        }
        Some(EntryKind::MessageEdited) => message.body = body,
        Some(EntryKind::ReactionAdded | EntryKind::ReactionRemoved) => message.emoji = body,
        Some(EntryKind::MessageDeleted) => {}
        Some(EntryKind::MemberJoined | EntryKind::MemberLeft | EntryKind::RoleChanged) | None => {
            message.member = body;
            return;
        }
    }
    (message.target_seq, message.target_id) = (target_seq, target_id);
}

/// A message's reaction counts as stored (`{"👍": 2}`), by emoji.
fn reactions(stored: Option<&str>) -> Vec<Reaction> {
    let counts: BTreeMap<String, u32> = stored
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    counts
        .into_iter()
        .map(|(emoji, count)| Reaction {
            emoji,
            count,
            mine: false,
        })
        .collect()
}

/// A member's role and flags as stored, from columns `at` and `at + 1`.
pub fn access_from_row(row: &Row, at: usize) -> Option<Access> {
    Some(Access {
        role: Role::parse(row.get(at))?,
        permissions: Permissions::from_bits(row.get::<_, i16>(at + 1) as u8)?,
    })
}
