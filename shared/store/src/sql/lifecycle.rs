//! The statements of a room's lifecycle: deleting a room, retention,
//! and the seqs a restore or retention skipped.

/// If seq $2 of room $1 has no entry for a known reason, the last seq
/// skipped with it: of the gap a restore left around it
/// (`scripts/restore.sh`), or of what retention deleted.
pub const SKIPPED_AT: &str = "(SELECT to_seq FROM restore_gaps \
        WHERE room_id = $1 AND after_seq < $2 AND to_seq >= $2) \
    UNION ALL (SELECT expired_to FROM rooms WHERE id = $1 AND expired_to >= $2) \
    LIMIT 1";
/// Rooms with entries past their limits (their own, else the defaults $1
/// count and $2 seconds), at most $3 of them: over the count, or whose
/// oldest kept entry is older than the age (one index probe each); the
/// text after `WHERE` narrows the rooms looked at.
macro_rules! retention_due {
    ($among:literal) => {
        concat!(
            "SELECT id, expired_to, last_seq, coalesce(retain_count, $1), coalesce(retain_secs, $2) \
             FROM rooms r WHERE ",
            $among,
            " (r.last_seq - r.expired_to > coalesce(r.retain_count, $1) \
             OR (SELECT m.created_at FROM messages m WHERE m.room_id = r.id AND m.seq > r.expired_to \
                 ORDER BY m.seq LIMIT 1) < now() - make_interval(secs => coalesce(r.retain_secs, $2))) \
             LIMIT $3"
        )
    };
}
pub const RETENTION_DUE: &str = retention_due!("");
/// Among the rooms with limits of their own (the partial index
/// `rooms_with_retention`): when the workers have no defaults.
pub const RETENTION_DUE_OWN: &str =
    retention_due!("(r.retain_count IS NOT NULL OR r.retain_secs IS NOT NULL) AND");
/// A room's retention as it stands (defaults $2 count and $3 seconds), read
/// again before each batch: a limit raised or removed stops the deleting.
pub const ROOM_RETENTION: &str = "SELECT expired_to, last_seq, coalesce(retain_count, $2), \
    coalesce(retain_secs, $3) FROM rooms WHERE id = $1";
/// A room's oldest $3 entries after seq $2, with their times (ms).
pub const RETENTION_OLDEST: &str =
    "SELECT seq, round(extract(epoch FROM created_at) * 1000)::int8 \
    FROM messages WHERE room_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
/// A batch's commit does not wait for its WAL to reach the disk: sends'
/// commits do not queue behind its flush. A crash can lose the batch
/// whole (never a part: `expired_to` goes with the rows), and it is done
/// again.
pub const RETENTION_ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit = off";
/// One worker at a time per room: the others skip it this sweep.
pub const RETENTION_LOCK: &str =
    "SELECT pg_try_advisory_xact_lock(hashtextextended('chat-retention:' || $1, 0))";
/// Deletes a room's entries in ($2, $3], their reactions with them (and
/// so their search terms), then records how far it has gone. The row is
/// locked last, for the commit only.
pub const EXPIRE_MESSAGES: &str =
    "DELETE FROM messages WHERE room_id = $1 AND seq > $2 AND seq <= $3";
pub const EXPIRE_REACTIONS: &str =
    "DELETE FROM reactions WHERE room_id = $1 AND seq > $2 AND seq <= $3";
pub const SET_EXPIRED_TO: &str =
    "UPDATE rooms SET expired_to = $2 WHERE id = $1 AND expired_to < $2";
/// A room's own retention limits (NULL: the workers' defaults).
pub const SET_RETENTION: &str =
    "UPDATE rooms SET retain_secs = $2, retain_count = $3 WHERE id = $1";
/// Scheduled messages done with (sent, cancelled, refused) a week past
/// their time, at most $1 of them.
pub const PURGE_SCHEDULED: &str = "DELETE FROM scheduled_messages WHERE id IN \
    (SELECT id FROM scheduled_messages WHERE state <> 'pending' \
        AND deliver_at < now() - interval '7 days' LIMIT $1)";
/// Deleting a room, in the deleting command's transaction (`delete_room`):
/// its members (their ids returned, for the caches and their sockets),
/// read markers, scheduled messages, other commands and restore gaps, then its row,
/// whose trigger deletes its messages and reactions (and so their search
/// terms).
pub const DELETE_ROOM_MEMBERS: &str = "DELETE FROM members WHERE room_id = $1 RETURNING user_id";
pub const DELETE_ROOM_MARKERS: &str = "DELETE FROM read_markers WHERE room_id = $1";
pub const DELETE_ROOM_SCHEDULED: &str = "DELETE FROM scheduled_messages WHERE room_id = $1";
pub const DELETE_ROOM_COMMANDS: &str = "DELETE FROM commands WHERE room_id = $1 AND id <> $2";
pub const DELETE_ROOM_GAPS: &str = "DELETE FROM restore_gaps WHERE room_id = $1";
pub const DELETE_ROOM: &str = "DELETE FROM rooms WHERE id = $1";
