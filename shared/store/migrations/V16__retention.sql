-- Retention (worker/src/retention.rs): a room's own limits, which replace
-- the workers' defaults (NULL: the default), and how far its messages have
-- been deleted: every seq up to `expired_to` is gone, so a resume from
-- before it is told so instead of finding a hole.
ALTER TABLE rooms
    ADD COLUMN retain_secs  BIGINT CHECK (retain_secs > 0),
    ADD COLUMN retain_count BIGINT CHECK (retain_count > 0),
    ADD COLUMN expired_to   BIGINT NOT NULL DEFAULT 0;

-- Scheduled messages sent, cancelled or refused are deleted a week after
-- their time, found by this index rather than a scan.
CREATE INDEX scheduled_messages_done ON scheduled_messages (deliver_at)
    WHERE state <> 'pending';

-- Without default limits, a sweep looks only at rooms with their own.
CREATE INDEX rooms_with_retention ON rooms (id)
    WHERE retain_count IS NOT NULL OR retain_secs IS NOT NULL;
