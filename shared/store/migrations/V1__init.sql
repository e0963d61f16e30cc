-- Rooms carry their own sequence counter: a worker locks the row, hands out
-- last_seq + 1.. to the messages it stores and writes the new value back in
-- the same transaction, so seqs have no holes (a SEQUENCE would leave some).
CREATE TABLE rooms (
    id          TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE members (
    room_id    TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL,
    added_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX members_by_user ON members (user_id);

-- (room_id, seq) is the history index; the unique key makes resends of one
-- client_msg_id land once.
CREATE TABLE messages (
    room_id        TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq            BIGINT NOT NULL,
    id             UUID NOT NULL,
    sender_id      TEXT NOT NULL,
    client_msg_id  TEXT NOT NULL,
    body           TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, sender_id, client_msg_id)
);
