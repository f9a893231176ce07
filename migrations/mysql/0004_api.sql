-- The HTTP API: tenant tokens (stored hashed), re-analysis requests and their progress, tenant lexicons
-- uploaded through the API, and the webhook outbox.

CREATE TABLE huixi_tokens (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant      VARCHAR(64)  NOT NULL,
    token_hash  VARCHAR(64)  NOT NULL,
    admin       BIGINT       NOT NULL,
    label       VARCHAR(200) NOT NULL,
    created_at  BIGINT       NOT NULL,
    revoked_at  BIGINT,
    UNIQUE KEY huixi_tokens_hash (token_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_requests (
    id          BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant      VARCHAR(64) NOT NULL,
    query       TEXT        NOT NULL,
    created_at  BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_request_items (
    request_id   BIGINT       NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    done_at      BIGINT,
    PRIMARY KEY (request_id, conversation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_tenant_lexicons (
    tenant      VARCHAR(64) NOT NULL PRIMARY KEY,
    lexicon     MEDIUMTEXT  NOT NULL,
    whitelist   MEDIUMTEXT  NOT NULL,
    updated_at  BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_webhooks (
    tenant      VARCHAR(64)  NOT NULL PRIMARY KEY,
    url         TEXT         NOT NULL,
    secret      VARCHAR(200) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_outbox (
    id           BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant       VARCHAR(64) NOT NULL,
    event        VARCHAR(32) NOT NULL,
    payload      MEDIUMTEXT  NOT NULL,
    attempts     BIGINT      NOT NULL DEFAULT 0,
    next_at      BIGINT      NOT NULL,
    delivered_at BIGINT,
    last_error   TEXT,
    KEY huixi_outbox_due (delivered_at, next_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
