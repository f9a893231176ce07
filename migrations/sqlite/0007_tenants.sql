-- A tenant's configuration is data: the settings document (competitors, risk thresholds, idle gap),
-- agent overrides, and a version that every change of any of them (lexicon, whitelist, calendar, tag
-- library, knowledge-base documents included) moves on, which is how every worker learns of a change
-- without a restart. huixi_tenant_changes keeps who changed what, for the admin UI's history.

ALTER TABLE huixi_tenant_settings ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE huixi_tenant_settings ADD COLUMN settings TEXT;

CREATE TABLE huixi_tenant_agents (
    tenant      TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    definition  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE huixi_tenant_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    what        TEXT    NOT NULL,
    changed_at  INTEGER NOT NULL
);
CREATE INDEX huixi_tenant_changes_tenant ON huixi_tenant_changes (tenant, id);
