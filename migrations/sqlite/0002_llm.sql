-- Model answers kept so that re-analysing an unchanged session costs no tokens, and what every model
-- call cost, per tenant, run, session and agent.

CREATE TABLE huixi_llm_cache (
    cache_key     TEXT    NOT NULL PRIMARY KEY,
    agent         TEXT    NOT NULL,
    model         TEXT    NOT NULL,
    content       TEXT    NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE huixi_llm_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant            TEXT    NOT NULL,
    run_id            INTEGER,
    session_id        TEXT    NOT NULL,
    agent             TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost              REAL    NOT NULL,
    cached            INTEGER NOT NULL,
    status            TEXT    NOT NULL,
    error             TEXT,
    latency_ms        INTEGER NOT NULL,
    created_at        INTEGER NOT NULL
);
CREATE INDEX huixi_llm_usage_by_tenant ON huixi_llm_usage (tenant, created_at);
