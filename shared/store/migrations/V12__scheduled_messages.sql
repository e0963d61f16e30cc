-- Messages to send later. A row is kept at once (the sender is answered
-- with its id) and stays after it is sent, cancelled or refused, so that a
-- resend of the same schedule (same room, sender, client_msg_id) is
-- answered as it stands instead of scheduling it twice. Sending it is one
-- transaction: the row locked (FOR UPDATE SKIP LOCKED, so workers share
-- the due rows), the message stored with `id` as its id, the row marked
-- sent; a cancel locks the same row, so exactly one of the two happens.
CREATE TABLE scheduled_messages (
    id             UUID PRIMARY KEY,
    room_id        TEXT NOT NULL,
    sender_id      TEXT NOT NULL,
    client_msg_id  TEXT NOT NULL,
    body           TEXT NOT NULL,
    reply_to       BIGINT,
    deliver_at     TIMESTAMPTZ NOT NULL,
    state          TEXT NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'sent', 'cancelled', 'refused')),
    seq            BIGINT,
    UNIQUE (room_id, sender_id, client_msg_id)
);

-- What the workers poll: only pending rows, soonest first.
CREATE INDEX scheduled_messages_due ON scheduled_messages (deliver_at)
    WHERE state = 'pending';
