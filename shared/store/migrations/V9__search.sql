-- Full-text search of chat messages (kind = ''; changes to members are
-- not searched). A generated column, so whatever later changes a body (an
-- edit) changes its search terms in the same write; a deleted flag, when
-- there is one, is one more predicate in `sql::SEARCH`. The 'english'
-- configuration stems words ("running" finds "run") and drops stop words.
--
-- Adding a stored column rewrites the table once, and the index is built
-- in the same transaction: on a large table, run it in a quiet hour.
ALTER TABLE messages ADD COLUMN search_terms tsvector
    GENERATED ALWAYS AS (
        CASE WHEN kind = '' THEN to_tsvector('english', body) END
    ) STORED;

-- fastupdate off: with the default pending list, the insert that finds the
-- list full merges all of it into the index inside the worker's batch
-- transaction, and every send of that batch waits for it. Off, each insert
-- pays for its own terms. Either way the index costs Postgres CPU on every
-- stored message (bench/RESULTS.md §8: about 15-30 µs per send).
CREATE INDEX messages_search_terms ON messages USING gin (search_terms)
    WITH (fastupdate = off);
