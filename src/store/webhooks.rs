//! The webhook outbox. Events are written in the same transaction as the results they announce, so a
//! crash can neither announce results that were not stored nor store results that are never announced;
//! a delivery loop (`crate::webhook`) sends them until the tenant's receiver accepts.

use sqlx::Row;

use super::rows::{insert_rows, Value};
use super::{now_ms, optional_text, text, Store, StoreError};

/// How long a rotated-out webhook secret keeps signing beside the new one.
pub const ROTATION_MS: i64 = 24 * 3_600_000;

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
    /// The secret before the last rotation, still signing beside `secret` for a while.
    pub previous_secret: Option<String>,
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
    let events = events.into_iter().map(|(e, p)| ("", e, p)).collect();
    insert_channel_events(tx, tenant, events).await
}

/// Events with their channel: `high` goes to the tenant's 主管 URL when it has one.
pub(super) async fn insert_channel_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    events: Vec<(&'static str, &'static str, serde_json::Value)>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let rows = events
        .into_iter()
        .map(|(channel, event, payload)| {
            vec![
                Value::from(tenant),
                Value::from(event),
                Value::Text(payload.to_string()),
                Value::Int(now),
                Value::from(channel),
            ]
        })
        .collect();
    // One statement for a commit's events, in their order (ids keep it), not one an event.
    insert_rows(
        tx,
        "INSERT INTO huixi_outbox (tenant, event, payload, next_at, channel)",
        rows,
    )
    .await?;
    Ok(())
}

impl Store {
    /// Sets the tenant's webhook. A new secret replaces the old one, which goes on signing beside it
    /// for [`ROTATION_MS`], so a receiver can move to the new secret without missing an event.
    pub async fn set_webhook(
        &self,
        tenant: &str,
        url: &str,
        high_url: Option<&str>,
        secret: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let old = sqlx::query(
            "SELECT secret, previous_secret, previous_until FROM huixi_webhooks WHERE tenant = ?",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let key = self.key.as_deref();
        let now = now_ms();
        let previous: (Option<String>, Option<i64>) = match old {
            Some(r) => {
                let current = crate::secrets::open(key, &text(&r, 0)?)
                    .map_err(|e| StoreError::Corrupt(format!("webhook secret of {tenant}: {e}")))?;
                if current != secret {
                    (Some(text(&r, 0)?), Some(now + ROTATION_MS))
                } else {
                    // The same secret again: an earlier rotation's window stays as it was.
                    (optional_text(&r, 1)?, r.try_get::<Option<i64>, _>(2)?)
                }
            }
            None => (None, None),
        };
        sqlx::query("DELETE FROM huixi_webhooks WHERE tenant = ?")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO huixi_webhooks (tenant, url, secret, high_url, previous_secret, previous_until) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(url)
        .bind(crate::secrets::seal(key, secret))
        .bind(high_url)
        .bind(previous.0)
        .bind(previous.1)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events given up on (every try failed), newest first.
    pub async fn dead_events(
        &self,
        tenant: &str,
        max_attempts: i64,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, event, payload, attempts, last_error FROM huixi_outbox WHERE tenant = ? \
             AND delivered_at IS NULL AND attempts >= ? ORDER BY id DESC LIMIT ?",
        )
        .bind(tenant)
        .bind(max_attempts)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let payload: serde_json::Value =
                    serde_json::from_str(&text(r, 2)?).unwrap_or(serde_json::Value::Null);
                Ok(serde_json::json!({
                    "id": r.try_get::<i64, _>(0)?,
                    "event": text(r, 1)?,
                    "payload": payload,
                    "attempts": r.try_get::<i64, _>(3)?,
                    "last_error": optional_text(r, 4)?,
                }))
            })
            .collect()
    }

    /// Puts the tenant's dead events back in the outbox with a fresh count of tries.
    pub async fn redeliver_dead(&self, tenant: &str, max_attempts: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE huixi_outbox SET attempts = 0, next_at = ? WHERE tenant = ? \
             AND delivered_at IS NULL AND attempts >= ?",
        )
        .bind(now_ms())
        .bind(tenant)
        .bind(max_attempts)
        .execute(&self.pool)
        .await?
        .rows_affected())
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
            "SELECT o.id, o.tenant, o.event, o.payload, o.attempts, w.url, w.secret, o.next_at, \
             o.channel, w.high_url, w.previous_secret, w.previous_until FROM huixi_outbox o JOIN huixi_webhooks w ON w.tenant = o.tenant \
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
                url: match (text(r, 8)?.as_str(), optional_text(r, 9)?) {
                    ("high", Some(high)) if !high.is_empty() => high,
                    _ => text(r, 5)?,
                },
                secret,
                previous_secret: match (optional_text(r, 10)?, r.try_get::<Option<i64>, _>(11)?) {
                    (Some(sealed), Some(until)) if until > now => Some(
                        crate::secrets::open(self.key.as_deref(), &sealed).map_err(|e| {
                            StoreError::Corrupt(format!("previous webhook secret: {e}"))
                        })?,
                    ),
                    _ => None,
                },
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
