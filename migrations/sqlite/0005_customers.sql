-- Beyond one session: tenant settings (working-hours calendar, tag library), conversation metrics
-- (turns: a customer waiting for staff, traffic: messages per session, staff member and day), customer
-- profiles folded from per-session contributions, the phones and names customers wrote (撞单), and tag
-- suggestions written back for the CRM to apply or not.

CREATE TABLE huixi_tenant_settings (
    tenant      TEXT    NOT NULL PRIMARY KEY,
    calendar    TEXT,
    tag_library TEXT,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE huixi_turns (
    tenant           TEXT    NOT NULL,
    conversation     TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    msgid            TEXT    NOT NULL,
    customer         TEXT    NOT NULL,
    staff            TEXT    NOT NULL,
    day              TEXT    NOT NULL,
    asked_at         INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    answered_msgid   TEXT,
    answered_at      INTEGER,
    wait_ms          INTEGER,
    first_in_session INTEGER NOT NULL,
    PRIMARY KEY (tenant, msgid, staff)
);
CREATE INDEX huixi_turns_by_conversation ON huixi_turns (tenant, conversation);
CREATE INDEX huixi_turns_by_staff_day ON huixi_turns (tenant, staff, day);

CREATE TABLE huixi_traffic (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    session_id   TEXT    NOT NULL,
    staff        TEXT    NOT NULL,
    day          TEXT    NOT NULL,
    sent         INTEGER NOT NULL,
    received     INTEGER NOT NULL,
    negative     INTEGER NOT NULL,
    alerts       TEXT    NOT NULL,
    PRIMARY KEY (tenant, session_id, staff, day)
);
CREATE INDEX huixi_traffic_by_conversation ON huixi_traffic (tenant, conversation);
CREATE INDEX huixi_traffic_by_staff_day ON huixi_traffic (tenant, staff, day);

CREATE TABLE huixi_customer_sessions (
    tenant       TEXT    NOT NULL,
    customer     TEXT    NOT NULL,
    session_id   TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    start_ms     INTEGER NOT NULL,
    contribution TEXT    NOT NULL,
    PRIMARY KEY (tenant, customer, session_id)
);
CREATE INDEX huixi_customer_sessions_by_conversation ON huixi_customer_sessions (tenant, conversation);

CREATE TABLE huixi_customer_identifiers (
    tenant       TEXT NOT NULL,
    customer     TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    conversation TEXT NOT NULL,
    msgid        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    value_hash   TEXT NOT NULL,
    masked       TEXT NOT NULL,
    staff        TEXT NOT NULL,
    PRIMARY KEY (tenant, customer, session_id, msgid, kind, value_hash)
);
CREATE INDEX huixi_customer_identifiers_by_value ON huixi_customer_identifiers (tenant, value_hash);
CREATE INDEX huixi_customer_identifiers_by_conversation ON huixi_customer_identifiers (tenant, conversation);

CREATE TABLE huixi_customers (
    tenant      TEXT    NOT NULL,
    customer    TEXT    NOT NULL,
    profile     TEXT    NOT NULL,
    input_hash  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, customer)
);

CREATE TABLE huixi_tag_suggestions (
    tenant      TEXT    NOT NULL,
    customer    TEXT    NOT NULL,
    tag_group   TEXT    NOT NULL,
    tag         TEXT    NOT NULL,
    tag_id      TEXT,
    confidence  REAL    NOT NULL,
    reason      TEXT    NOT NULL,
    evidence    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, customer, tag_group, tag)
);

-- The archive's horizon (its newest message) decides whether an unanswered message is overdue yet.
CREATE INDEX huixi_messages_by_time ON huixi_messages (tenant, msgtime);
