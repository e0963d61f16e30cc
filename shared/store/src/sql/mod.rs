//! Every statement of the system, named for what it does: the one place
//! its SQL is written, so a schema change is checked against all of it.

mod lifecycle;

pub use lifecycle::*;

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
/// The rooms user $1 belongs to (by the members_by_user index).
pub const USER_ROOMS: &str = "SELECT room_id FROM members WHERE user_id = $1";
/// Which of users $2 share a room with user $1 (themselves included, in
/// any room).
pub const SHARING_A_ROOM: &str = "SELECT DISTINCT o.user_id FROM members me \
    JOIN members o ON o.room_id = me.room_id WHERE me.user_id = $1 AND o.user_id = ANY($2)";
pub const ROOM_HEADS: &str = "SELECT id, last_seq FROM rooms WHERE id = ANY($1)";
pub const CREATE_ROOM: &str = "INSERT INTO rooms (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";
/// Two at once for one pair: the second waits for the first's insert,
/// then does nothing.
pub const CREATE_DIRECT_ROOM: &str =
    "INSERT INTO rooms (id, direct) VALUES ($1, true) ON CONFLICT (id) DO NOTHING";
/// Adds the member with their read marker at the room's head: what was
/// said before they came is not unread. Counts one row if added.
pub const ADD_MEMBER: &str =
    "WITH added AS (INSERT INTO members (room_id, user_id, role, permissions) \
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING room_id, user_id) \
    INSERT INTO read_markers (room_id, user_id, seq) \
    SELECT a.room_id, a.user_id, r.last_seq FROM added a JOIN rooms r ON r.id = a.room_id \
    ON CONFLICT (room_id, user_id) DO UPDATE SET seq = excluded.seq";
pub const SET_ACCESS: &str =
    "UPDATE members SET role = $3, permissions = $4 WHERE room_id = $1 AND user_id = $2";
/// Removes the member and their read marker.
pub const REMOVE_MEMBER: &str = "WITH marker AS \
    (DELETE FROM read_markers WHERE room_id = $1 AND user_id = $2) \
    DELETE FROM members WHERE room_id = $1 AND user_id = $2";
/// The unread chat messages of user `$u` in room `$r` after seq `$a` up
/// to `$h` (each an SQL expression, which must not name the alias `m`):
/// others' messages, not deleted. The
/// count stops at 1,000, so that it is one index walk of at most that
/// many rows.
macro_rules! unread {
    ($r:expr, $u:expr, $a:expr, $h:expr) => {
        concat!(
            "(SELECT count(*) FROM (SELECT 1 FROM messages m WHERE m.room_id = ",
            $r,
            " AND m.seq > ",
            $a,
            " AND m.seq <= ",
            $h,
            " AND m.kind = '' AND NOT m.deleted AND m.sender_id <> ",
            $u,
            " LIMIT 1000) c)::int8"
        )
    };
}
/// User $2's read marker in room $1 and their unread messages up to seq
/// $3; no row unless a member.
pub const READ_STATE: &str = concat!(
    "SELECT k.seq, ",
    unread!("$1", "$2", "k.seq", "$3"),
    " FROM read_markers k WHERE k.room_id = $1 AND k.user_id = $2"
);
/// A batch of marks (rooms $1, users $2, seqs $3, pairs in any order):
/// each member's marker moves to the highest of their marks at or below
/// the room's head, never back. The markers are locked in key order, so
/// batches of several workers never deadlock. One row per mark, in the
/// order given: `head` and `marker` NULL when not a member, the marker
/// after the batch, whether this batch moved it, and the unread messages
/// up to the head.
pub const MARK_READ: &str = concat!(
    "WITH req AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[]) \
        WITH ORDINALITY AS u (room_id, user_id, seq, idx)), \
    cur AS (SELECT k.room_id, k.user_id, k.seq, r.last_seq AS head \
        FROM read_markers k JOIN rooms r ON r.id = k.room_id \
        WHERE (k.room_id, k.user_id) IN (SELECT room_id, user_id FROM req) \
        ORDER BY k.room_id, k.user_id FOR UPDATE OF k), \
    want AS (SELECT q.room_id, q.user_id, max(q.seq) AS seq FROM req q \
        JOIN cur c ON c.room_id = q.room_id AND c.user_id = q.user_id \
        WHERE q.seq <= c.head GROUP BY q.room_id, q.user_id), \
    moved AS (UPDATE read_markers k SET seq = w.seq FROM want w \
        WHERE k.room_id = w.room_id AND k.user_id = w.user_id AND w.seq > k.seq \
        RETURNING k.room_id, k.user_id, k.seq) \
    SELECT c.head, coalesce(mv.seq, c.seq) AS marker, mv.seq IS NOT NULL AS moved, ",
    unread!(
        "q.room_id",
        "q.user_id",
        "coalesce(mv.seq, c.seq)",
        "c.head"
    ),
    " FROM req q \
    LEFT JOIN cur c ON c.room_id = q.room_id AND c.user_id = q.user_id \
    LEFT JOIN moved mv ON mv.room_id = q.room_id AND mv.user_id = q.user_id \
    ORDER BY q.idx"
);
/// Columns in the order `message_from_row` reads them (a macro, so that
/// `concat!` can build whole statements from them at compile time).
macro_rules! message_columns {
    () => {
        "room_id, seq, id, sender_id, body, \
        round(extract(epoch FROM created_at) * 1000)::int8, client_msg_id, kind, access, \
        round(extract(epoch FROM edited_at) * 1000)::int8, deleted, target_seq, target_id, \
        reply_count, reactions::text, changed_seq"
    };
}
/// How many columns `message_columns!` has: statements that add their own
/// after them read those from here on.
pub const MESSAGE_COLUMNS: usize = 16;
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
/// One round trip per batch: see `migrations/V10__message_events.sql`.
pub const PERSIST: &str = "SELECT idx, seq, id, body, ts, fresh, refusal, target_id \
    FROM persist_entries($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::int8[], \
    $7::text[], $8::int8[])";
/// [`PERSIST`] for a large batch of chat messages only, one INSERT for all
/// of them: see `migrations/V17__persist_plain_batches_at_once.sql`.
pub const PERSIST_MESSAGES_AT_ONCE: &str =
    "SELECT idx, seq, id, body, ts, fresh, refusal, target_id \
    FROM persist_messages_at_once($1::text[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
    $6::int8[])";
/// The current rows of the messages at seqs `$2` of rooms `$1` (pairs),
/// for the caches after events changed them: a lookup of the primary key
/// per pair, whatever the planner thinks of the list's length.
pub const MESSAGES_AT: &str = concat!(
    "SELECT m.* FROM unnest($1::text[], $2::int8[]) AS u (room_id, seq) \
    CROSS JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = u.room_id AND seq = u.seq) m"
);
/// The emojis user `$2` reacted with to messages `$3..=$4` of room `$1`:
/// the "mine" of a history page (its counts are in the rows).
pub const MY_REACTIONS: &str = "SELECT seq, emoji FROM reactions \
    WHERE room_id = $1 AND seq BETWEEN $3 AND $4 AND user_id = $2";
/// Microseconds since the epoch of a timestamptz, exactly (`extract`
/// answers numeric), for positions a cursor carries.
macro_rules! micros {
    ($column:expr) => {
        concat!("(extract(epoch FROM ", $column, ") * 1000000)::int8")
    };
}
/// A page of the rooms of user $1, newest activity first, as of the
/// walk's snapshot $2 (µs; NULL: now, returned as `snapshot`): a room's
/// activity is the time of its last entry stamped at or before the
/// snapshot (found from the head down by the primary key), or its
/// creation. After the position ($3 activity, $4 room) when given; at
/// most $5 rows. Columns: the last entry as `message_from_row` reads them
/// (NULLs when none), then room, head, role, permissions, activity,
/// snapshot, read marker, unread messages.
pub const MY_ROOMS: &str = concat!(
    "WITH t AS (SELECT coalesce($2::int8, ",
    micros!("statement_timestamp()"),
    ") AS snapshot), \
    mine AS (SELECT m.room_id, r.last_seq, m.role, m.permissions, \
        coalesce(a.at, ",
    micros!("r.created_at"),
    ") AS activity \
        FROM members m JOIN rooms r ON r.id = m.room_id CROSS JOIN t \
        LEFT JOIN LATERAL (SELECT ",
    micros!("e.created_at"),
    " AS at FROM messages e \
            WHERE e.room_id = m.room_id AND e.seq <= r.last_seq AND ",
    micros!("e.created_at"),
    " <= t.snapshot ORDER BY e.seq DESC LIMIT 1) a ON true \
        WHERE m.user_id = $1), \
    page AS (SELECT * FROM mine \
        WHERE $3::int8 IS NULL OR (activity, room_id) < ($3::int8, $4::text) \
        ORDER BY activity DESC, room_id DESC LIMIT $5) \
    SELECT l.*, p.room_id, p.last_seq, p.role, p.permissions, p.activity, t.snapshot, k.seq, ",
    unread!("p.room_id", "$1", "k.seq", "p.last_seq"),
    " FROM page p CROSS JOIN t \
    LEFT JOIN read_markers k ON k.room_id = p.room_id AND k.user_id = $1 \
    LEFT JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = p.room_id AND seq = p.last_seq) l ON true \
    ORDER BY p.activity DESC, p.room_id DESC"
);
/// A page of chat messages matching query $2 (`websearch_to_tsquery`,
/// configuration 'english' as in migration V9) in the rooms of user $1
/// (in room $3 alone when given), best rank first, then newest; after
/// the position ($4 rank, $5 time in µs, $6 room, $7 seq) when given; at
/// most $8 rows. Always at least one row: its `member` says whether $1
/// is in any room searched (with room $3: in that room); the hit columns
/// are NULL when nothing matches. A deleted message has no terms to
/// match (its body is empty, and `search_terms` follows it). Columns: the
/// message as `message_from_row` reads them, then rank, time, member.
pub const SEARCH: &str = concat!(
    "WITH mine AS (SELECT room_id FROM members \
        WHERE user_id = $1 AND ($3::text IS NULL OR room_id = $3)), \
    hits AS (SELECT m.room_id, m.seq, \
            ts_rank(m.search_terms, websearch_to_tsquery('english', $2)) AS rank, ",
    micros!("m.created_at"),
    " AS at \
        FROM mine JOIN messages m ON m.room_id = mine.room_id \
        WHERE m.search_terms @@ websearch_to_tsquery('english', $2)), \
    page AS (SELECT * FROM hits \
        WHERE $4::real IS NULL \
            OR (rank, at, room_id, seq) < ($4::real, $5::int8, $6::text, $7::int8) \
        ORDER BY rank DESC, at DESC, room_id DESC, seq DESC LIMIT $8) \
    SELECT l.*, p.rank, p.at, EXISTS (SELECT 1 FROM mine) AS member \
    FROM (SELECT 1) one LEFT JOIN page p ON true \
    LEFT JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = p.room_id AND seq = p.seq) l ON true \
    ORDER BY p.rank DESC, p.at DESC, p.room_id DESC, p.seq DESC"
);
/// Columns in the order `scheduled::from_row` reads them.
macro_rules! scheduled_columns {
    () => {
        "s.id, s.room_id, s.sender_id, s.client_msg_id, s.body, s.reply_to, \
        round(extract(epoch FROM s.deliver_at) * 1000)::int8, s.state, s.seq"
    };
}
/// Schedules message $1 (id) of sender $3 in room $2 (`client_msg_id` $4,
/// body $5, reply target $6, at $7 ms) if the sender may send there and
/// has fewer than $8 pending in the room; nothing if the key is taken.
pub const SCHEDULE: &str = concat!(
    "INSERT INTO scheduled_messages AS s \
        (id, room_id, sender_id, client_msg_id, body, reply_to, deliver_at) \
    SELECT $1, $2, $3, $4, $5, $6, to_timestamp($7::int8 / 1000.0) \
    WHERE EXISTS (SELECT 1 FROM members mb \
            WHERE mb.room_id = $2 AND mb.user_id = $3 AND mb.permissions & 1 = 1) \
        AND (SELECT count(*) FROM scheduled_messages p \
            WHERE p.room_id = $2 AND p.sender_id = $3 AND p.state = 'pending') < $8 \
    ON CONFLICT (room_id, sender_id, client_msg_id) DO NOTHING \
    RETURNING ",
    scheduled_columns!()
);
/// The scheduled message of sender $2 in room $1 with `client_msg_id` $3.
pub const SCHEDULED_BY_KEY: &str = concat!(
    "SELECT ",
    scheduled_columns!(),
    " FROM scheduled_messages s \
    WHERE s.room_id = $1 AND s.sender_id = $2 AND s.client_msg_id = $3"
);
/// Scheduled message $2 of room $1.
pub const SCHEDULED_BY_ID: &str = concat!(
    "SELECT ",
    scheduled_columns!(),
    " FROM scheduled_messages s WHERE s.room_id = $1 AND s.id = $2"
);
/// Cancels sender $3's pending message $2 of room $1. Waits for a worker
/// sending it (the row's lock), then finds it sent: never both.
pub const CANCEL_SCHEDULED: &str = concat!(
    "UPDATE scheduled_messages s SET state = 'cancelled' \
    WHERE s.room_id = $1 AND s.id = $2 AND s.sender_id = $3 AND s.state = 'pending' \
    RETURNING ",
    scheduled_columns!()
);
/// Sender $2's pending messages of room $1, soonest first.
pub const PENDING_SCHEDULED: &str = concat!(
    "SELECT ",
    scheduled_columns!(),
    " FROM scheduled_messages s \
    WHERE s.room_id = $1 AND s.sender_id = $2 AND s.state = 'pending' \
    ORDER BY s.deliver_at, s.id LIMIT 100"
);
/// Whether any pending message is due: one index probe, no transaction,
/// so an idle worker's poll costs Postgres one statement.
pub const ANY_DUE: &str = "SELECT EXISTS (SELECT 1 FROM scheduled_messages \
    WHERE state = 'pending' AND deliver_at <= now())";
/// At most $1 pending messages that are due, locked for this transaction;
/// rows another worker holds are skipped, so workers share the due rows.
pub const TAKE_DUE: &str = concat!(
    "SELECT ",
    scheduled_columns!(),
    " FROM scheduled_messages s \
    WHERE s.state = 'pending' AND s.deliver_at <= now() \
    ORDER BY s.deliver_at LIMIT $1 FOR UPDATE SKIP LOCKED"
);
/// Records what sending them did: messages $1 became `state` $2 at `seq` $3.
pub const SCHEDULED_DONE: &str = "UPDATE scheduled_messages s SET state = u.state, seq = u.seq \
    FROM unnest($1::uuid[], $2::text[], $3::int8[]) AS u (id, state, seq) WHERE s.id = u.id";
/// Each room of user $1 (of rooms $2 alone when given) as a feed shows
/// it, by room id, at most $3: the last entry as `message_from_row` reads
/// them (NULLs when none), then room, head, role, permissions, read
/// marker, unread messages up to the head.
pub const FEED_ROOMS: &str = concat!(
    "SELECT l.*, mb.room_id, r.last_seq, mb.role, mb.permissions, k.seq, ",
    unread!("mb.room_id", "$1", "k.seq", "r.last_seq"),
    " FROM members mb JOIN rooms r ON r.id = mb.room_id \
    LEFT JOIN read_markers k ON k.room_id = mb.room_id AND k.user_id = $1 \
    LEFT JOIN LATERAL (SELECT ",
    message_columns!(),
    " FROM messages WHERE room_id = mb.room_id AND seq = r.last_seq) l ON true \
    WHERE mb.user_id = $1 AND ($2::text[] IS NULL OR mb.room_id = ANY($2)) \
    ORDER BY mb.room_id LIMIT $3"
);

/// A user's data, for export: their memberships, read markers, entries
/// (keyset by room and seq from `($2, $3)`, `$4` at a time, by the
/// messages_by_sender index) and reactions.
pub const EXPORT_MEMBERSHIPS: &str =
    "SELECT room_id, role, permissions FROM members WHERE user_id = $1 ORDER BY room_id";
pub const EXPORT_MARKERS: &str =
    "SELECT room_id, seq FROM read_markers WHERE user_id = $1 ORDER BY room_id";
pub const EXPORT_ENTRIES: &str = "SELECT room_id, seq, id, kind, body, \
    (extract(epoch from created_at) * 1000)::int8, deleted, target_seq \
    FROM messages WHERE sender_id = $1 AND (room_id, seq) > ($2, $3) \
    ORDER BY room_id, seq LIMIT $4";
pub const EXPORT_REACTIONS: &str =
    "SELECT room_id, seq, emoji FROM reactions WHERE user_id = $1 ORDER BY room_id, seq, emoji";
/// Erases up to `$2` of user `$1`'s entries not erased yet: no body, a
/// chat message a tombstone without reactions (its seq kept). Each entry is locked as it is changed, not its
/// room: sends go on meanwhile.
pub const ERASE_ENTRIES: &str = "WITH todo AS (SELECT room_id, seq FROM messages \
    WHERE sender_id = $1 \
    AND (body <> '' OR (kind = '' AND NOT deleted) OR reactions IS NOT NULL) \
    ORDER BY room_id, seq LIMIT $2 FOR UPDATE), \
    gone AS (DELETE FROM reactions r USING todo t WHERE r.room_id = t.room_id AND r.seq = t.seq) \
    UPDATE messages m SET body = '', deleted = m.deleted OR m.kind = '', reactions = NULL \
    FROM todo t WHERE m.room_id = t.room_id AND m.seq = t.seq";
pub const ROOMS_WITH_ENTRIES: &str = "SELECT DISTINCT room_id FROM messages WHERE sender_id = $1";
/// The member of room `$1` other than `$2` who has been in it longest:
/// who is handed a room whose last owner is erased.
pub const LONGEST_OTHER_MEMBER: &str = "SELECT user_id FROM members \
    WHERE room_id = $1 AND user_id <> $2 ORDER BY added_at, user_id LIMIT 1";
/// Deletes user `$1`'s scheduled messages, whatever their state.
pub const ERASE_SCHEDULED: &str = "DELETE FROM scheduled_messages WHERE sender_id = $1";
