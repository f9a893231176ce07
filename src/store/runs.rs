//! Runs: one row per `huixi analyze`, with the lines it rejected, so an operator can see later what a run
//! read, what it wrote and what it refused.

use sqlx::Row;

use super::{Dialect, Store, StoreError};
use crate::archive::RejectedLine;

#[derive(Debug, Default, Clone)]
pub struct RunRecord {
    pub messages_read: u64,
    pub messages_new: u64,
    pub sessions: u64,
    pub sessions_analysed: u64,
    pub alerts: u64,
}

impl Store {
    pub async fn start_run(&self, tenant: &str, files: &[String]) -> Result<i64, StoreError> {
        let sql = "INSERT INTO huixi_runs (tenant, started_at, files) VALUES (?, ?, ?)";
        let query = |sql| {
            sqlx::query(sql)
                .bind(tenant)
                .bind(chrono::Utc::now().timestamp_millis())
                .bind(serde_json::to_string(files).expect("strings serialize"))
        };
        // sqlx's Any driver reports no insert id for SQLite, and MySQL has no RETURNING: ask each its way.
        let id = match self.dialect {
            Dialect::Sqlite => query(&format!("{sql} RETURNING id"))
                .fetch_one(&self.pool)
                .await?
                .get::<i64, _>(0),
            Dialect::MySql => query(sql)
                .execute(&self.pool)
                .await?
                .last_insert_id()
                .ok_or_else(|| {
                    StoreError::Corrupt("the store returned no id for a new run".into())
                })?,
        };
        Ok(id)
    }

    pub async fn record_rejected(
        &self,
        run_id: i64,
        rejected: &[RejectedLine],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for r in rejected {
            sqlx::query(
                "INSERT INTO huixi_rejected_lines (run_id, file, line, error) VALUES (?, ?, ?, ?)",
            )
            .bind(run_id)
            .bind(&r.file)
            .bind(r.line as i64)
            .bind(&r.error)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn finish_run(
        &self,
        run_id: i64,
        rejected: usize,
        record: &RunRecord,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_runs SET finished_at = ?, messages_read = ?, messages_new = ?, rejected_lines = ?, \
             sessions = ?, sessions_analysed = ?, alerts = ? WHERE id = ?",
        )
        .bind(chrono::Utc::now().timestamp_millis())
        .bind(record.messages_read as i64)
        .bind(record.messages_new as i64)
        .bind(rejected as i64)
        .bind(record.sessions as i64)
        .bind(record.sessions_analysed as i64)
        .bind(record.alerts as i64)
        .bind(run_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
