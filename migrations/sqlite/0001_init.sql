-- huixi's own tables. Every name starts with huixi_ so they sit beside the CRM's tables without touching them.

CREATE TABLE huixi_messages (
    tenant       TEXT    NOT NULL,
    msgid        TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    action       TEXT    NOT NULL,
    sender       TEXT    NOT NULL,
    roomid       TEXT    NOT NULL,
    msgtime      INTEGER NOT NULL,
    msgtype      TEXT    NOT NULL,
    content      TEXT,
    raw          TEXT    NOT NULL,
    PRIMARY KEY (tenant, msgid)
);
CREATE INDEX huixi_messages_by_conversation ON huixi_messages (tenant, conversation, msgtime);

CREATE TABLE huixi_sessions (
    tenant        TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    conversation  TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    participants  TEXT    NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER NOT NULL,
    message_count INTEGER NOT NULL,
    input_hash    TEXT    NOT NULL,
    result        TEXT    NOT NULL,
    analysed_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX huixi_sessions_by_conversation ON huixi_sessions (tenant, conversation);

CREATE TABLE huixi_findings (
    tenant     TEXT NOT NULL,
    session_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    evidence   TEXT NOT NULL,
    analyser   TEXT NOT NULL,
    PRIMARY KEY (tenant, session_id, kind)
);

CREATE TABLE huixi_alerts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     TEXT    NOT NULL,
    session_id TEXT    NOT NULL,
    msgid      TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    category   TEXT    NOT NULL,
    severity   TEXT    NOT NULL,
    word       TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    start_char INTEGER NOT NULL,
    end_char   INTEGER NOT NULL,
    evidence   TEXT    NOT NULL
);
CREATE INDEX huixi_alerts_by_session ON huixi_alerts (tenant, session_id);

CREATE TABLE huixi_runs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant            TEXT    NOT NULL,
    started_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    files             TEXT    NOT NULL,
    messages_read     INTEGER NOT NULL DEFAULT 0,
    messages_new      INTEGER NOT NULL DEFAULT 0,
    rejected_lines    INTEGER NOT NULL DEFAULT 0,
    sessions          INTEGER NOT NULL DEFAULT 0,
    sessions_analysed INTEGER NOT NULL DEFAULT 0,
    alerts            INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE huixi_rejected_lines (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    file   TEXT    NOT NULL,
    line   INTEGER NOT NULL,
    error  TEXT    NOT NULL
);
