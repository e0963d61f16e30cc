-- A user's own entries, across rooms: what exporting and erasing a user's
-- data reads (docs/architecture.md, "A user's data"). One more B-tree
-- insert per stored message.
CREATE INDEX messages_by_sender ON messages (sender_id, room_id, seq);
