-- `logs_indexed.upto` is the highest rowid already in the search index and the rollup: each
-- batch adds the rows above it (capped at the last rowid, since SQLite hands out the rowids of
-- deleted newest rows again) and moves it, in its transaction. Rows another process inserts
-- without doing so (a binary from before version 3, still running during an upgrade) are added
-- by the next batch.
-- (IF NOT EXISTS / OR IGNORE: a development build created the table with version 3.)
CREATE TABLE IF NOT EXISTS logs_indexed (id INTEGER PRIMARY KEY CHECK (id = 1), upto INTEGER NOT NULL);
INSERT OR IGNORE INTO logs_indexed (id, upto) SELECT 1, COALESCE(MAX(rowid), 0) FROM logs;
