-- Drops the foreign key from messages to rooms. Its check was a query per
-- stored message (about a sixth of what `persist_messages` costs Postgres,
-- bench/persist-cost.sh) and proved what is already true: rooms are never
-- deleted, and every insert into messages is made holding its room's row
-- lock (`persist_messages`, and a command's event under `LOCK_ROOM`), so
-- the room exists. Should rooms ever be deleted, the delete must remove
-- their messages itself.
ALTER TABLE messages DROP CONSTRAINT messages_room_id_fkey;
