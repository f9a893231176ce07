//! What the model layer keeps: validated answers by cache key (so an unchanged session costs no tokens
//! on re-analysis, even in a new process), and one usage row per model call for cost accounting.

use sqlx::Row;

use super::{optional_text, text, Store, StoreError};

/// A validated model answer as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One model call (or cache hit) for the usage ledger.
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub tenant: String,
    pub run_id: Option<i64>,
    pub session_id: String,
    pub agent: String,
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    pub cached: bool,
    /// ok, repaired, failed.
    pub status: String,
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// Totals of the ledger, grouped as asked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageTotal {
    pub group: String,
    pub calls: i64,
    pub cached: i64,
    pub failed: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: f64,
}

impl Store {
    pub async fn cached_answer(&self, key: &str) -> Result<Option<CachedAnswer>, StoreError> {
        let row = sqlx::query(
            "SELECT content, prompt_tokens, completion_tokens FROM huixi_llm_cache WHERE cache_key = ?",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(CachedAnswer {
                content: text(&r, 0)?,
                prompt_tokens: r.try_get::<i64, _>(1)? as u64,
                completion_tokens: r.try_get::<i64, _>(2)? as u64,
            })
        })
        .transpose()
    }

    pub async fn put_cached_answer(
        &self,
        key: &str,
        agent: &str,
        model: &str,
        answer: &CachedAnswer,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "{} INTO huixi_llm_cache (cache_key, agent, model, content, prompt_tokens, completion_tokens, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            self.dialect.insert_ignore()
        ))
        .bind(key)
        .bind(agent)
        .bind(model)
        .bind(&answer.content)
        .bind(answer.prompt_tokens as i64)
        .bind(answer.completion_tokens as i64)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_usage(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for u in rows {
            sqlx::query(
                "INSERT INTO huixi_llm_usage (tenant, run_id, session_id, agent, model, prompt_tokens, \
                 completion_tokens, cost, cached, status, error, latency_ms, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&u.tenant)
            .bind(u.run_id)
            .bind(&u.session_id)
            .bind(&u.agent)
            .bind(&u.model)
            .bind(u.prompt_tokens as i64)
            .bind(u.completion_tokens as i64)
            .bind(u.cost)
            .bind(u.cached as i64)
            .bind(&u.status)
            .bind(u.error.clone())
            .bind(u.latency_ms as i64)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Totals per `by` (agent, run, model or session) for one tenant, or for all tenants when `None`.
    pub async fn usage_totals(
        &self,
        tenant: Option<&str>,
        by: UsageGrouping,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        let column = by.column();
        let sql = format!(
            "SELECT CAST({column} AS CHAR) AS grp, COUNT(*), SUM(cached), \
             SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens), \
             SUM(cost) FROM huixi_llm_usage WHERE (? IS NULL OR tenant = ?) GROUP BY {column} ORDER BY grp"
        );
        let sql = match self.dialect {
            // SQLite has no CHAR type to cast to; TEXT is its string affinity.
            super::Dialect::Sqlite => sql.replace("AS CHAR)", "AS TEXT)"),
            super::Dialect::MySql => sql,
        };
        let rows = sqlx::query(&sql)
            .bind(tenant)
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| UsageTotal {
                group: optional_text(r, 0).ok().flatten().unwrap_or_default(),
                calls: r.get(1),
                cached: r.try_get(2).unwrap_or(0),
                failed: r.try_get(3).unwrap_or(0),
                prompt_tokens: r.try_get(4).unwrap_or(0),
                completion_tokens: r.try_get(5).unwrap_or(0),
                cost: r.try_get(6).unwrap_or(0.0),
            })
            .collect())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UsageGrouping {
    Tenant,
    Agent,
    Run,
    Model,
    Session,
}

impl UsageGrouping {
    fn column(self) -> &'static str {
        match self {
            UsageGrouping::Tenant => "tenant",
            UsageGrouping::Agent => "agent",
            UsageGrouping::Run => "run_id",
            UsageGrouping::Model => "model",
            UsageGrouping::Session => "session_id",
        }
    }
}
