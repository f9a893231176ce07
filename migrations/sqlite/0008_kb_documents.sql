-- A tenant's knowledge-base documents as data: the store holds each document's text, and every process
-- that searches (an API replica, a worker on another machine) builds its own index from these rows, so
-- no file has to be copied between machines. digest is the SHA-256 of body in hex, which lets a process
-- tell which documents its index already holds without reading the bodies.

CREATE TABLE huixi_kb_documents (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    digest      TEXT    NOT NULL,
    bytes       INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);
