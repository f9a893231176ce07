-- A tenant's configuration is data: the settings document (competitors, risk thresholds, idle gap),
-- agent overrides, and a version that every change of any of them (lexicon, whitelist, calendar, tag
-- library, knowledge-base documents included) moves on, which is how every worker learns of a change
-- without a restart. huixi_tenant_changes keeps who changed what, for the admin UI's history.

ALTER TABLE huixi_tenant_settings ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE huixi_tenant_settings ADD COLUMN settings MEDIUMTEXT;

CREATE TABLE huixi_tenant_agents (
    tenant      VARCHAR(64)  NOT NULL,
    name        VARCHAR(64)  NOT NULL,
    definition  MEDIUMTEXT   NOT NULL,
    updated_at  BIGINT       NOT NULL,
    PRIMARY KEY (tenant, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE huixi_tenant_changes (
    id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    tenant      VARCHAR(64)  NOT NULL,
    version     BIGINT       NOT NULL,
    what        VARCHAR(64)  NOT NULL,
    changed_at  BIGINT       NOT NULL,
    KEY huixi_tenant_changes_tenant (tenant, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
