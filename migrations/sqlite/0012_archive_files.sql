-- Archive files whose every conversation a run committed, by content: a later `huixi analyze` of
-- the same bytes under the same analysis (fingerprint) has nothing to add and skips the file whole.
-- Keyed by content, not path: a file moved or copied is still known, a file edited in place is not.

CREATE TABLE huixi_archive_files (
    tenant TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    messages INTEGER NOT NULL,
    run_id INTEGER NOT NULL,
    settled_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, content_hash)
);
