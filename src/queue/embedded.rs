//! The embedded queue: jobs are rows of `huixi_jobs` in the store, leased by workers, and the lease of
//! a job in flight is renewed while it runs (a job may outlast one lease: a long session read by a
//! model). A worker killed mid-job holds its lease until it runs out; the job is then handed out
//! again. Tenants share each
//! lane by fair rank (virtual time, given at publish), so a big backlog delays others' jobs by
//! about as many jobs as they queued, not by the backlog's length.

use std::time::Duration;

use super::{Delivery, Handle, Job, QueueError};
use crate::store::{DeadJob, NewJob, Store};

pub struct EmbeddedQueue {
    store: Store,
    name: String,
    lease: Duration,
    poll: Duration,
}

impl EmbeddedQueue {
    pub fn new(store: Store, name: &str, lease: Duration) -> EmbeddedQueue {
        EmbeddedQueue {
            store,
            name: name.to_string(),
            lease,
            poll: Duration::from_millis(100),
        }
    }

    pub async fn publish(&self, jobs: &[Job]) -> Result<usize, QueueError> {
        let rows: Vec<NewJob<'_>> = jobs
            .iter()
            .map(|j| NewJob {
                priority: j.lane.priority(),
                tenant: &j.tenant,
                payload: j.encode(),
            })
            .collect();
        Ok(self.store.push_jobs(&self.name, &rows).await?)
    }

    pub async fn next(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let started = std::time::Instant::now();
        let lease = self.lease.as_millis() as i64;
        loop {
            if let Some(job) = self.store.claim_job(&self.name, lease).await? {
                tracing::debug!(id = job.id, attempts = job.attempts, "claimed");
                return Ok(Some(Delivery::new(
                    job.payload.as_bytes(),
                    job.attempts,
                    Handle::Embedded(job.id),
                )));
            }
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Ok(None);
            }
            tokio::time::sleep(self.poll.min(left)).await;
        }
    }

    /// How often a job in flight has its lease extended: three times a lease, so one late renewal
    /// does not let the lease lapse.
    pub fn renewal(&self) -> Duration {
        self.lease / 3
    }

    pub async fn renew(&self, id: i64) -> Result<(), QueueError> {
        Ok(self
            .store
            .renew_job(id, self.lease.as_millis() as i64)
            .await?)
    }

    pub async fn ack(&self, id: i64) -> Result<(), QueueError> {
        Ok(self.store.finish_job(id).await?)
    }

    pub async fn retry(&self, id: i64, delay: Duration, reason: &str) -> Result<(), QueueError> {
        Ok(self
            .store
            .retry_job(id, delay.as_millis() as i64, reason)
            .await?)
    }

    pub async fn bury(&self, id: i64, reason: &str) -> Result<(), QueueError> {
        Ok(self.store.bury_job(id, reason).await?)
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadJob>, QueueError> {
        Ok(self.store.dead_jobs(&self.name, limit as i64).await?)
    }

    pub async fn replay(&self) -> Result<usize, QueueError> {
        Ok(self.store.replay_dead(&self.name).await?)
    }

    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        Ok(self.store.queue_depth(&self.name).await?)
    }
}
