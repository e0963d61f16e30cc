-- The store is the last word on who may send: a send is stored only if its
-- sender is, when it comes to be stored, a member of the room with
-- can_send_messages (bit 1 of members.permissions). A gateway checks the
-- same before it publishes, but a change committed meanwhile (a removal, a
-- revoked flag) reaches it a moment later; this check closes that window.
-- A send stored before is returned as stored whatever its sender's access
-- is now, so a retried send is answered as it was the first time.
--
-- Same as V2 otherwise, with one more column: `allowed` is false (and seq,
-- id, body and ts NULL) for a new send whose sender may not send.
DROP FUNCTION persist_messages(TEXT[], TEXT[], TEXT[], TEXT[], UUID[], BIGINT[]);

CREATE FUNCTION persist_messages(
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
        allowed := TRUE;
        SELECT m.seq, m.id, m.body, round(extract(epoch FROM m.created_at) * 1000)::BIGINT
          INTO seq, id, body, ts
          FROM messages m
         WHERE m.room_id = r AND m.sender_id = v_sender AND m.client_msg_id = v_cmid;
        IF FOUND THEN
            fresh := FALSE;
        ELSE
            fresh := TRUE;
            -- The room row is locked, and member changes lock it too: the
            -- sender's access cannot change under this check.
            PERFORM 1 FROM members mb
              WHERE mb.room_id = r AND mb.user_id = v_sender AND mb.permissions & 1 = 1;
            IF FOUND THEN
                head := head + 1;
                seq := head; id := p_ids[i]; body := p_bodies[i]; ts := p_ts[i];
                INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
                VALUES (r, head, id, v_sender, v_cmid, body, to_timestamp(ts / 1000.0));
            ELSE
                allowed := FALSE;
                seq := NULL; id := NULL; body := NULL; ts := NULL;
            END IF;
        END IF;
        RETURN NEXT;
    END LOOP;
    IF room_ok THEN
        UPDATE rooms SET last_seq = head WHERE rooms.id = cur;
    END IF;
END
$$;
