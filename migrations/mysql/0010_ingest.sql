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
    tenant       VARCHAR(64)  NOT NULL,
    conversation VARCHAR(400) NOT NULL,
    due_at       BIGINT       NOT NULL,
    PRIMARY KEY (tenant, conversation),
    KEY huixi_pending_analysis_due (due_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

ALTER TABLE huixi_alerts ADD INDEX huixi_alerts_by_msgid (tenant, msgid),
    ADD COLUMN occurrences BIGINT NOT NULL DEFAULT 1;

ALTER TABLE huixi_outbox ADD COLUMN channel VARCHAR(16) NOT NULL DEFAULT '';
ALTER TABLE huixi_webhooks ADD COLUMN high_url TEXT NULL,
    ADD COLUMN previous_secret TEXT NULL,
    ADD COLUMN previous_until BIGINT NULL;

CREATE TABLE huixi_wecom_sources (
    tenant         VARCHAR(64)  NOT NULL PRIMARY KEY,
    corpid         VARCHAR(128) NOT NULL,
    secret         TEXT         NOT NULL,
    private_keys   MEDIUMTEXT   NOT NULL,
    sdk_path       TEXT         NOT NULL,
    interval_secs  BIGINT       NOT NULL,
    lag_alert_secs BIGINT       NOT NULL,
    notify_token   VARCHAR(255) NOT NULL DEFAULT '',
    notify_aes_key VARCHAR(255) NOT NULL DEFAULT '',
    cursor_seq     BIGINT       NOT NULL DEFAULT 0,
    newest_msgtime BIGINT       NOT NULL DEFAULT 0,
    advanced_at    BIGINT       NOT NULL,
    pulled_at      BIGINT       NOT NULL DEFAULT 0,
    lease_owner    VARCHAR(128) NOT NULL DEFAULT '',
    lease_until    BIGINT       NOT NULL DEFAULT 0,
    stopped        TEXT         NULL,
    lag_alerted_at BIGINT       NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_quarantine (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant      VARCHAR(64)  NOT NULL,
    seq         BIGINT       NOT NULL,
    msgid       VARCHAR(128) NOT NULL,
    raw         MEDIUMTEXT   NOT NULL,
    reason      TEXT         NOT NULL,
    at          BIGINT       NOT NULL,
    replayed_at BIGINT       NULL,
    UNIQUE KEY huixi_quarantine_seq (tenant, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_media (
    tenant     VARCHAR(64)  NOT NULL,
    msgid      VARCHAR(128) NOT NULL,
    sdkfileid  TEXT         NOT NULL,
    md5sum     VARCHAR(64)  NOT NULL,
    filesize   BIGINT       NOT NULL,
    indexbuf   TEXT         NOT NULL,
    written    BIGINT       NOT NULL DEFAULT 0,
    location   VARCHAR(512) NULL,
    attempts   BIGINT       NOT NULL DEFAULT 0,
    error      TEXT         NULL,
    PRIMARY KEY (tenant, msgid),
    KEY huixi_media_todo (tenant, location)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
