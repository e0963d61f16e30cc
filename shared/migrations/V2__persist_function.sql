-- Stores a batch of sends in one statement (so one round trip and, in
-- autocommit, one transaction). Input arrays are parallel, one element per
-- send, in stream order. For each room (in id order, so concurrent callers
-- never deadlock) the row is locked, each send is looked up by its
-- idempotency key and, if new, inserted with the next seq; then the room's
-- counter is written back. Returns one row per send whose room exists:
-- `fresh` tells a new row from one stored earlier (whose stored body and
-- time are returned). Sends of missing rooms return nothing.
CREATE FUNCTION persist_messages(
    p_rooms   TEXT[],
    p_senders TEXT[],
    p_cmids   TEXT[],
    p_bodies  TEXT[],
    p_ids     UUID[],
    p_ts      BIGINT[]
) RETURNS TABLE (idx INT, seq BIGINT, id UUID, body TEXT, ts BIGINT, fresh BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    r    TEXT;
    head BIGINT;
    i    INT;
BEGIN
    FOR r IN SELECT DISTINCT u FROM unnest(p_rooms) AS u ORDER BY u LOOP
        SELECT rooms.last_seq INTO head FROM rooms WHERE rooms.id = r FOR UPDATE;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        FOR i IN SELECT g FROM generate_subscripts(p_rooms, 1) AS g WHERE p_rooms[g] = r ORDER BY g LOOP
            idx := i;
            SELECT m.seq, m.id, m.body, round(extract(epoch FROM m.created_at) * 1000)::BIGINT
              INTO seq, id, body, ts
              FROM messages m
             WHERE m.room_id = r AND m.sender_id = p_senders[i] AND m.client_msg_id = p_cmids[i];
            IF FOUND THEN
                fresh := FALSE;
            ELSE
                head := head + 1;
                INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
                VALUES (r, head, p_ids[i], p_senders[i], p_cmids[i], p_bodies[i], to_timestamp(p_ts[i] / 1000.0));
                seq := head; id := p_ids[i]; body := p_bodies[i]; ts := p_ts[i]; fresh := TRUE;
            END IF;
            RETURN NEXT;
        END LOOP;
        UPDATE rooms SET last_seq = head WHERE rooms.id = r;
    END LOOP;
END
$$;
