-- Stores a batch of sends in one statement (so one round trip and, in
-- autocommit, one transaction). Input arrays are parallel, one element per
-- send, in stream order. Sends are visited once, sorted by room then stream
-- order: each room's row is locked when its first send comes up (rooms in id
-- order, so concurrent callers never deadlock), each send is looked up by
-- its idempotency key and, if new, inserted with the next seq, and the
-- room's counter is written back when the room is done. Returns one row per
-- send whose room exists: `fresh` tells a new row from one stored earlier
-- (whose stored body and time are returned). Sends of missing rooms return
-- nothing.
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
    cur      TEXT := NULL;
    room_ok  BOOLEAN := FALSE;
    head     BIGINT;
    r        TEXT;
    i        INT;
    v_sender TEXT;
    v_cmid   TEXT;
BEGIN
    FOR i, r IN
        SELECT u.ord::INT, u.room FROM unnest(p_rooms) WITH ORDINALITY AS u (room, ord) ORDER BY u.room, u.ord
    LOOP
        IF cur IS DISTINCT FROM r THEN
            IF room_ok THEN
                UPDATE rooms SET last_seq = head WHERE rooms.id = cur;
            END IF;
            cur := r;
            SELECT rooms.last_seq INTO head FROM rooms WHERE rooms.id = r FOR UPDATE;
            room_ok := FOUND;
        END IF;
        CONTINUE WHEN NOT room_ok;
        idx := i;
        v_sender := p_senders[i];
        v_cmid := p_cmids[i];
        SELECT m.seq, m.id, m.body, round(extract(epoch FROM m.created_at) * 1000)::BIGINT
          INTO seq, id, body, ts
          FROM messages m
         WHERE m.room_id = r AND m.sender_id = v_sender AND m.client_msg_id = v_cmid;
        IF FOUND THEN
            fresh := FALSE;
        ELSE
            head := head + 1;
            seq := head; id := p_ids[i]; body := p_bodies[i]; ts := p_ts[i]; fresh := TRUE;
            INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
            VALUES (r, head, id, v_sender, v_cmid, body, to_timestamp(ts / 1000.0));
        END IF;
        RETURN NEXT;
    END LOOP;
    IF room_ok THEN
        UPDATE rooms SET last_seq = head WHERE rooms.id = cur;
    END IF;
END
$$;
