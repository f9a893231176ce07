-- A real tenant's volume: every hot query bounded by an index to its own rows (the ORDER BY of each
-- query is the index's own order, so the planner never prefers the primary key and scans the tenant),
-- one row per conversation that says what its last analysis was made from, the customers whose profiles
-- a commit made stale, and a unique key that lets a 超时未回复 be raised once however many sweep at once.

DROP INDEX huixi_sessions_by_conversation;
CREATE INDEX huixi_sessions_by_conversation ON huixi_sessions (tenant, conversation, id);
DROP INDEX huixi_messages_by_conversation;
CREATE INDEX huixi_messages_by_conversation ON huixi_messages (tenant, conversation, msgtime, msgid);
DROP INDEX huixi_turns_by_conversation;
CREATE INDEX huixi_turns_by_conversation ON huixi_turns (tenant, conversation, asked_at, msgid, staff);
DROP INDEX huixi_traffic_by_conversation;
CREATE INDEX huixi_traffic_by_conversation ON huixi_traffic (tenant, conversation, session_id, staff, day);
DROP INDEX huixi_alerts_by_session;
CREATE INDEX huixi_alerts_by_session ON huixi_alerts (tenant, session_id, id);
DROP INDEX huixi_customer_sessions_by_conversation;
CREATE INDEX huixi_customer_sessions_by_conversation ON huixi_customer_sessions (tenant, conversation, customer);
CREATE INDEX huixi_turns_unanswered ON huixi_turns (tenant, answered_at, due_at);

-- What a conversation's last committed analysis produced beyond its sessions (`extras`: a hash of its
-- metrics and customer contributions), so an unchanged conversation is recognised without reading those
-- rows back. Its row is also the lock that orders two commits of the same conversation.
CREATE TABLE huixi_conversations (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    extras       TEXT    NOT NULL,
    analysed_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation)
);

-- A customer whose contributions a conversation's commit changed: a row per commit, never updated, so
-- writers of the same customer never touch one row: the fold deletes exactly the rows it read.
CREATE TABLE huixi_stale_customers (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant   TEXT    NOT NULL,
    customer TEXT    NOT NULL
);
CREATE INDEX huixi_stale_customers_by_tenant ON huixi_stale_customers (tenant, id);

-- Alerts that must exist once (a 超时未回复 per question) carry a key: the others leave it NULL.
ALTER TABLE huixi_alerts ADD COLUMN once_key TEXT;
CREATE UNIQUE INDEX huixi_alerts_once ON huixi_alerts (tenant, once_key);
UPDATE huixi_alerts SET once_key = 'timeout:' || session_id || ':' || msgid WHERE kind = 'response_timeout'
;

-- The embedded queue hands out the first row of (queue, state) in priority order, oldest first: an
-- index in that very order, so a claim reads one row however long the backlog.
DROP INDEX huixi_jobs_ready;
CREATE INDEX huixi_jobs_due ON huixi_jobs (queue, state, priority DESC, id)
