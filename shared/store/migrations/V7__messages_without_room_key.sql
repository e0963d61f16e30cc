-- Drops the foreign key from messages to rooms. Its check was a query per
-- stored message (about a sixth of what `persist_messages` costs Postgres,
-- bench/persist-cost.sh) and proved what is already true: every insert into
-- messages is made holding its room's row lock (`persist_messages`, and a
-- command's event under `LOCK_ROOM`), so the room exists.
--
-- What its ON DELETE CASCADE did stays, as a trigger: deleting a room (an
-- operator's act; the system never does it) deletes its messages, so a room
-- made again under the same id starts from seq 1 without a clash. The
-- delete locks the room row first, so it waits for a storing transaction
-- and removes what that one stored.
ALTER TABLE messages DROP CONSTRAINT messages_room_id_fkey;

CREATE FUNCTION delete_room_messages() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM messages WHERE room_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER rooms_delete_messages AFTER DELETE ON rooms
    FOR EACH ROW EXECUTE FUNCTION delete_room_messages();
