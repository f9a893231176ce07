-- huixi's own tables. Every name starts with huixi_ so they sit beside the CRM's tables without touching them.
-- Keys are VARCHAR with utf8mb4 sizes that fit InnoDB's 3072-byte index limit.

CREATE TABLE huixi_messages (
    tenant       VARCHAR(64)  NOT NULL,
    msgid        VARCHAR(128) NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    action       VARCHAR(16)  NOT NULL,
    sender       VARCHAR(128) NOT NULL,
    roomid       VARCHAR(128) NOT NULL,
    msgtime      BIGINT       NOT NULL,
    msgtype      VARCHAR(64)  NOT NULL,
    content      MEDIUMTEXT,
    raw          MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (tenant, msgid),
    KEY huixi_messages_by_conversation (tenant, conversation, msgtime)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_sessions (
    tenant        VARCHAR(64)  NOT NULL,
    id            VARCHAR(64)  NOT NULL,
    conversation  VARCHAR(400) NOT NULL,
    kind          VARCHAR(16)  NOT NULL,
    participants  MEDIUMTEXT   NOT NULL,
    start_ms      BIGINT       NOT NULL,
    end_ms        BIGINT       NOT NULL,
    message_count BIGINT       NOT NULL,
    input_hash    VARCHAR(64)  NOT NULL,
    result        MEDIUMTEXT   NOT NULL,
    analysed_at   BIGINT       NOT NULL,
    PRIMARY KEY (tenant, id),
    KEY huixi_sessions_by_conversation (tenant, conversation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_findings (
    tenant     VARCHAR(64) NOT NULL,
    session_id VARCHAR(64) NOT NULL,
    kind       VARCHAR(32) NOT NULL,
    payload    MEDIUMTEXT  NOT NULL,
    evidence   MEDIUMTEXT  NOT NULL,
    analyser   VARCHAR(128) NOT NULL,
    PRIMARY KEY (tenant, session_id, kind)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_alerts (
    id         BIGINT       NOT NULL AUTO_INCREMENT,
    tenant     VARCHAR(64)  NOT NULL,
    session_id VARCHAR(64)  NOT NULL,
    msgid      VARCHAR(128) NOT NULL,
    kind       VARCHAR(32)  NOT NULL,
    category   VARCHAR(64)  NOT NULL,
    severity   VARCHAR(16)  NOT NULL,
    word       VARCHAR(255) NOT NULL,
    text       MEDIUMTEXT   NOT NULL,
    start_char BIGINT       NOT NULL,
    end_char   BIGINT       NOT NULL,
    evidence   MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (id),
    KEY huixi_alerts_by_session (tenant, session_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_runs (
    id                BIGINT      NOT NULL AUTO_INCREMENT,
    tenant            VARCHAR(64) NOT NULL,
    started_at        BIGINT      NOT NULL,
    finished_at       BIGINT,
    files             MEDIUMTEXT  NOT NULL,
    messages_read     BIGINT      NOT NULL DEFAULT 0,
    messages_new      BIGINT      NOT NULL DEFAULT 0,
    rejected_lines    BIGINT      NOT NULL DEFAULT 0,
    sessions          BIGINT      NOT NULL DEFAULT 0,
    sessions_analysed BIGINT      NOT NULL DEFAULT 0,
    alerts            BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_rejected_lines (
    id     BIGINT     NOT NULL AUTO_INCREMENT,
    run_id BIGINT     NOT NULL,
    file   MEDIUMTEXT NOT NULL,
    line   BIGINT     NOT NULL,
    error  MEDIUMTEXT NOT NULL,
    PRIMARY KEY (id),
    KEY huixi_rejected_lines_by_run (run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
