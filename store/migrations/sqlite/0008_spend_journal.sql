-- Spend journal segments already added to governance_usage: a segment is applied in the same
-- transaction that records it here, so a segment replayed after a crash is never added twice.
CREATE TABLE usage_journal_applied (
    segment     TEXT PRIMARY KEY,
    applied_at  INTEGER NOT NULL
);
