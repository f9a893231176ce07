//! A tenant's configuration as stored: the settings document (competitors, thresholds, idle gap), the
//! working-hours calendar, the tag library, agent overrides, and the version that every change of any
//! of them, the lexicon and the knowledge-base documents included, moves on. The documents arrive
//! through the API or the CLI, are checked there, and are kept as their JSON; what they mean is
//! [`crate::tenant`]'s business.

use sqlx::Row;

use super::{now_ms, optional_text, text, Dialect, Store, StoreError};
use crate::customers::TagLibrary;
use crate::trajectory::Calendar;

/// What a tenant configured; a tenant that configured nothing gets the default calendar and no tags.
#[derive(Debug, Clone, Default)]
pub struct TenantSettings {
    pub calendar: Calendar,
    pub tag_library: Option<TagLibrary>,
}

/// Everything a tenant stored, raw, at one version.
#[derive(Debug, Clone, Default)]
pub struct StoredTenant {
    pub version: i64,
    pub settings: TenantSettings,
    /// The settings document (JSON) as last put.
    pub document: Option<String>,
    /// Uploaded lexicon and whitelist texts.
    pub lexicon: Option<(String, String)>,
    /// Agent overrides by agent name, each the JSON of its definition.
    pub agents: Vec<(String, String)>,
}

impl Store {
    pub async fn tenant_settings(&self, tenant: &str) -> Result<TenantSettings, StoreError> {
        Ok(self.stored_tenant(tenant).await?.settings)
    }

    /// The tenant's version: 0 for a tenant that never configured anything. One indexed row: workers
    /// ask it every few seconds to learn whether what they built is still current.
    pub async fn tenant_version(&self, tenant: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT version FROM huixi_tenant_settings WHERE tenant = ?")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<i64, _>(0)?,
            None => 0,
        })
    }

    /// Everything the tenant configured, read in one transaction so the parts agree with the version.
    pub async fn stored_tenant(&self, tenant: &str) -> Result<StoredTenant, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = StoredTenant::default();
        if let Some(row) = sqlx::query(
            "SELECT calendar, tag_library, version, settings FROM huixi_tenant_settings WHERE tenant = ?",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?
        {
            if let Some(json) = optional_text(&row, 0)? {
                out.settings.calendar = serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("calendar of {tenant}: {e}")))?;
            }
            out.settings.tag_library = optional_text(&row, 1)?
                .map(|json| serde_json::from_str(&json))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("tag library of {tenant}: {e}")))?;
            out.version = row.try_get::<i64, _>(2)?;
            out.document = optional_text(&row, 3)?;
        }
        if let Some(row) =
            sqlx::query("SELECT lexicon, whitelist FROM huixi_tenant_lexicons WHERE tenant = ?")
                .bind(tenant)
                .fetch_optional(&mut *tx)
                .await?
        {
            out.lexicon = Some((text(&row, 0)?, text(&row, 1)?));
        }
        for row in sqlx::query(
            "SELECT name, definition FROM huixi_tenant_agents WHERE tenant = ? ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?
        {
            out.agents.push((text(&row, 0)?, text(&row, 1)?));
        }
        tx.commit().await?;
        Ok(out)
    }

    pub async fn put_calendar(&self, tenant: &str, calendar: &Calendar) -> Result<(), StoreError> {
        let json = serde_json::to_string(calendar).expect("calendars serialize");
        self.put_setting(tenant, "calendar", &json).await
    }

    pub async fn put_tag_library(
        &self,
        tenant: &str,
        library: &TagLibrary,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(library).expect("libraries serialize");
        self.put_setting(tenant, "tag_library", &json).await
    }

    /// The settings document, checked by the caller.
    pub async fn put_settings_document(&self, tenant: &str, json: &str) -> Result<(), StoreError> {
        self.put_setting(tenant, "settings", json).await
    }

    async fn put_setting(&self, tenant: &str, column: &str, json: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.bump_tenant_version(&mut tx, tenant, column).await?;
        sqlx::query(&format!(
            "UPDATE huixi_tenant_settings SET {column} = ? WHERE tenant = ?"
        ))
        .bind(json)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An agent override (the JSON of its definition, checked by the caller).
    pub async fn put_tenant_agent(
        &self,
        tenant: &str,
        name: &str,
        definition: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.bump_tenant_version(&mut tx, tenant, "agents").await?;
        sqlx::query("DELETE FROM huixi_tenant_agents WHERE tenant = ? AND name = ?")
            .bind(tenant)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO huixi_tenant_agents (tenant, name, definition, updated_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(name)
        .bind(definition)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an agent override, so the shipped agent applies again. False when there was none.
    pub async fn delete_tenant_agent(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        self.delete_tenant_item("huixi_tenant_agents", "agents", tenant, name)
            .await
    }

    /// Deletes one named item of a tenant's configuration. The version first, as every change of a
    /// tenant does (same lock order as a put); rolled back, version and all, when there was nothing
    /// of that name.
    pub(super) async fn delete_tenant_item(
        &self,
        table: &str,
        what: &str,
        tenant: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        self.bump_tenant_version(&mut tx, tenant, what).await?;
        let gone = sqlx::query(&format!(
            "DELETE FROM {table} WHERE tenant = ? AND name = ?"
        ))
        .bind(tenant)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if gone == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Moves the tenant's version on, inside the transaction that makes the change, and records what
    /// changed. The settings row is locked first, so two changes of one tenant queue behind each other
    /// and each gets its own version. Returns the new version.
    pub(super) async fn bump_tenant_version(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        what: &str,
    ) -> Result<i64, StoreError> {
        let upsert = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO huixi_tenant_settings (tenant, updated_at, version) VALUES (?, ?, 1) \
                 ON CONFLICT (tenant) DO UPDATE SET version = version + 1, updated_at = excluded.updated_at"
            }
            Dialect::MySql => {
                "INSERT INTO huixi_tenant_settings (tenant, updated_at, version) VALUES (?, ?, 1) \
                 ON DUPLICATE KEY UPDATE version = version + 1, updated_at = VALUES(updated_at)"
            }
        };
        let now = now_ms();
        sqlx::query(upsert)
            .bind(tenant)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        let version: i64 =
            sqlx::query("SELECT version FROM huixi_tenant_settings WHERE tenant = ?")
                .bind(tenant)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        sqlx::query(
            "INSERT INTO huixi_tenant_changes (tenant, version, what, changed_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(version)
        .bind(what)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(version)
    }

    /// The newest message time stored for the tenant: how far the archive reaches, which is "now" for
    /// deciding whether an unanswered message is overdue yet (a re-run on the same archive decides the
    /// same way, whatever the clock says).
    pub async fn archive_horizon(&self, tenant: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT MAX(msgtime) FROM huixi_messages WHERE tenant = ?")
            .bind(tenant)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.unwrap_or(0))
    }
}
