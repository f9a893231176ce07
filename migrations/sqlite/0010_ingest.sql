-- Continuous ingest: messages that arrive one by one (the WeCom puller, POST /v1/messages, enqueue)
-- raise their alerts at once, and their conversations wait in huixi_pending_analysis until they have
-- been idle for the tenant's idle gap.
--
-- A real-time alert sits in huixi_alerts with an empty session_id and a live: once_key, until the
-- analysis of its session adopts the row (so it is one alert, not two). An alert counts how often its word
-- occurs in the message (one alert per word per message). Outbox events carry a channel:
-- high-severity alerts can go to a tenant's own 主管 URL, and are sent first. A webhook's previous secret
-- signs beside the new one for a day after a rotation.
--
-- huixi_wecom_sources is a tenant's finance-SDK puller: credentials (sealed with HUIXI_MASTER_KEY),
-- the cursor (seq), which advances only in the transaction that stores its page, the lease that makes
-- one replica pull, and the lag figures. huixi_quarantine keeps every archive item that could not be
-- decrypted or parsed, raw, with its seq and reason. huixi_media tracks each media download, resumable
-- from the SDK's indexbuf.

CREATE TABLE huixi_pending_analysis (
    tenant       TEXT    NOT NULL,
    conversation TEXT    NOT NULL,
    due_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant, conversation)
);
CREATE INDEX huixi_pending_analysis_due ON huixi_pending_analysis (due_at);

CREATE INDEX huixi_alerts_by_msgid ON huixi_alerts (tenant, msgid);
ALTER TABLE huixi_alerts ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;

ALTER TABLE huixi_outbox ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE huixi_webhooks ADD COLUMN high_url TEXT;
ALTER TABLE huixi_webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE huixi_webhooks ADD COLUMN previous_until INTEGER;

CREATE TABLE huixi_wecom_sources (
    tenant         TEXT    NOT NULL PRIMARY KEY,
    corpid         TEXT    NOT NULL,
    secret         TEXT    NOT NULL,
    private_keys   TEXT    NOT NULL,
    sdk_path       TEXT    NOT NULL,
    interval_secs  INTEGER NOT NULL,
    lag_alert_secs INTEGER NOT NULL,
    notify_token   TEXT    NOT NULL DEFAULT '',
    notify_aes_key TEXT    NOT NULL DEFAULT '',
    cursor_seq     INTEGER NOT NULL DEFAULT 0,
    newest_msgtime INTEGER NOT NULL DEFAULT 0,
    advanced_at    INTEGER NOT NULL,
    pulled_at      INTEGER NOT NULL DEFAULT 0,
    lease_owner    TEXT    NOT NULL DEFAULT '',
    lease_until    INTEGER NOT NULL DEFAULT 0,
    stopped        TEXT,
    lag_alerted_at INTEGER
);

CREATE TABLE huixi_quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    msgid       TEXT    NOT NULL,
    raw         TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    replayed_at INTEGER
);
CREATE UNIQUE INDEX huixi_quarantine_seq ON huixi_quarantine (tenant, seq);

CREATE TABLE huixi_media (
    tenant     TEXT    NOT NULL,
    msgid      TEXT    NOT NULL,
    sdkfileid  TEXT    NOT NULL,
    md5sum     TEXT    NOT NULL,
    filesize   INTEGER NOT NULL,
    indexbuf   TEXT    NOT NULL DEFAULT '',
    written    INTEGER NOT NULL DEFAULT 0,
    location   TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    PRIMARY KEY (tenant, msgid)
);
CREATE INDEX huixi_media_todo ON huixi_media (tenant, location);
