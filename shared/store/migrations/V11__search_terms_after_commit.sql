-- Search terms leave the send's transaction (docs/decisions/0014). V9's
-- generated column made every stored send pay for `to_tsvector` and a GIN
-- insert inside `persist_entries`, under its room's row lock, and every
-- change to a message (a reaction, a reply) recompute them. Now the worker
-- writes the terms of a stored batch in one statement after its commit
-- (`sql::INDEX_TERMS`), and an edit or a delete rewrites them there.
--
-- `version` is the message's state the terms were made from (its
-- `changed_seq`, or its seq): two workers writing one message's terms in
-- either order leave the newer. A deleted message's body is empty: its
-- terms match nothing.
CREATE TABLE message_terms (
    room_id TEXT NOT NULL,
    seq     BIGINT NOT NULL,
    version BIGINT NOT NULL,
    terms   tsvector NOT NULL,
    PRIMARY KEY (room_id, seq)
);

INSERT INTO message_terms (room_id, seq, version, terms)
SELECT room_id, seq, coalesce(changed_seq, seq), to_tsvector('english', body)
  FROM messages WHERE kind = '';

-- The default fastupdate: each batch's statement appends to the pending
-- list, and merging it into the index, in bulk, is that statement's (or
-- autovacuum's) work, never a send's.
CREATE INDEX message_terms_terms ON message_terms USING gin (terms);

DROP INDEX messages_search_terms;
ALTER TABLE messages DROP COLUMN search_terms;

-- Deleting a room deletes its terms too (see V7, V10).
CREATE OR REPLACE FUNCTION delete_room_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE room_id = OLD.id;
    DELETE FROM reactions WHERE room_id = OLD.id;
    DELETE FROM message_terms WHERE room_id = OLD.id;
    RETURN OLD;
END
$$;
