-- A tenant's knowledge-base documents as data: the store holds each document's text, and every process
-- that searches (an API replica, a worker on another machine) builds its own index from these rows, so
-- no file has to be copied between machines. digest is the SHA-256 of body in hex, which lets a process
-- tell which documents its index already holds without reading the bodies. LONGTEXT, as an upload may
-- be as large as the API's upload limit (16 MiB), one byte more than MEDIUMTEXT holds.

CREATE TABLE huixi_kb_documents (
    tenant      VARCHAR(64)  NOT NULL,
    name        VARCHAR(255) NOT NULL,
    body        LONGTEXT     NOT NULL,
    digest      CHAR(64)     NOT NULL,
    bytes       BIGINT       NOT NULL,
    updated_at  BIGINT       NOT NULL,
    PRIMARY KEY (tenant, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
