-- A real tenant's volume: every hot query bounded by an index to its own rows (the ORDER BY of each
-- query is the index's own order), one row per conversation that says what its last analysis was made
-- from, the customers whose profiles a commit made stale, and a unique key that lets a 超时未回复 be
-- raised once however many sweep at once.

ALTER TABLE huixi_sessions DROP INDEX huixi_sessions_by_conversation,
    ADD INDEX huixi_sessions_by_conversation (tenant, conversation, id);
ALTER TABLE huixi_messages DROP INDEX huixi_messages_by_conversation,
    ADD INDEX huixi_messages_by_conversation (tenant, conversation, msgtime, msgid);
ALTER TABLE huixi_turns DROP INDEX huixi_turns_by_conversation,
    ADD INDEX huixi_turns_by_conversation (tenant, conversation, asked_at, msgid, staff),
    ADD INDEX huixi_turns_unanswered (tenant, answered_at, due_at);
ALTER TABLE huixi_traffic DROP INDEX huixi_traffic_by_conversation,
    ADD INDEX huixi_traffic_by_conversation (tenant, conversation, session_id, staff, day);
ALTER TABLE huixi_alerts DROP INDEX huixi_alerts_by_session,
    ADD INDEX huixi_alerts_by_session (tenant, session_id, id);
ALTER TABLE huixi_customer_sessions DROP INDEX huixi_customer_sessions_by_conversation,
    ADD INDEX huixi_customer_sessions_by_conversation (tenant, conversation, customer);

CREATE TABLE huixi_conversations (
    tenant       VARCHAR(64)  NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    extras       VARCHAR(64)  NOT NULL,
    analysed_at  BIGINT       NOT NULL,
    PRIMARY KEY (tenant, conversation)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_stale_customers (
    id       BIGINT       NOT NULL AUTO_INCREMENT,
    tenant   VARCHAR(64)  NOT NULL,
    customer VARCHAR(128) NOT NULL,
    PRIMARY KEY (id),
    KEY huixi_stale_customers_by_tenant (tenant, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE huixi_alerts ADD COLUMN once_key VARCHAR(240) NULL,
    ADD UNIQUE INDEX huixi_alerts_once (tenant, once_key);
UPDATE huixi_alerts SET once_key = CONCAT('timeout:', session_id, ':', msgid) WHERE kind = 'response_timeout'
;

-- The embedded queue hands out the first row of (queue, state) in priority order, oldest first: an
-- index in that very order, so a claim reads one row however long the backlog.
ALTER TABLE huixi_jobs DROP INDEX huixi_jobs_ready, ADD INDEX huixi_jobs_due (queue, state, priority DESC, id)
