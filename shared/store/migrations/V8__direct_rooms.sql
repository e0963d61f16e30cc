-- A direct room: one per pair of users (its id derived from the pair,
-- chat_protocol::RoomId::direct), made with both as members on first use.
-- Set when the room is created and never changed: nobody, the service
-- included, adds a member to a direct room.
ALTER TABLE rooms ADD COLUMN direct BOOLEAN NOT NULL DEFAULT false;
