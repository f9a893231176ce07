//! Runs: one row per `huixi analyze`, with the lines it rejected, so an operator can see later what a run
//! read, what it wrote and what it refused.

use super::{Store, StoreError};
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
        let tenant = tenant.to_string();
        let files = serde_json::to_string(files).expect("strings serialize");
        let started = super::now_ms();
        self.insert_returning_id(
            "INSERT INTO huixi_runs (tenant, started_at, files) VALUES (?, ?, ?)",
            |q| q.bind(tenant.clone()).bind(started).bind(files.clone()),
        )
        .await
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
        .bind(super::now_ms())
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
