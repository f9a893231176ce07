//! The webhook outbox. Events are written in the same transaction as the results they announce, so a
//! crash can neither announce results that were not stored nor store results that are never announced;
//! a delivery loop (`crate::webhook`) sends them until the tenant's receiver accepts.

use sqlx::Row;

use super::{now_ms, text, Store, StoreError};

/// An event due for delivery, with where it goes.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub id: i64,
    pub tenant: String,
    pub event: String,
    pub payload: String,
    pub attempts: i64,
    pub url: String,
    pub secret: String,
}

pub(super) async fn hooked(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT tenant FROM huixi_webhooks WHERE tenant = ?")
            .bind(tenant)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

pub(super) async fn insert_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    events: Vec<(&'static str, serde_json::Value)>,
) -> Result<(), StoreError> {
    for (event, payload) in events {
        sqlx::query(
            "INSERT INTO huixi_outbox (tenant, event, payload, next_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(event)
        .bind(payload.to_string())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    pub async fn set_webhook(
        &self,
        tenant: &str,
        url: &str,
        secret: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM huixi_webhooks WHERE tenant = ?")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO huixi_webhooks (tenant, url, secret) VALUES (?, ?, ?)")
            .bind(tenant)
            .bind(url)
            .bind(crate::secrets::seal(self.key.as_deref(), secret))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims up to `per_tenant` due events of each tenant not in `busy`, for `lease_ms`: a claimed
    /// event is not due for anyone else until then, so replicas that all run the delivery loop send
    /// each event once, and an event whose sender died is sent again after the lease. Events that
    /// failed `max_attempts` times are left where they are, given up on.
    pub async fn claim_events(
        &self,
        busy: &std::collections::BTreeSet<String>,
        per_tenant: usize,
        max_attempts: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxEvent>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT o.id, o.tenant, o.event, o.payload, o.attempts, w.url, w.secret, o.next_at \
             FROM huixi_outbox o JOIN huixi_webhooks w ON w.tenant = o.tenant \
             WHERE o.delivered_at IS NULL AND o.next_at <= ? AND o.attempts < ? ORDER BY o.id LIMIT 500",
        )
        .bind(now)
        .bind(max_attempts)
        .fetch_all(&self.pool)
        .await?;
        let mut taken: std::collections::BTreeMap<String, usize> = Default::default();
        let mut out = Vec::new();
        for r in &rows {
            let tenant = text(r, 1)?;
            let n = taken.entry(tenant.clone()).or_default();
            if busy.contains(&tenant) || *n >= per_tenant {
                continue;
            }
            let id: i64 = r.try_get(0)?;
            let next_at: i64 = r.try_get(7)?;
            // The claim holds only if nobody else moved the event since it was read.
            let claimed = sqlx::query(
                "UPDATE huixi_outbox SET next_at = ? WHERE id = ? AND next_at = ? AND delivered_at IS NULL",
            )
            .bind(now + lease_ms)
            .bind(id)
            .bind(next_at)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if claimed != 1 {
                continue;
            }
            *n += 1;
            let secret = crate::secrets::open(self.key.as_deref(), &text(r, 6)?)
                .map_err(|e| StoreError::Corrupt(format!("webhook secret of {tenant}: {e}")))?;
            out.push(OutboxEvent {
                id,
                tenant,
                event: text(r, 2)?,
                payload: text(r, 3)?,
                attempts: r.try_get(4)?,
                url: text(r, 5)?,
                secret,
            });
        }
        Ok(out)
    }

    pub async fn mark_delivered(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_outbox SET delivered_at = ?, attempts = attempts + 1 WHERE id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_failed(
        &self,
        id: i64,
        retry_in_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_outbox SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
        )
        .bind(now_ms() + retry_in_ms)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
