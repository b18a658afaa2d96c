-- The writer now indexes and rolls up each batch it inserts with two set statements
-- (`SqliteLogStore::insert`), instead of a trigger firing per inserted row: measured at 2,500
-- rows per batch, the per-row triggers cost about 4 µs per row for the rollup alone. Updates and
-- deletes keep their triggers, so the index and the rollup stay exact when a row is rewritten,
-- blanked by retention or deleted.
--
-- `logs_indexed.upto` is the highest rowid already in both: each batch adds the rows above it
-- and moves it, in its transaction. Rows another process inserts without doing so (a binary
-- from before this version, still running during an upgrade) are added by the next batch.
DROP TRIGGER logs_fts_insert;
DROP TRIGGER logs_rollup_insert;
CREATE TABLE logs_indexed (id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL);
INSERT INTO logs_indexed (id, upto) SELECT 1, COALESCE(MAX(rowid), 0) FROM logs;
