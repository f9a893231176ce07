//! The embedded queue's table. A job is leased, not taken: a worker killed mid-job leaves a lease that
//! runs out, and the job is handed out again. Deleting the row is the acknowledgement.

use sqlx::Row;

use super::{now_ms, text, Dialect, Store, StoreError};

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: i64,
    pub payload: String,
    /// Deliveries so far, this one included.
    pub attempts: u32,
}

/// A job given up on, with the reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadJob {
    pub id: String,
    pub payload: String,
    pub attempts: u32,
    pub reason: String,
}

impl Store {
    /// Adds jobs in one transaction: all are queued or none.
    pub async fn push_jobs(&self, queue: &str, jobs: &[(u8, String)]) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        for (priority, payload) in jobs {
            sqlx::query(
                "INSERT INTO huixi_jobs (queue, priority, payload, state, available_at, created_at) \
                 VALUES (?, ?, ?, 'ready', ?, ?)",
            )
            .bind(queue)
            .bind(*priority as i64)
            .bind(payload)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(jobs.len())
    }

    /// Leases the most urgent job that is due: highest priority first, then oldest. A leased job whose
    /// lease ran out (its worker died) counts as due.
    pub async fn claim_job(
        &self,
        queue: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let now = now_ms();
        // Two reads, each the first row of an index range in the index's own order (priority
        // descending, then oldest): a job whose worker died (few: only jobs in flight are leased),
        // else the most urgent ready one. One read with an OR of both would sort every job of the
        // queue at each claim, and draining a backlog would cost its square.
        const DUE: [&str; 2] = [
            "queue = ? AND state = 'leased' AND lease_until < ? ORDER BY priority DESC, id LIMIT 1",
            "queue = ? AND state = 'ready' AND available_at <= ? ORDER BY priority DESC, id LIMIT 1",
        ];
        let mut row = None;
        for due in DUE {
            row = match self.dialect {
                // One statement, so two workers of one SQLite file never lease the same row.
                Dialect::Sqlite => {
                    sqlx::query(&format!(
                        "UPDATE huixi_jobs SET state = 'leased', lease_until = ?, attempts = attempts + 1 \
                         WHERE id = (SELECT id FROM huixi_jobs WHERE {due}) RETURNING id, payload, attempts"
                    ))
                    .bind(now + lease_ms)
                    .bind(queue)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?
                }
                // MariaDB has no UPDATE … RETURNING: lock the row, skipping rows other workers hold.
                Dialect::MySql => {
                    let mut tx = self.pool.begin().await?;
                    let found = sqlx::query(&format!(
                        "SELECT id FROM huixi_jobs WHERE {due} FOR UPDATE SKIP LOCKED"
                    ))
                    .bind(queue)
                    .bind(now)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(found) = found else {
                        tx.rollback().await?;
                        continue;
                    };
                    let id: i64 = found.try_get(0)?;
                    sqlx::query(
                        "UPDATE huixi_jobs SET state = 'leased', lease_until = ?, attempts = attempts + 1 \
                         WHERE id = ?",
                    )
                    .bind(now + lease_ms)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    let row = sqlx::query("SELECT id, payload, attempts FROM huixi_jobs WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    row
                }
            };
            if row.is_some() {
                break;
            }
        }
        row.map(|r| {
            Ok(ClaimedJob {
                id: r.try_get(0)?,
                payload: text(&r, 1)?,
                attempts: r.try_get::<i64, _>(2)? as u32,
            })
        })
        .transpose()
    }

    pub async fn finish_job(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM huixi_jobs WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn retry_job(&self, id: i64, delay_ms: i64, error: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE huixi_jobs SET state = 'ready', available_at = ?, lease_until = 0, last_error = ? \
             WHERE id = ?",
        )
        .bind(now_ms() + delay_ms)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn bury_job(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE huixi_jobs SET state = 'dead', last_error = ? WHERE id = ?")
            .bind(reason)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn dead_jobs(&self, queue: &str, limit: i64) -> Result<Vec<DeadJob>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, payload, attempts, last_error FROM huixi_jobs \
             WHERE queue = ? AND state = 'dead' ORDER BY id LIMIT ?",
        )
        .bind(queue)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadJob {
                    id: r.try_get::<i64, _>(0)?.to_string(),
                    payload: text(r, 1)?,
                    attempts: r.try_get::<i64, _>(2)? as u32,
                    reason: super::optional_text(r, 3)?.unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Puts dead jobs back in line with a fresh count of attempts.
    pub async fn replay_dead(&self, queue: &str) -> Result<usize, StoreError> {
        let done = sqlx::query(
            "UPDATE huixi_jobs SET state = 'ready', attempts = 0, available_at = ?, lease_until = 0 \
             WHERE queue = ? AND state = 'dead'",
        )
        .bind(now_ms())
        .bind(queue)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() as usize)
    }

    /// Jobs waiting (ready or leased) and dead.
    pub async fn queue_depth(&self, queue: &str) -> Result<(u64, u64), StoreError> {
        let mut counts = [0u64; 2];
        for (slot, condition) in counts.iter_mut().zip(["state <> 'dead'", "state = 'dead'"]) {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM huixi_jobs WHERE queue = ? AND {condition}"
            ))
            .bind(queue)
            .fetch_one(&self.pool)
            .await?;
            *slot = n as u64;
        }
        Ok((counts[0], counts[1]))
    }
}
