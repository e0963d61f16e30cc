-- A change to a room (a member joined or left) has its place in the room's
-- sequence like a message: `kind` says which, `body` holds the member.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT '';

-- Commands applied, by id: a redelivered or resent command finds its
-- outcome here instead of applying twice. The row is inserted first, as a
-- claim: a second worker applying the same id waits for the first.
CREATE TABLE commands (
    id          TEXT PRIMARY KEY,
    room_id     TEXT NOT NULL,
    -- What it does ("add:bob"): an id reused for another change is refused.
    change      TEXT NOT NULL,
    -- The event the command added to the room's sequence, if any.
    event_seq   BIGINT,
    created     BOOLEAN NOT NULL DEFAULT FALSE,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
