//! Every statement of the system, named for what it does: the one place
//! its SQL is written, so a schema change is checked against all of it.

/// Whether Postgres answers at all.
pub const PING: &str = "SELECT 1";
/// Session-level advisory lock held while migrating (dropped with the connection).
pub const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(7245186)";
pub const MEMBER_ACCESS: &str =
    "SELECT role, permissions FROM members WHERE room_id = $1 AND user_id = $2";
/// One row per member, or one row of NULLs for a room without any;
/// none when the room does not exist.
pub const MEMBERS: &str = "SELECT m.user_id, m.role, m.permissions FROM rooms r \
    LEFT JOIN members m ON m.room_id = r.id WHERE r.id = $1 ORDER BY m.user_id";
pub const COUNT_OWNERS: &str = "SELECT count(*) FROM members WHERE room_id = $1 AND role = 'owner'";
pub const ROOM_HEAD: &str = "SELECT last_seq FROM rooms WHERE id = $1";
pub const ROOM_HEADS: &str = "SELECT id, last_seq FROM rooms WHERE id = ANY($1)";
pub const CREATE_ROOM: &str = "INSERT INTO rooms (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";
/// Two at once for one pair: the second waits for the first's insert,
/// then does nothing.
pub const CREATE_DIRECT_ROOM: &str =
    "INSERT INTO rooms (id, direct) VALUES ($1, true) ON CONFLICT (id) DO NOTHING";
pub const ADD_MEMBER: &str = "INSERT INTO members (room_id, user_id, role, permissions) \
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
pub const SET_ACCESS: &str =
    "UPDATE members SET role = $3, permissions = $4 WHERE room_id = $1 AND user_id = $2";
pub const REMOVE_MEMBER: &str = "DELETE FROM members WHERE room_id = $1 AND user_id = $2";
/// Columns in the order `message_from_row` reads them (a macro, so that
/// `concat!` can build whole statements from them at compile time).
macro_rules! message_columns {
    () => {
        "room_id, seq, id, sender_id, body, \
        round(extract(epoch FROM created_at) * 1000)::int8, client_msg_id, kind, access"
    };
}
pub const MESSAGE_AT: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq = $2"
);
pub const CLAIM_COMMAND: &str = "INSERT INTO commands (id, room_id, change) VALUES ($1, $2, $3) \
    ON CONFLICT (id) DO NOTHING";
pub const COMMAND_DONE: &str =
    "SELECT room_id, change, event_seq, created FROM commands WHERE id = $1";
pub const LOCK_ROOM: &str = "SELECT last_seq, direct FROM rooms WHERE id = $1 FOR UPDATE";
pub const SET_ROOM_HEAD: &str = "UPDATE rooms SET last_seq = $2 WHERE id = $1";
pub const INSERT_EVENT: &str = "INSERT INTO messages \
    (room_id, seq, id, sender_id, client_msg_id, body, created_at, kind, access) \
    VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::int8 / 1000.0), $8, $9)";
pub const RECORD_COMMAND: &str = "UPDATE commands SET event_seq = $2, created = $3 WHERE id = $1";
pub const MESSAGES_BETWEEN: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3 \
    ORDER BY seq LIMIT $4"
);
/// Session settings of the gateways' connections (`Store::reader`): their
/// statements are key lookups and ordered walks of a primary key, which a
/// bitmap scan would turn into a fetch plus a sort whenever the planner
/// expects few rows (a page near a room's head).
pub const READER_OPTIONS: &str = "-c enable_bitmapscan=off";
/// A history page: the `$3` messages from seq `$2` on. Open-ended, so that
/// the planner walks the primary key in order and stops at the limit
/// rather than collecting a bounded range and sorting it.
pub const HISTORY_PAGE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
);
pub const FIND_SENT: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM messages \
    WHERE room_id = $1 AND sender_id = $2 AND client_msg_id = $3"
);
/// One round trip per batch: see `migrations/V6__persist_two_statements.sql`.
pub const PERSIST: &str = "SELECT idx, seq, id, body, ts, fresh, allowed \
    FROM persist_messages($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int8[])";
