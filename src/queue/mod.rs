//! Analysis jobs and the queue that carries them: RabbitMQ in production, a table in the store as the
//! embedded default. Both give the same guarantees to the worker: a job is delivered until it is
//! acknowledged (at least once), the on-demand lane is served before the batch lane, a failing job is
//! retried after a growing delay and then set aside in a dead-letter list with its reason.
//!
//! One job is one conversation of one tenant: its sessions are rebuilt from the stored messages and
//! each is analysed unless the store already holds it for the same inputs, which is what makes a
//! redelivered job harmless.

mod amqp;
mod embedded;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use amqp::AmqpQueue;
pub use embedded::EmbeddedQueue;

use crate::store::DeadJob;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// New archived sessions.
    Batch,
    /// Re-analysis asked for by a person: served ahead of any batch backlog.
    OnDemand,
}

impl Lane {
    pub fn priority(self) -> u8 {
        match self {
            Lane::Batch => 1,
            Lane::OnDemand => 9,
        }
    }
}

/// The highest priority a queue is declared with.
pub const MAX_PRIORITY: u8 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub tenant: String,
    pub conversation: String,
    pub lane: Lane,
    /// The API request this job belongs to, whose progress it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<i64>,
}

impl Job {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("jobs serialize")
    }
}

/// A job as handed to a worker. `job` is an error for a payload that does not parse: a poison message,
/// which goes straight to the dead letters.
#[derive(Debug)]
pub struct Delivery {
    pub job: Result<Job, String>,
    /// Deliveries so far, this one included.
    pub attempts: u32,
    handle: Handle,
}

#[derive(Debug)]
enum Handle {
    Embedded(i64),
    Amqp {
        acker: lapin::Acker,
        payload: Vec<u8>,
    },
}

impl Delivery {
    fn new(payload: &[u8], attempts: u32, handle: Handle) -> Delivery {
        let job = std::str::from_utf8(payload)
            .map_err(|e| format!("payload is not UTF-8: {e}"))
            .and_then(|s| {
                serde_json::from_str::<Job>(s).map_err(|e| format!("unparseable job {s:?}: {e}"))
            });
        Delivery {
            job,
            attempts,
            handle,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("RabbitMQ at {url}: {message}")]
    Broker { url: String, message: String },
}

/// The queue a pool consumes, embedded or on RabbitMQ.
pub enum Queue {
    Embedded(EmbeddedQueue),
    Amqp(Box<AmqpQueue>),
}

impl Queue {
    /// Publishes jobs; returns how many the queue confirmed holding. For RabbitMQ that is what the
    /// broker acknowledged with publisher confirms, so a crash right after loses nothing reported.
    pub async fn publish(&self, jobs: &[Job]) -> Result<usize, QueueError> {
        match self {
            Queue::Embedded(q) => q.publish(jobs).await,
            Queue::Amqp(q) => q.publish(jobs).await,
        }
    }

    /// The next job, waiting up to `wait` for one; `None` when none came.
    pub async fn next(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        match self {
            Queue::Embedded(q) => q.next(wait).await,
            Queue::Amqp(q) => q.next(wait).await,
        }
    }

    /// The lease a delivery holds, when the queue leases jobs: how often to renew it, and its job.
    /// RabbitMQ keeps an unacknowledged delivery with its consumer for as long as the channel
    /// lives: nothing to renew.
    pub fn lease(&self, d: &Delivery) -> Option<(Duration, i64)> {
        match (self, &d.handle) {
            (Queue::Embedded(q), Handle::Embedded(id)) => Some((q.renewal(), *id)),
            _ => None,
        }
    }

    /// Extends the lease of job `id` (from [`Queue::lease`]).
    pub async fn renew(&self, id: i64) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(q) => q.renew(id).await,
            Queue::Amqp(_) => Ok(()),
        }
    }

    /// The job is done and its results are committed: it is never delivered again.
    pub async fn ack(&self, d: Delivery) -> Result<(), QueueError> {
        match (self, d.handle) {
            (Queue::Embedded(q), Handle::Embedded(id)) => q.ack(id).await,
            (Queue::Amqp(q), Handle::Amqp { acker, .. }) => q.ack(&acker).await,
            _ => unreachable!("a delivery goes back to the queue it came from"),
        }
    }

    /// Delivers the job again after `delay`.
    pub async fn retry(
        &self,
        d: Delivery,
        delay: Duration,
        reason: &str,
    ) -> Result<(), QueueError> {
        match (self, d.handle) {
            (Queue::Embedded(q), Handle::Embedded(id)) => q.retry(id, delay, reason).await,
            (Queue::Amqp(q), Handle::Amqp { acker, payload }) => {
                q.retry(&acker, &payload, d.attempts, delay).await
            }
            _ => unreachable!("a delivery goes back to the queue it came from"),
        }
    }

    /// Gives up on the job: it goes to the dead letters with `reason`.
    pub async fn bury(&self, d: Delivery, reason: &str) -> Result<(), QueueError> {
        match (self, d.handle) {
            (Queue::Embedded(q), Handle::Embedded(id)) => q.bury(id, reason).await,
            (Queue::Amqp(q), Handle::Amqp { acker, payload }) => {
                q.bury(&acker, &payload, d.attempts, reason).await
            }
            _ => unreachable!("a delivery goes back to the queue it came from"),
        }
    }

    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadJob>, QueueError> {
        match self {
            Queue::Embedded(q) => q.dead_letters(limit).await,
            Queue::Amqp(q) => q.dead_letters(limit).await,
        }
    }

    /// Puts every dead job back in the queue; returns how many.
    pub async fn replay(&self) -> Result<usize, QueueError> {
        match self {
            Queue::Embedded(q) => q.replay().await,
            Queue::Amqp(q) => q.replay().await,
        }
    }

    /// Jobs waiting (including those being worked on) and dead.
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        match self {
            Queue::Embedded(q) => q.depth().await,
            Queue::Amqp(q) => q.depth().await,
        }
    }
}
