-- Each member's role and permission flags (chat_protocol::access: bit 1
-- can_send_messages, 2 can_change_permissions, 4 can_remove_members,
-- 8 can_delete_other_messages). Existing members become plain members.
ALTER TABLE members
    ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
        CHECK (role IN ('owner', 'admin', 'member')),
    ADD COLUMN permissions SMALLINT NOT NULL DEFAULT 1
        CHECK (permissions BETWEEN 0 AND 15);

-- A member_joined or role_changed event's role and flags after it
-- (`admin:15`, chat_protocol::access::Access::encode); NULL otherwise.
ALTER TABLE messages ADD COLUMN access TEXT;
