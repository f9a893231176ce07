-- Beyond one session: tenant settings (working-hours calendar, tag library), conversation metrics
-- (turns: a customer waiting for staff, traffic: messages per session, staff member and day), customer
-- profiles folded from per-session contributions, the phones and names customers wrote (撞单), and tag
-- suggestions written back for the CRM to apply or not.

CREATE TABLE huixi_tenant_settings (
    tenant      VARCHAR(64) NOT NULL PRIMARY KEY,
    calendar    MEDIUMTEXT,
    tag_library MEDIUMTEXT,
    updated_at  BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_turns (
    tenant           VARCHAR(64)  NOT NULL,
    conversation     VARCHAR(400) NOT NULL,
    session_id       VARCHAR(64)  NOT NULL,
    msgid            VARCHAR(128) NOT NULL,
    customer         VARCHAR(128) NOT NULL,
    staff            VARCHAR(128) NOT NULL,
    day              VARCHAR(10)  NOT NULL,
    asked_at         BIGINT       NOT NULL,
    due_at           BIGINT       NOT NULL,
    answered_msgid   VARCHAR(128),
    answered_at      BIGINT,
    wait_ms          BIGINT,
    first_in_session BIGINT       NOT NULL,
    PRIMARY KEY (tenant, msgid, staff),
    KEY huixi_turns_by_conversation (tenant, conversation),
    KEY huixi_turns_by_staff_day (tenant, staff, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_traffic (
    tenant       VARCHAR(64)  NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    session_id   VARCHAR(64)  NOT NULL,
    staff        VARCHAR(128) NOT NULL,
    day          VARCHAR(10)  NOT NULL,
    sent         BIGINT       NOT NULL,
    received     BIGINT       NOT NULL,
    negative     BIGINT       NOT NULL,
    alerts       MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (tenant, session_id, staff, day),
    KEY huixi_traffic_by_conversation (tenant, conversation),
    KEY huixi_traffic_by_staff_day (tenant, staff, day)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_customer_sessions (
    tenant       VARCHAR(64)  NOT NULL,
    customer     VARCHAR(128) NOT NULL,
    session_id   VARCHAR(64)  NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    start_ms     BIGINT       NOT NULL,
    contribution MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (tenant, customer, session_id),
    KEY huixi_customer_sessions_by_conversation (tenant, conversation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_customer_identifiers (
    tenant       VARCHAR(64)  NOT NULL,
    customer     VARCHAR(128) NOT NULL,
    session_id   VARCHAR(64)  NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    msgid        VARCHAR(128) NOT NULL,
    kind         VARCHAR(16)  NOT NULL,
    value_hash   VARCHAR(64)  NOT NULL,
    masked       VARCHAR(64)  NOT NULL,
    staff        MEDIUMTEXT   NOT NULL,
    PRIMARY KEY (tenant, customer, session_id, msgid, kind, value_hash),
    KEY huixi_customer_identifiers_by_value (tenant, value_hash),
    KEY huixi_customer_identifiers_by_conversation (tenant, conversation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_customers (
    tenant      VARCHAR(64)  NOT NULL,
    customer    VARCHAR(128) NOT NULL,
    profile     MEDIUMTEXT   NOT NULL,
    -- "<profile key>.<tag library key>", or with "retry:" before it.
    input_hash  VARCHAR(200) NOT NULL,
    updated_at  BIGINT       NOT NULL,
    PRIMARY KEY (tenant, customer)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_tag_suggestions (
    tenant      VARCHAR(64)  NOT NULL,
    customer    VARCHAR(128) NOT NULL,
    tag_group   VARCHAR(128) NOT NULL,
    tag         VARCHAR(128) NOT NULL,
    tag_id      VARCHAR(128),
    confidence  DOUBLE       NOT NULL,
    reason      TEXT         NOT NULL,
    evidence    MEDIUMTEXT   NOT NULL,
    updated_at  BIGINT       NOT NULL,
    PRIMARY KEY (tenant, customer, tag_group, tag)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The archive's horizon (its newest message) decides whether an unanswered message is overdue yet.
CREATE INDEX huixi_messages_by_time ON huixi_messages (tenant, msgtime);
