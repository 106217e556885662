-- A failure that no retry can change (not a CloudFront log, every line rejected,
-- the object deleted) is final: backfill leaves it alone until the object changes.
ALTER TABLE log_files ADD COLUMN final boolean NOT NULL DEFAULT false;
-- gone: the object was deleted before it could be read.
ALTER TABLE log_files DROP CONSTRAINT log_files_status_check;
ALTER TABLE log_files ADD CONSTRAINT log_files_status_check
    CHECK (status IN ('queued', 'processing', 'done', 'failed', 'gone'));
-- Rejected lines by reason, for the objects that had any.
ALTER TABLE log_files ADD COLUMN rejected_by_reason jsonb;
