-- Edits, deletes, reactions and replies (docs/decisions/0013). Each is an
-- entry of the room's sequence, stored by `persist_entries` in the same
-- batch transaction as the sends around it, under the room's row lock; the
-- message it changes is updated in the same transaction, so history (which
-- reads rows as they stand) and the sequence never disagree.
ALTER TABLE messages
    -- An event's message (kind message_edited, message_deleted,
    -- reaction_added, reaction_removed), or the message a chat message
    -- replies to; NULL for neither.
    ADD COLUMN target_seq  BIGINT,
    ADD COLUMN target_id   UUID,
    -- A chat message's state as it stands.
    ADD COLUMN edited_at   TIMESTAMPTZ,
    ADD COLUMN deleted     BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN reply_count INT NOT NULL DEFAULT 0,
    -- Counts by emoji ({"👍": 2}); NULL for none. Who reacted is in
    -- `reactions`; the counts are kept here so that a page reads rows only.
    ADD COLUMN reactions   JSONB,
    -- The seq of the last entry that changed this message (NULL: none), so
    -- that a reader knows which events its state already includes.
    ADD COLUMN changed_seq BIGINT;

-- One row per user per emoji per message.
CREATE TABLE reactions (
    room_id TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    emoji   TEXT NOT NULL,
    PRIMARY KEY (room_id, seq, user_id, emoji)
);

-- Deleting a room deletes its reactions too (see V7).
CREATE OR REPLACE FUNCTION delete_room_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE room_id = OLD.id;
    DELETE FROM reactions WHERE room_id = OLD.id;
    RETURN OLD;
END
$$;

-- persist_messages (V6) with two more arrays: each entry's kind ('' for a
-- chat message) and target seq (NULL for none). A chat message without a
-- target takes V6's path unchanged, at V6's cost. Anything else is checked
-- under the room lock before it takes a seq:
--   - a resend (same room, sender, client_msg_id) is answered as stored;
--   - the sender is a member, with can_send_messages for a reply or edit;
--   - the target is a chat message of the room, not deleted;
--   - an edit is by the message's sender; a delete by its sender or a
--     member with can_delete_other_messages (flag 8);
--   - a reaction added twice, or removed when absent, changes nothing.
-- `refusal` names why an entry was not stored (the store maps it to an
-- error code); 'unchanged' is a reaction that changed nothing. None of
-- them takes a seq. Kept beside persist_messages, which workers of the
-- previous release call until they are all replaced.
CREATE FUNCTION persist_entries(
    p_rooms   TEXT[],
    p_senders TEXT[],
    p_cmids   TEXT[],
    p_bodies  TEXT[],
    p_ids     UUID[],
    p_ts      BIGINT[],
    p_kinds   TEXT[],
    p_targets BIGINT[]
) RETURNS TABLE (idx INT, seq BIGINT, id UUID, body TEXT, ts BIGINT, fresh BOOLEAN,
                 refusal TEXT, target_id UUID)
LANGUAGE plpgsql AS $$
DECLARE
    cur       TEXT := NULL;
    room_ok   BOOLEAN := FALSE;
    head      BIGINT;  -- the current room's last seq handed out
    reserved  BIGINT;  -- the seq its row was moved to
    r         TEXT;
    i         INT;
    n         INT;
    v_sender  TEXT;
    v_cmid    TEXT;
    v_body    TEXT;
    v_kind    TEXT;
    v_target  BIGINT;
    v_at      TIMESTAMPTZ;
    v_perms   SMALLINT;
    t_kind    TEXT;
    t_sender  TEXT;
    t_deleted BOOLEAN;
    t_id      UUID;
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
        v_body := p_bodies[i];
        v_kind := p_kinds[i];
        v_target := p_targets[i];
        v_at := to_timestamp(p_ts[i] / 1000.0);
        id := p_ids[i];
        body := v_body;
        ts := p_ts[i];
        refusal := NULL;
        target_id := NULL;

        IF v_kind = '' AND v_target IS NULL THEN
            -- A plain chat message: V6's two statements.
            INSERT INTO messages AS m (room_id, seq, id, sender_id, client_msg_id, body, created_at)
            SELECT r, head + 1, id, v_sender, v_cmid, v_body, v_at
             WHERE EXISTS (SELECT 1 FROM members mb
                            WHERE mb.room_id = r AND mb.user_id = v_sender AND mb.permissions & 1 = 1)
            ON CONFLICT (room_id, sender_id, client_msg_id) DO NOTHING
            RETURNING m.seq INTO seq;
            IF FOUND THEN
                head := head + 1;
                fresh := TRUE;
            ELSE
                SELECT m.seq, m.id, m.body, round(extract(epoch FROM m.created_at) * 1000)::BIGINT
                  INTO seq, id, body, ts
                  FROM messages m
                 WHERE m.room_id = r AND m.sender_id = v_sender AND m.client_msg_id = v_cmid;
                fresh := FALSE;
                IF NOT FOUND THEN
                    refusal := 'cannot_send';
                    seq := NULL; id := NULL; body := NULL; ts := NULL;
                END IF;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;

        -- A reply or an event. A resend is answered as stored, whatever
        -- happened to its target since.
        SELECT m.seq, m.id, m.body, round(extract(epoch FROM m.created_at) * 1000)::BIGINT, m.target_id
          INTO seq, id, body, ts, target_id
          FROM messages m
         WHERE m.room_id = r AND m.sender_id = v_sender AND m.client_msg_id = v_cmid;
        IF FOUND THEN
            fresh := FALSE;
            RETURN NEXT;
            CONTINUE;
        END IF;
        -- (SELECT INTO found nothing and set its targets to NULL.)
        id := p_ids[i];
        body := v_body;
        ts := p_ts[i];
        fresh := FALSE;

        SELECT mb.permissions INTO v_perms
          FROM members mb WHERE mb.room_id = r AND mb.user_id = v_sender;
        IF NOT FOUND THEN
            refusal := 'not_member';
        ELSIF v_kind IN ('', 'message_edited') AND v_perms & 1 = 0 THEN
            refusal := 'cannot_send';
        ELSE
            SELECT t.kind, t.sender_id, t.deleted, t.id INTO t_kind, t_sender, t_deleted, t_id
              FROM messages t WHERE t.room_id = r AND t.seq = v_target;
            IF NOT FOUND THEN
                refusal := 'no_such_message';
            ELSIF t_kind <> '' THEN
                refusal := 'not_a_message';
            ELSIF t_deleted THEN
                refusal := 'deleted';
            ELSIF v_kind = 'message_edited' AND t_sender <> v_sender THEN
                refusal := 'not_author';
            ELSIF v_kind = 'message_deleted' AND t_sender <> v_sender AND v_perms & 8 = 0 THEN
                refusal := 'cannot_delete_others';
            ELSIF v_kind = 'reaction_added' THEN
                INSERT INTO reactions (room_id, seq, user_id, emoji)
                VALUES (r, v_target, v_sender, v_body) ON CONFLICT DO NOTHING;
                IF NOT FOUND THEN refusal := 'unchanged'; END IF;
            ELSIF v_kind = 'reaction_removed' THEN
                DELETE FROM reactions x
                 WHERE x.room_id = r AND x.seq = v_target AND x.user_id = v_sender AND x.emoji = v_body;
                IF NOT FOUND THEN refusal := 'unchanged'; END IF;
            END IF;
        END IF;
        IF refusal IS NOT NULL THEN
            seq := NULL; id := NULL; body := NULL; ts := NULL;
            RETURN NEXT;
            CONTINUE;
        END IF;

        head := head + 1;
        INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at,
                              kind, target_seq, target_id)
        VALUES (r, head, id, v_sender, v_cmid, v_body, v_at, v_kind, v_target, t_id);
        UPDATE messages t SET
            body = CASE v_kind WHEN 'message_edited' THEN v_body
                               WHEN 'message_deleted' THEN '' ELSE t.body END,
            edited_at = CASE WHEN v_kind = 'message_edited' THEN v_at ELSE t.edited_at END,
            deleted = t.deleted OR v_kind = 'message_deleted',
            reactions = CASE v_kind
                WHEN 'message_deleted' THEN NULL
                WHEN 'reaction_added' THEN jsonb_set(coalesce(t.reactions, '{}'), ARRAY[v_body],
                    to_jsonb(coalesce((t.reactions ->> v_body)::INT, 0) + 1))
                WHEN 'reaction_removed' THEN nullif(
                    CASE WHEN (t.reactions ->> v_body)::INT > 1
                         THEN jsonb_set(t.reactions, ARRAY[v_body], to_jsonb((t.reactions ->> v_body)::INT - 1))
                         ELSE t.reactions - v_body END, '{}')
                ELSE t.reactions END,
            reply_count = t.reply_count + CASE WHEN v_kind = '' THEN 1 ELSE 0 END,
            changed_seq = head
         WHERE t.room_id = r AND t.seq = v_target;
        IF v_kind = 'message_deleted' THEN
            DELETE FROM reactions x WHERE x.room_id = r AND x.seq = v_target;
        END IF;
        seq := head;
        target_id := t_id;
        fresh := TRUE;
        RETURN NEXT;
    END LOOP;
    IF room_ok AND head <> reserved THEN
        UPDATE rooms SET last_seq = head WHERE rooms.id = cur;
    END IF;
END
$$;
