//! The embedded queue's table. A job is leased, not taken: a worker killed mid-job leaves a lease that
//! runs out, and the job is handed out again. Deleting the row is the acknowledgement.
//!
//! Tenants share a lane fairly by virtual time: each job gets a `fair_rank` when it is queued, and a
//! claim takes the lowest rank of the most urgent lane (see [`Store::push_jobs`]).

use std::collections::BTreeMap;

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

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    /// Its lane's priority.
    pub priority: u8,
    /// Whose share of the lane it takes.
    pub tenant: &'a str,
    pub payload: String,
}

impl Store {
    /// Adds jobs in one transaction: all are queued or none.
    ///
    /// Each job is given a rank in its lane, which claims follow (after priority): a tenant's jobs
    /// are numbered on from its last one, but from no lower than the rank of the first job the lane
    /// would hand out now (its "virtual time"; the highest rank ever given when nothing is due). A
    /// tenant that queues 10 jobs behind another's backlog of 10,000 thus gets ranks beside the
    /// backlog's next 10 and waits for about 10 of them, not 10,000; a tenant that comes back after
    /// idling starts at the present, with no credit saved up to crowd others out with. Ranks are
    /// per lane, so one tenant's batch backlog does not push its on-demand jobs behind others'.
    pub async fn push_jobs(&self, queue: &str, jobs: &[NewJob<'_>]) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now = now_ms();
        if self.dialect == Dialect::Sqlite {
            // A write first, so the transaction holds the write lock before it reads the ranks: a
            // deferred transaction that reads and then writes fails outright (busy snapshot) when
            // another process wrote in between, where one that starts with a write waits its turn.
            sqlx::query("UPDATE huixi_job_ranks SET last_rank = last_rank WHERE 1 = 0")
                .execute(&mut *tx)
                .await?;
        }
        // (lane, tenant) in one fixed order: two publishers on MariaDB lock the rank rows alike.
        let mut groups: BTreeMap<(u8, &str), Vec<&NewJob<'_>>> = BTreeMap::new();
        for job in jobs {
            groups
                .entry((job.priority, job.tenant))
                .or_default()
                .push(job);
        }
        let mut floors: BTreeMap<u8, i64> = BTreeMap::new();
        for ((priority, tenant), members) in groups {
            let floor = match floors.get(&priority) {
                Some(f) => *f,
                None => {
                    let f = lane_floor(&mut tx, queue, priority, now).await?;
                    floors.insert(priority, f);
                    f
                }
            };
            let n = members.len() as i64;
            // Claims the tenant's next n ranks in one statement, so two publishers never share one.
            let upsert = match self.dialect {
                Dialect::Sqlite => {
                    "INSERT INTO huixi_job_ranks (queue, priority, tenant, last_rank) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (queue, priority, tenant) DO UPDATE SET last_rank = MAX(last_rank + ?, excluded.last_rank)"
                }
                Dialect::MySql => {
                    "INSERT INTO huixi_job_ranks (queue, priority, tenant, last_rank) VALUES (?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE last_rank = GREATEST(last_rank + ?, VALUES(last_rank))"
                }
            };
            sqlx::query(upsert)
                .bind(queue)
                .bind(priority as i64)
                .bind(tenant)
                .bind(floor + n - 1)
                .bind(n)
                .execute(&mut *tx)
                .await?;
            let last: i64 = sqlx::query_scalar(
                "SELECT last_rank FROM huixi_job_ranks WHERE queue = ? AND priority = ? AND tenant = ?",
            )
            .bind(queue)
            .bind(priority as i64)
            .bind(tenant)
            .fetch_one(&mut *tx)
            .await?;
            for (i, job) in members.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO huixi_jobs (queue, priority, fair_rank, payload, state, available_at, created_at) \
                     VALUES (?, ?, ?, ?, 'ready', ?, ?)",
                )
                .bind(queue)
                .bind(priority as i64)
                .bind(last - n + 1 + i as i64)
                .bind(&job.payload)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(jobs.len())
    }

    /// Leases the most urgent job that is due: highest priority first, then lowest fair rank, then
    /// oldest. A leased job whose lease ran out (its worker died) counts as due.
    pub async fn claim_job(
        &self,
        queue: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let now = now_ms();
        // Two reads, each the first row of an index range in the index's own order (priority
        // descending, then fair rank, then oldest): a job whose worker died (few: only jobs in
        // flight are leased), else the most urgent ready one. One read with an OR of both would sort
        // every job of the queue at each claim, and draining a backlog would cost its square.
        const DUE: [&str; 2] = [
            "queue = ? AND state = 'leased' AND lease_until < ? ORDER BY priority DESC, fair_rank, id LIMIT 1",
            "queue = ? AND state = 'ready' AND available_at <= ? ORDER BY priority DESC, fair_rank, id LIMIT 1",
        ];
        let mut row = None;
        for due in DUE {
            row = match self.dialect {
                // One statement, so two workers of one SQLite file never lease the same row. The
                // lease runs from when the statement runs, not from when it was asked for: it may
                // wait on another writer longer than a lease, and must not lease a job already lapsed.
                Dialect::Sqlite => {
                    sqlx::query(&format!(
                        "UPDATE huixi_jobs SET state = 'leased', \
                         lease_until = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) + ?, \
                         attempts = attempts + 1 \
                         WHERE id = (SELECT id FROM huixi_jobs WHERE {due}) RETURNING id, payload, attempts"
                    ))
                    .bind(lease_ms)
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
                    // From now, once the row is locked: the lock may have been waited for.
                    sqlx::query(
                        "UPDATE huixi_jobs SET state = 'leased', lease_until = ?, attempts = attempts + 1 \
                         WHERE id = ?",
                    )
                    .bind(now_ms() + lease_ms)
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

    /// Extends the lease of a job still being worked on.
    pub async fn renew_job(&self, id: i64, lease_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE huixi_jobs SET lease_until = ? WHERE id = ? AND state = 'leased'")
            .bind(now_ms() + lease_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
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

    /// Records that these tenants publish batch jobs to RabbitMQ queue `queue`, where each has a queue
    /// of its own: the list every worker reads to know which queues to consume.
    pub async fn register_queue_tenants(
        &self,
        queue: &str,
        tenants: &[&str],
    ) -> Result<(), StoreError> {
        let insert = match self.dialect {
            Dialect::Sqlite => {
                "INSERT OR IGNORE INTO huixi_queue_tenants (queue, tenant) VALUES (?, ?)"
            }
            Dialect::MySql => {
                "INSERT IGNORE INTO huixi_queue_tenants (queue, tenant) VALUES (?, ?)"
            }
        };
        let mut tx = self.pool.begin().await?;
        for tenant in tenants {
            sqlx::query(insert)
                .bind(queue)
                .bind(*tenant)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tenants registered for RabbitMQ queue `queue`, in name order.
    pub async fn queue_tenants(&self, queue: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT tenant FROM huixi_queue_tenants WHERE queue = ? ORDER BY tenant")
                .bind(queue)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| text(r, 0)).collect()
    }
}

/// The rank a tenant with nothing queued starts from in a lane: that of the job the lane would hand
/// out now, or, when none is due, the highest rank ever given in the lane (everything up to it has
/// been handed out). Never 0 after a drain, or a tenant back from idling would take the lane until
/// its ranks caught up with those that never stopped.
async fn lane_floor(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    queue: &str,
    priority: u8,
    now: i64,
) -> Result<i64, StoreError> {
    let first: Option<i64> = sqlx::query_scalar(
        "SELECT fair_rank FROM huixi_jobs WHERE queue = ? AND state = 'ready' AND priority = ? \
         AND available_at <= ? ORDER BY priority DESC, fair_rank, id LIMIT 1",
    )
    .bind(queue)
    .bind(priority as i64)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(rank) = first {
        return Ok(rank);
    }
    let highest: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(last_rank) FROM huixi_job_ranks WHERE queue = ? AND priority = ?",
    )
    .bind(queue)
    .bind(priority as i64)
    .fetch_one(&mut **tx)
    .await?;
    Ok(highest.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::NewJob;
    use crate::store::Store;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
        Store::connect(&url).await.unwrap()
    }

    async fn push(store: &Store, priority: u8, tenant: &str, n: usize) {
        let jobs: Vec<NewJob<'_>> = (0..n)
            .map(|i| NewJob {
                priority,
                tenant,
                payload: format!("{tenant}:{i}"),
            })
            .collect();
        store.push_jobs("q", &jobs).await.unwrap();
    }

    /// The tenants of the next `n` claims, each job finished as it is claimed.
    async fn drain(store: &Store, n: usize) -> Vec<String> {
        let mut taken = Vec::new();
        for _ in 0..n {
            let Some(job) = store.claim_job("q", 60_000).await.unwrap() else {
                break;
            };
            store.finish_job(job.id).await.unwrap();
            taken.push(job.payload.split(':').next().unwrap_or("").to_string());
        }
        taken
    }

    #[tokio::test]
    async fn a_late_tenant_interleaves_with_a_backlog_and_on_demand_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        push(&store, 1, "a", 1_000).await;
        assert_eq!(drain(&store, 100).await, vec!["a"; 100]);
        push(&store, 1, "b", 10).await;
        push(&store, 9, "a", 1).await;
        let next = drain(&store, 21).await;
        assert_eq!(next[0], "a", "the on-demand job first: {next:?}");
        let b = next.iter().filter(|t| *t == "b").count();
        assert_eq!(b, 10, "all of b's within 20 claims: {next:?}");
    }

    #[tokio::test]
    async fn a_tenant_back_from_idling_saves_up_no_credit() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        push(&store, 1, "a", 100).await;
        push(&store, 1, "b", 5).await;
        assert_eq!(drain(&store, 200).await.len(), 105);
        // Both publish after the lane drained: b, quiet for most of a's backlog, starts at the
        // present and shares the lane with a rather than taking it for 50 jobs.
        push(&store, 1, "b", 50).await;
        push(&store, 1, "a", 50).await;
        let next = drain(&store, 20).await;
        let a = next.iter().filter(|t| *t == "a").count();
        assert!((9..=11).contains(&a), "{next:?}");
    }
}
