//! Rows as the types they stand for, for the column layouts several
//! statements share (`sql::MESSAGE_AT` and its kin, a member's role and flags).

use chat_proto::v1::Message;
use chat_protocol::access::{Access, Permissions, Role};
use tokio_postgres::Row;
use uuid::Uuid;

/// A stored row as a client sees it: an event's `body` column holds its
/// member, its `access` column their role and flags after it.
pub fn message_from_row(row: &Row) -> Message {
    let kind: String = row.get(7);
    let body: String = row.get(4);
    let (body, member) = if kind.is_empty() {
        (body, String::new())
    } else {
        (String::new(), body)
    };
    Message {
        room: row.get(0),
        seq: row.get::<_, i64>(1) as u64,
        id: row.get::<_, Uuid>(2).to_string(),
        sender: row.get(3),
        body,
        ts_ms: row.get(5),
        client_msg_id: row.get(6),
        kind,
        member,
        access: row
            .get::<_, Option<&str>>(8)
            .and_then(Access::decode)
            .map(Access::to_proto),
    }
}

/// A member's role and flags as stored, from columns `at` and `at + 1`.
pub fn access_from_row(row: &Row, at: usize) -> Option<Access> {
    Some(Access {
        role: Role::parse(row.get(at))?,
        permissions: Permissions::from_bits(row.get::<_, i16>(at + 1) as u8)?,
    })
}
