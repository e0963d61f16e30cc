-- Deleting a room removes its commands (so their ids may be used again
-- for the room made anew under its id): found by room, not by a scan.
CREATE INDEX commands_by_room ON commands (room_id);
