//! What the HTTP API reads and writes: tokens (only their SHA-256 is stored), re-analysis requests and
//! their progress, session and alert queries, and lexicons uploaded per tenant. Every query takes the
//! tenant, so no route can reach another tenant's rows.

use sha2::{Digest, Sha256};
use sqlx::Row;

use super::sessions::{alert, ALERT_COLUMNS};
use super::{now_ms, text, Store, StoreError};
use crate::agents::SessionResult;
use crate::sensitive::Alert;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whom a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: String,
    pub admin: bool,
}

/// Which sessions a query means; every part is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub session: Option<String>,
    /// A participant id (customer or staff member).
    pub participants: Vec<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl SessionFilter {
    /// `sql` (built around [`SessionFilter::clause`]) with the tenant and the filter's values bound.
    fn query<'q>(&self, sql: &'q str, tenant: &str) -> super::AnyQuery<'q> {
        let (_, texts, numbers) = self.sql();
        let mut q = sqlx::query(sql).bind(tenant.to_string());
        for t in texts {
            q = q.bind(t);
        }
        for n in numbers {
            q = q.bind(n);
        }
        q
    }

    fn clause(&self) -> String {
        self.sql().0
    }

    fn sql(&self) -> (String, Vec<String>, Vec<i64>) {
        let mut clause = String::from("tenant = ?");
        let mut texts = Vec::new();
        if let Some(s) = &self.session {
            clause.push_str(" AND id = ?");
            texts.push(s.clone());
        }
        // Participants are stored as a JSON array of quoted ids; a quoted id cannot match inside another.
        // The id is matched as written: `%` and `_` in it are escaped, so `?customer=%` matches a
        // customer named `%`, not every customer.
        for p in &self.participants {
            clause.push_str(" AND participants LIKE ? ESCAPE '!'");
            let quoted = serde_json::to_string(p).expect("strings serialize");
            let literal = quoted
                .replace('!', "!!")
                .replace('%', "!%")
                .replace('_', "!_");
            texts.push(format!("%{literal}%"));
        }
        let mut numbers = Vec::new();
        if let Some(f) = self.from_ms {
            clause.push_str(" AND end_ms >= ?");
            numbers.push(f);
        }
        if let Some(t) = self.to_ms {
            clause.push_str(" AND start_ms <= ?");
            numbers.push(t);
        }
        (clause, texts, numbers)
    }
}

/// A re-analysis request's progress.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RequestStatus {
    pub id: i64,
    pub conversations: i64,
    pub done: i64,
    pub finished: bool,
}

impl Store {
    /// Stores a new token for a tenant; returns its id.
    pub async fn create_token(
        &self,
        tenant: &str,
        token: &str,
        admin: bool,
        label: &str,
    ) -> Result<i64, StoreError> {
        let (tenant, hash, label, now) = (
            tenant.to_string(),
            token_hash(token),
            label.to_string(),
            now_ms(),
        );
        self.insert_returning_id(
            "INSERT INTO huixi_tokens (tenant, token_hash, admin, label, created_at) VALUES (?, ?, ?, ?, ?)",
            |q| {
                q.bind(tenant.clone())
                    .bind(hash.clone())
                    .bind(admin as i64)
                    .bind(label.clone())
                    .bind(now)
            },
        )
        .await
    }

    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE huixi_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Revokes a token through the API, unless it is the last active admin token: revoking that would
    /// lock every administrator out, with only the command line on the server to get back in.
    /// `None`: no such active token; `Some(false)`: refused as the last admin token.
    pub async fn revoke_token_keeping_an_admin(&self, id: i64) -> Result<Option<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let Some(row) =
            sqlx::query("SELECT admin FROM huixi_tokens WHERE id = ? AND revoked_at IS NULL")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        if row.try_get::<i64, _>(0)? != 0 {
            let admins: i64 = sqlx::query(
                "SELECT COUNT(*) FROM huixi_tokens WHERE admin <> 0 AND revoked_at IS NULL",
            )
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if admins <= 1 {
                return Ok(Some(false));
            }
        }
        sqlx::query("UPDATE huixi_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    pub async fn principal(&self, token: &str) -> Result<Option<Principal>, StoreError> {
        let row = sqlx::query(
            "SELECT tenant, admin FROM huixi_tokens WHERE token_hash = ? AND revoked_at IS NULL",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Principal {
                tenant: text(&r, 0)?,
                admin: r.try_get::<i64, _>(1)? != 0,
            })
        })
        .transpose()
    }

    /// Conversations holding the sessions a filter selects.
    pub async fn conversations_matching(
        &self,
        tenant: &str,
        filter: &SessionFilter,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT DISTINCT conversation FROM huixi_sessions WHERE {} ORDER BY conversation",
            filter.clause()
        );
        filter
            .query(&sql, tenant)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| text(r, 0))
            .collect()
    }

    /// Session results a filter selects, oldest first, one page.
    pub async fn session_results(
        &self,
        tenant: &str,
        filter: &SessionFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<SessionResult>, StoreError> {
        let sql = format!(
            "SELECT id, result FROM huixi_sessions WHERE {} ORDER BY start_ms, id LIMIT ? OFFSET ?",
            filter.clause()
        );
        filter
            .query(&sql, tenant)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let id = text(r, 0)?;
                serde_json::from_str(&text(r, 1)?)
                    .map_err(|e| StoreError::Corrupt(format!("session {id}: {e}")))
            })
            .collect()
    }

    pub async fn alerts(
        &self,
        tenant: &str,
        session: Option<&str>,
        severity: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Alert>, StoreError> {
        let mut sql = format!("SELECT {ALERT_COLUMNS} FROM huixi_alerts WHERE tenant = ?");
        if session.is_some() {
            sql.push_str(" AND session_id = ?");
        }
        if severity.is_some() {
            sql.push_str(" AND severity = ?");
        }
        sql.push_str(" ORDER BY id LIMIT ? OFFSET ?");
        let mut q = sqlx::query(&sql).bind(tenant);
        if let Some(s) = session {
            q = q.bind(s);
        }
        if let Some(s) = severity {
            q = q.bind(s);
        }
        q.bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(alert)
            .collect()
    }

    /// Records a re-analysis request over some conversations; returns its id.
    pub async fn create_request(
        &self,
        tenant: &str,
        query: &str,
        conversations: &[String],
    ) -> Result<i64, StoreError> {
        let (tenant, query, now) = (tenant.to_string(), query.to_string(), now_ms());
        let id = self
            .insert_returning_id(
                "INSERT INTO huixi_requests (tenant, query, created_at) VALUES (?, ?, ?)",
                |q| q.bind(tenant.clone()).bind(query.clone()).bind(now),
            )
            .await?;
        let mut tx = self.pool.begin().await?;
        for c in conversations {
            sqlx::query("INSERT INTO huixi_request_items (request_id, conversation) VALUES (?, ?)")
                .bind(id)
                .bind(c)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Marks a request's conversation analysed. Idempotent: a redelivered job changes nothing.
    pub async fn finish_request_item(
        &self,
        request: i64,
        conversation: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_request_items SET done_at = ? WHERE request_id = ? AND conversation = ? AND done_at IS NULL",
        )
        .bind(now_ms())
        .bind(request)
        .bind(conversation)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn request_status(
        &self,
        tenant: &str,
        id: i64,
    ) -> Result<Option<RequestStatus>, StoreError> {
        let exists = sqlx::query("SELECT id FROM huixi_requests WHERE tenant = ? AND id = ?")
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let mut counts = [0i64; 2];
        for (slot, extra) in counts.iter_mut().zip(["", " AND done_at IS NOT NULL"]) {
            *slot = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM huixi_request_items WHERE request_id = ?{extra}"
            ))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        }
        Ok(Some(RequestStatus {
            id,
            conversations: counts[0],
            done: counts[1],
            finished: counts[0] == counts[1],
        }))
    }

    pub async fn put_tenant_lexicon(
        &self,
        tenant: &str,
        lexicon: &str,
        whitelist: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.bump_tenant_version(&mut tx, tenant, "lexicon").await?;
        sqlx::query("DELETE FROM huixi_tenant_lexicons WHERE tenant = ?")
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO huixi_tenant_lexicons (tenant, lexicon, whitelist, updated_at) VALUES (?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(lexicon)
        .bind(whitelist)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
