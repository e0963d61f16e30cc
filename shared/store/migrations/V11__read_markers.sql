-- A member's read marker: the last seq they have read in the room. Apart
-- from `members`, so that marking read never locks a row a send reads, and
-- keyed by room like every hot table (no foreign key across rooms). A row
-- exists exactly while the membership does: added with it (at the room's
-- head then), removed with it.
CREATE TABLE read_markers (
    room_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Members from before markers have read everything so far.
INSERT INTO read_markers (room_id, user_id, seq)
SELECT m.room_id, m.user_id, r.last_seq FROM members m JOIN rooms r ON r.id = m.room_id;
