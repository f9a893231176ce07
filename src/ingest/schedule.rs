//! The idle schedule: a conversation whose messages arrive one by one is analysed once it has been
//! quiet for its tenant's idle gap — a session is only a session when it has ended — by publishing
//! its job then. The schedule lives in the store, so a restart forgets nothing, and any number of
//! replicas may run this loop: a conversation published twice is analysed once and left as it is
//! the second time (jobs are idempotent).

use std::sync::Arc;
use std::time::Duration;

use crate::queue::{Job, Lane, Queue};
use crate::store::Store;

/// Conversations published per round.
const ROUND: usize = 500;

/// Publishes due conversations forever, once a second, in `serve` and in every `worker`.
pub async fn run_forever(store: Store, queue: Arc<Queue>) {
    loop {
        match publish_due(&store, &queue).await {
            // A full round: more may be due at once.
            Ok(n) if n == ROUND => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!("idle schedule: {e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One round: the jobs of the conversations due now, published, then taken off the schedule — in
/// that order, so a crash between the two publishes again rather than never.
pub async fn publish_due(store: &Store, queue: &Queue) -> anyhow::Result<usize> {
    let due = store.due_conversations(ROUND).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let jobs: Vec<Job> = due
        .iter()
        .map(|(tenant, conversation, _)| Job {
            tenant: tenant.clone(),
            conversation: conversation.clone(),
            lane: Lane::Batch,
            request: None,
        })
        .collect();
    let confirmed = queue.publish(&jobs).await?;
    if confirmed < jobs.len() {
        anyhow::bail!(
            "the queue confirmed {confirmed} of {} jobs; they stay scheduled",
            jobs.len()
        );
    }
    for (tenant, conversation, due_at) in &due {
        store.unschedule(tenant, conversation, *due_at).await?;
    }
    Ok(due.len())
}
