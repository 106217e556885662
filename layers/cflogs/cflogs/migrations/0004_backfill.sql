-- When the backfill last put an object on the ingest queue. A queued row whose
-- message was lost (planner stopped between claiming and sending, or the message
-- went to the dead-letter queue) becomes eligible again once this is old enough.
ALTER TABLE log_files ADD COLUMN queued_at timestamptz;
