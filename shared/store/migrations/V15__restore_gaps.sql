-- Seqs a restore skipped: scripts/restore.sh moves each room's counter past
-- whatever the lost system may have handed out after the backup, so that no
-- seq a client holds is ever used for another message. Replays step over
-- a gap (`after_seq`, `to_seq`] instead of taking it for a hole.
CREATE TABLE restore_gaps (
    room_id   TEXT NOT NULL,
    after_seq BIGINT NOT NULL,
    to_seq    BIGINT NOT NULL,
    PRIMARY KEY (room_id, after_seq)
);
