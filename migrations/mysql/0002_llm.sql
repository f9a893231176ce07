-- Model answers kept so that re-analysing an unchanged session costs no tokens, and what every model
-- call cost, per tenant, run, session and agent.

CREATE TABLE huixi_llm_cache (
    cache_key         VARCHAR(64)  NOT NULL,
    agent             VARCHAR(255) NOT NULL,
    model             VARCHAR(128) NOT NULL,
    content           MEDIUMTEXT   NOT NULL,
    prompt_tokens     BIGINT       NOT NULL,
    completion_tokens BIGINT       NOT NULL,
    created_at        BIGINT       NOT NULL,
    PRIMARY KEY (cache_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_llm_usage (
    id                BIGINT       NOT NULL AUTO_INCREMENT,
    tenant            VARCHAR(64)  NOT NULL,
    run_id            BIGINT,
    session_id        VARCHAR(64)  NOT NULL,
    agent             VARCHAR(255) NOT NULL,
    model             VARCHAR(128) NOT NULL,
    prompt_tokens     BIGINT       NOT NULL,
    completion_tokens BIGINT       NOT NULL,
    cost              DOUBLE       NOT NULL,
    cached            BIGINT       NOT NULL,
    status            VARCHAR(16)  NOT NULL,
    error             MEDIUMTEXT,
    latency_ms        BIGINT       NOT NULL,
    created_at        BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY huixi_llm_usage_by_tenant (tenant, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
