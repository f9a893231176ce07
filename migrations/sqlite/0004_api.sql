-- The HTTP API: tenant tokens (stored hashed), re-analysis requests and their progress, tenant lexicons
-- uploaded through the API, and the webhook outbox.

CREATE TABLE huixi_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    admin       INTEGER NOT NULL,
    label       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE huixi_requests (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    query       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE huixi_request_items (
    request_id   INTEGER NOT NULL,
    conversation TEXT    NOT NULL,
    done_at      INTEGER,
    PRIMARY KEY (request_id, conversation)
);

CREATE TABLE huixi_tenant_lexicons (
    tenant      TEXT    NOT NULL PRIMARY KEY,
    lexicon     TEXT    NOT NULL,
    whitelist   TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE huixi_webhooks (
    tenant      TEXT    NOT NULL PRIMARY KEY,
    url         TEXT    NOT NULL,
    secret      TEXT    NOT NULL
);

CREATE TABLE huixi_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT    NOT NULL,
    event        TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    delivered_at INTEGER,
    last_error   TEXT
);
CREATE INDEX huixi_outbox_due ON huixi_outbox (delivered_at, next_at);
