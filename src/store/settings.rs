//! Per-tenant settings the analyses beyond one session read: the working-hours calendar and the tag
//! library. Both arrive through the API or the CLI, are checked there, and are kept as their JSON.

use sqlx::Row;

use super::{now_ms, optional_text, Dialect, Store, StoreError};
use crate::customers::TagLibrary;
use crate::trajectory::Calendar;

/// What a tenant configured; a tenant that configured nothing gets the default calendar and no tags.
#[derive(Debug, Clone, Default)]
pub struct TenantSettings {
    pub calendar: Calendar,
    pub tag_library: Option<TagLibrary>,
}

impl Store {
    pub async fn tenant_settings(&self, tenant: &str) -> Result<TenantSettings, StoreError> {
        let Some(row) =
            sqlx::query("SELECT calendar, tag_library FROM huixi_tenant_settings WHERE tenant = ?")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(TenantSettings::default());
        };
        let calendar = match optional_text(&row, 0)? {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("calendar of {tenant}: {e}")))?,
            None => Calendar::default(),
        };
        let tag_library = optional_text(&row, 1)?
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("tag library of {tenant}: {e}")))?;
        Ok(TenantSettings {
            calendar,
            tag_library,
        })
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

    async fn put_setting(&self, tenant: &str, column: &str, json: &str) -> Result<(), StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => format!(
                "INSERT INTO huixi_tenant_settings (tenant, {column}, updated_at) VALUES (?, ?, ?) \
                 ON CONFLICT (tenant) DO UPDATE SET {column} = excluded.{column}, updated_at = excluded.updated_at"
            ),
            Dialect::MySql => format!(
                "INSERT INTO huixi_tenant_settings (tenant, {column}, updated_at) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE {column} = VALUES({column}), updated_at = VALUES(updated_at)"
            ),
        };
        sqlx::query(&sql)
            .bind(tenant)
            .bind(json)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
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
