-- Archive files whose every conversation a run committed, by content: a later `huixi analyze` of
-- the same bytes under the same analysis (fingerprint) has nothing to add and skips the file whole.
-- Keyed by content, not path: a file moved or copied is still known, a file edited in place is not.

CREATE TABLE huixi_archive_files (
    tenant VARCHAR(64) NOT NULL,
    content_hash CHAR(64) NOT NULL,
    fingerprint VARCHAR(128) NOT NULL,
    path VARCHAR(1024) NOT NULL,
    bytes BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    run_id BIGINT NOT NULL,
    settled_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, content_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
