-- A large batch of new chat messages is stored by one INSERT of all its
-- rows, instead of `persist_entries`' statement per row, which pays for
-- each message a statement's start-up, a membership subquery and ON
-- CONFLICT's speculative insertion. bench/persist-cost.sh (Postgres's CPU
-- per send, bench/RESULTS.md §19): about half at 256 a batch; at a few a
-- batch the loop costs less. So the store calls this function for a batch
-- of `chat_store::AT_ONCE_FROM` (32) or more chat messages, and
-- `persist_entries` for any other: batches grow large when sends arrive
-- faster than transactions commit (a burst, a backlog after an outage),
-- which is where a cheaper row matters.
--
-- It answers as `persist_entries` does, entry by entry. It takes a batch
-- whose every entry (of a room that exists) is from a sender who may send,
-- under a key not repeated in the batch: each takes its room's next seq
-- in batch order. A resend among them (its key already stored) fails the
-- INSERT on the idempotency key, which undoes this function's writes, and
-- `persist_entries` answers the batch, resend included; so does it any
-- batch this one does not take.
--
-- The rooms are locked first (in id order, as `persist_entries` does) by
-- a statement of their own, so that the one reading their last seqs takes
-- its snapshot after any wait for a lock, and reads what the transaction
-- it waited for wrote. Plans are generic (plan_cache_mode): planning each
-- call's arrays afresh cost more than running the statements.
CREATE FUNCTION persist_messages_at_once(
    p_rooms   TEXT[],
    p_senders TEXT[],
    p_cmids   TEXT[],
    p_bodies  TEXT[],
    p_ids     UUID[],
    p_ts      BIGINT[]
) RETURNS TABLE (idx INT, seq BIGINT, id UUID, body TEXT, ts BIGINT, fresh BOOLEAN,
                 refusal TEXT, target_id UUID)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_idx     INT[];     -- the entries of rooms that exist, in batch order
    v_seqs    BIGINT[];  -- the seq each takes
    n_entries INT;
    n_senders INT;       -- of them, from a sender who may send
    n_keys    INT;       -- distinct (room, sender, client_msg_id)
BEGIN
    PERFORM 1 FROM rooms r WHERE r.id = ANY (p_rooms) ORDER BY r.id FOR UPDATE;

    -- One key per lookup, whatever the planner thinks of the tables'
    -- sizes: LIMIT keeps the LATERAL subquery from being flattened into a
    -- join that may scan all of rooms.
    SELECT array_agg(e.i ORDER BY e.i), array_agg(e.seq ORDER BY e.i), count(*),
           count(*) FILTER (WHERE e.may_send), count(DISTINCT (e.room, e.sender, e.cmid))
      INTO v_idx, v_seqs, n_entries, n_senders, n_keys
      FROM (SELECT u.ord::INT AS i, u.room, u.sender, u.cmid,
                   r.last_seq + row_number() OVER (PARTITION BY u.room ORDER BY u.ord) AS seq,
                   coalesce((SELECT mb.permissions & 1 = 1 FROM members mb
                              WHERE mb.room_id = u.room AND mb.user_id = u.sender), FALSE) AS may_send
              FROM unnest(p_rooms, p_senders, p_cmids) WITH ORDINALITY AS u (room, sender, cmid, ord)
             CROSS JOIN LATERAL (SELECT r.last_seq FROM rooms r WHERE r.id = u.room LIMIT 1) r) e;

    IF n_entries > 0 AND n_senders = n_entries AND n_keys = n_entries THEN
        BEGIN
            INSERT INTO messages (room_id, seq, id, sender_id, client_msg_id, body, created_at)
            SELECT p_rooms[x.i], x.seq, p_ids[x.i], p_senders[x.i], p_cmids[x.i], p_bodies[x.i],
                   to_timestamp(p_ts[x.i] / 1000.0)
              FROM unnest(v_idx, v_seqs) AS x (i, seq);
            UPDATE rooms r SET last_seq = h.top
              FROM (SELECT p_rooms[x.i] AS room, max(x.seq) AS top
                      FROM unnest(v_idx, v_seqs) AS x (i, seq) GROUP BY 1) h
             WHERE r.id = h.room AND r.id = ANY (p_rooms);
            RETURN QUERY
            SELECT x.i, x.seq, p_ids[x.i], p_bodies[x.i], p_ts[x.i], TRUE, NULL::TEXT, NULL::UUID
              FROM unnest(v_idx, v_seqs) AS x (i, seq);
            RETURN;
        EXCEPTION WHEN unique_violation THEN
            -- A resend: persist_entries answers it as stored.
        END;
    END IF;

    RETURN QUERY SELECT * FROM persist_entries(
        p_rooms, p_senders, p_cmids, p_bodies, p_ids, p_ts,
        array_fill(''::TEXT, ARRAY[cardinality(p_rooms)]),
        array_fill(NULL::BIGINT, ARRAY[cardinality(p_rooms)]));
END
$$;
