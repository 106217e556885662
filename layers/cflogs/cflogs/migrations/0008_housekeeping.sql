-- A visitor's sessions by equality, for the stitcher: the planner estimates a
-- range of the primary key between two computed ids at a fixed share of the
-- table, so with a few million sessions it took every per-visitor probe for
-- thousands of rows, chose bitmap scans and compiled the batch statement (JIT),
-- costs that grew with the history. Equality on visitor_id is estimated from
-- the statistics: a few rows, whatever the size. (Building it locks sessions
-- for writes for as long as it takes: seconds per million sessions.)
CREATE INDEX sessions_visitor ON sessions (visitor_id);

-- Tables that are rewritten all the time are vacuumed after a fixed number of
-- dead rows rather than a share of their size, so that they do not carry
-- millions of dead rows after a large backfill. The queue is emptied by every
-- stitch run; sessions are replaced and flipped (can_grow), visitors upserted,
-- ledger rows updated twice per object, hourly traffic upserted per object.
ALTER TABLE dirty_visitors SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000
);
ALTER TABLE sessions SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE visitors SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05
);
ALTER TABLE log_files SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE traffic_hourly SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE file_traffic SET (autovacuum_vacuum_scale_factor = 0.05);
