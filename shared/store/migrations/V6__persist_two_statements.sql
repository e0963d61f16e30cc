-- Same contract as V5 (see there) in two statements per send instead of
-- about five: plpgsql's cost per statement was most of what a send cost
-- Postgres when a batch holds sends of many rooms, one or two each
-- (`ingest`; bench/persist-cost.sh measures it).
--
-- - A room is locked by the UPDATE that reserves a seq for each of its sends
--   in the batch (rooms in id order, so two workers never deadlock). Seqs
--   of sends that turn out to be resends or refused are handed back by a
--   second UPDATE before the room is left: no gap. The UPDATE's row lock
--   (FOR NO KEY UPDATE) conflicts with every other writer of the room's
--   order: another worker's UPDATE and a command's FOR UPDATE.
-- - A send is one INSERT that checks its sender and skips a stored key
--   (ON CONFLICT DO NOTHING). Only when it inserts nothing does a SELECT
--   tell a resend (answered as stored) from a refused sender.
CREATE OR REPLACE FUNCTION persist_messages(
    p_rooms   TEXT[],
    p_senders TEXT[],
    p_cmids   TEXT[],
    p_bodies  TEXT[],
    p_ids     UUID[],
    p_ts      BIGINT[]
) RETURNS TABLE (idx INT, seq BIGINT, id UUID, body TEXT, ts BIGINT, fresh BOOLEAN, allowed BOOLEAN)
LANGUAGE plpgsql AS $$
DECLARE
    cur      TEXT := NULL;
    room_ok  BOOLEAN := FALSE;
    head     BIGINT;  -- the current room's last seq handed out
    reserved BIGINT;  -- the seq its row was moved to
    r        TEXT;
    i        INT;
    n        INT;
    v_sender TEXT;
    v_cmid   TEXT;
BEGIN
    FOR i, r, n IN
        SELECT u.ord::INT, u.room, count(*) OVER (PARTITION BY u.room)::INT
          FROM unnest(p_rooms) WITH ORDINALITY AS u (room, ord) ORDER BY u.room, u.ord
    LOOP
        IF cur IS DISTINCT FROM r THEN
            IF room_ok AND head <> reserved THEN
                UPDATE rooms SET last_seq = head WHERE rooms.id = cur;
            END IF;
            cur := r;
            UPDATE rooms SET last_seq = rooms.last_seq + n WHERE rooms.id = r
                RETURNING rooms.last_seq INTO reserved;
            room_ok := FOUND;
            head := reserved - n;
        END IF;
        CONTINUE WHEN NOT room_ok;
        idx := i;
        v_sender := p_senders[i];
        v_cmid := p_cmids[i];
        id := p_ids[i];
        body := p_bodies[i];
        ts := p_ts[i];
        -- The room row is locked, and member changes lock it too: the
        -- sender's access cannot change under this check.
        INSERT INTO messages AS m (room_id, seq, id, sender_id, client_msg_id, body, created_at)
        SELECT r, head + 1, id, v_sender, v_cmid, body, to_timestamp(ts / 1000.0)
         WHERE EXISTS (SELECT 1 FROM members mb
                        WHERE mb.room_id = r AND mb.user_id = v_sender AND mb.permissions & 1 = 1)
        ON CONFLICT (room_id, sender_id, client_msg_id) DO NOTHING
        RETURNING m.seq INTO seq;
        IF FOUND THEN
            head := head + 1;
            fresh := TRUE;
            allowed := TRUE;
        ELSE
            SELECT m.seq, m.id, m.body, round(extract(epoch FROM m.created_at) * 1000)::BIGINT
              INTO seq, id, body, ts
              FROM messages m
             WHERE m.room_id = r AND m.sender_id = v_sender AND m.client_msg_id = v_cmid;
            fresh := NOT FOUND;
            allowed := FOUND;
            IF NOT FOUND THEN
                seq := NULL; id := NULL; body := NULL; ts := NULL;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    IF room_ok AND head <> reserved THEN
        UPDATE rooms SET last_seq = head WHERE rooms.id = cur;
    END IF;
END
$$;
