//! A worker pool: takes jobs from a queue, analyses each job's conversation, and acknowledges the job
//! only after its results are committed to the store. A job that fails is retried after the pool's
//! delay and, after its last try, set aside in the dead letters with the reason; an unparseable job goes
//! there at once. SIGTERM or Ctrl-C stops taking jobs; jobs in flight finish before the process exits.

pub mod pool;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::pipeline;
use crate::queue::{Delivery, Lane, Queue};
use crate::store::Store;
use crate::tenant::Tenants;
use pool::{PoolDef, RetryPolicy};

/// What every job of a worker process shares: the store, and every tenant's configuration, looked
/// up by the job's tenant.
pub struct Context {
    pub store: Store,
    pub tenants: Tenants,
}

/// When a worker stops taking jobs (it always stops on SIGTERM or Ctrl-C too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Stopped,
    /// Nothing waiting and nothing in flight: for batch runs and tests.
    Drained,
    /// After taking this many jobs.
    Taken(u64),
}

#[derive(Debug, Default)]
struct Counters {
    taken: AtomicU64,
    done: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    /// Deadlocks and lock waits a job ran into and ran again after, inside itself.
    conflicts: AtomicU64,
    in_flight: AtomicU64,
    /// Microseconds spent in jobs, summed over slots.
    busy_us: AtomicU64,
}

/// A pool's counters when it stopped.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tally {
    pub taken: u64,
    pub done: u64,
    pub retried: u64,
    pub dead: u64,
    /// Store conflicts (deadlocks, lock waits, a busy SQLite file) that jobs retried inside themselves.
    pub conflicts: u64,
    /// Jobs settled per second, from the first job taken to the last one settled.
    pub jobs_per_sec: f64,
    /// The share of the pool's slots that held a job over that span (1.0: never a slot idle).
    pub busy_fraction: f64,
}

impl Counters {
    fn tally(&self, span: Duration, slots: usize) -> Tally {
        let secs = span.as_secs_f64();
        let busy = self.busy_us.load(Ordering::Relaxed) as f64 / 1e6;
        let settled = self.done.load(Ordering::Relaxed)
            + self.retried.load(Ordering::Relaxed)
            + self.dead.load(Ordering::Relaxed);
        let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
        Tally {
            taken: self.taken.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            jobs_per_sec: ratio(settled as f64, secs),
            busy_fraction: ratio(busy, secs * slots as f64),
        }
    }
}

/// How long one wait for a job lasts before the loop looks at its stop conditions again.
const POLL: Duration = Duration::from_millis(300);
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often questions nobody answered in conversations that went quiet are checked for 超时未回复.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How often the profiles that batch jobs made stale are folded: a customer whose conversations all
/// came in one burst is folded once for the burst, not once per conversation.
const FOLD_EVERY: Duration = Duration::from_secs(2);

pub async fn run(
    ctx: Arc<Context>,
    queue: Arc<Queue>,
    pool: &PoolDef,
    until: Until,
) -> anyhow::Result<Tally> {
    let stopping = Arc::new(AtomicBool::new(false));
    tokio::spawn(watch_signals(stopping.clone()));
    let counters = Arc::new(Counters::default());
    let slots = Arc::new(Semaphore::new(pool.concurrency));
    let mut tasks = JoinSet::new();
    let mut reported = Instant::now();
    let mut swept = Instant::now();
    let mut folding: Option<tokio::task::JoinHandle<()>> = None;
    let mut folded = Instant::now();
    let mut quiet = false;
    // The span the pool's figures cover: first job taken to last job settled.
    let first_taken: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let last_settled: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    tracing::info!(queue = %pool.queue, concurrency = pool.concurrency, "worker started");
    loop {
        if stopping.load(Ordering::Relaxed) {
            tracing::info!("stop asked: taking no more jobs, finishing those in flight");
            break;
        }
        if let Until::Taken(n) = until {
            if counters.taken.load(Ordering::Relaxed) >= n {
                break;
            }
        }
        while tasks.try_join_next().is_some() {}
        if reported.elapsed() >= REPORT_EVERY {
            report(&queue, &counters).await;
            reported = Instant::now();
        }
        if swept.elapsed() >= SWEEP_EVERY {
            sweep(&ctx).await;
            swept = Instant::now();
        }
        // One fold at a time per process, beside the jobs.
        if folded.elapsed() >= FOLD_EVERY && folding.as_ref().is_none_or(|f| f.is_finished()) {
            let ctx = ctx.clone();
            folding = Some(tokio::spawn(async move { fold(&ctx).await }));
            folded = Instant::now();
        }
        // A slot first, then a job: a job is never taken without a slot to run it in.
        let Ok(permit) = tokio::time::timeout(POLL, slots.clone().acquire_owned()).await else {
            continue;
        };
        let permit = permit.expect("the semaphore is never closed");
        let delivery = match queue.next(POLL).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                let idle = until == Until::Drained
                    && counters.in_flight.load(Ordering::Relaxed) == 0
                    && queue.depth().await?.0 == 0;
                // RabbitMQ does not count messages already pushed to this consumer, so "empty" must
                // hold across one more wait for a delivery before the worker believes it.
                if idle && quiet {
                    break;
                }
                quiet = idle;
                continue;
            }
            Err(e) => {
                tracing::warn!("cannot take a job: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        quiet = false;
        counters.taken.fetch_add(1, Ordering::Relaxed);
        counters.in_flight.fetch_add(1, Ordering::Relaxed);
        first_taken.get_or_init(Instant::now);
        let (ctx, queue, counters, retry, last_settled) = (
            ctx.clone(),
            queue.clone(),
            counters.clone(),
            pool.retry.clone(),
            last_settled.clone(),
        );
        // The job stays this worker's while it runs and until it is settled, however long: a lease
        // that lapsed mid-job would hand it to another worker, which would read the conversation
        // again. Renewed from a task of its own, so a job busy on the CPU does not hold it up.
        let renewal = queue.lease(&delivery).map(|(every, id)| {
            let queue = queue.clone();
            let conversation = delivery
                .job
                .as_ref()
                .map_or(String::new(), |j| j.conversation.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = queue.renew(id).await {
                        tracing::warn!(%conversation, "cannot renew the job's lease: {e}");
                    }
                }
            })
        });
        tasks.spawn(async move {
            let started = Instant::now();
            process(&ctx, &queue, delivery, &retry, &counters).await;
            if let Some(r) = renewal {
                r.abort();
            }
            counters
                .busy_us
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            metrics::histogram!("huixi_job_seconds").record(started.elapsed().as_secs_f64());
            *last_settled.lock().expect("clock lock") = Some(Instant::now());
            counters.in_flight.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    if let Some(f) = folding {
        let _ = f.await;
    }
    // What the last jobs left stale is folded before the process goes.
    fold(&ctx).await;
    report(&queue, &counters).await;
    let span = match (first_taken.get(), *last_settled.lock().expect("clock lock")) {
        (Some(a), Some(b)) => b.duration_since(*a),
        _ => Duration::ZERO,
    };
    Ok(counters.tally(span, pool.concurrency))
}

async fn sweep(ctx: &Context) {
    match ctx.store.raise_quiet_timeouts(None).await {
        Ok(raised) if !raised.is_empty() => {
            tracing::info!(
                alerts = raised.len(),
                "超时未回复 raised in quiet conversations"
            );
            metrics::counter!("huixi_alerts_total", "severity" => "medium")
                .increment(raised.len() as u64);
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("超时未回复 sweep: {e}"),
    }
}

async fn report(queue: &Queue, counters: &Counters) {
    let t = counters.tally(Duration::ZERO, 1);
    let (waiting, dead_letters) = queue.depth().await.unwrap_or((0, 0));
    tracing::info!(
        taken = t.taken,
        done = t.done,
        retried = t.retried,
        dead_lettered = t.dead,
        in_flight = counters.in_flight.load(Ordering::Relaxed),
        lag = waiting,
        dead_letters,
        "pool"
    );
}

/// Resolves on SIGTERM or Ctrl-C: the deployment asking the process to stop.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

async fn watch_signals(stopping: Arc<AtomicBool>) {
    shutdown_signal().await;
    stopping.store(true, Ordering::Relaxed);
}

async fn process(
    ctx: &Context,
    queue: &Queue,
    d: Delivery,
    retry: &RetryPolicy,
    counters: &Counters,
) {
    let job = match &d.job {
        Ok(job) => job.clone(),
        Err(reason) => {
            let reason = format!("poison: {reason}");
            tracing::warn!("{reason}");
            if let Err(e) = queue.bury(d, &reason).await {
                tracing::error!("cannot dead-letter a poison job: {e}");
            }
            counters.dead.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    settle(ctx, queue, d, &job, retry, counters).await
}

/// Runs a job and settles it with the queue: acknowledged, retried later or dead-lettered.
async fn settle(
    ctx: &Context,
    queue: &Queue,
    d: Delivery,
    job: &crate::queue::Job,
    retry: &RetryPolicy,
    counters: &Counters,
) {
    // A panic inside one job is that job's failure, retried and then dead-lettered like any other,
    // never the pool's: the slot is freed and the delivery settled.
    let outcome = match std::panic::AssertUnwindSafe(run_job(ctx, job, counters))
        .catch_unwind()
        .await
    {
        Ok(outcome) => outcome,
        Err(panic) => Err(anyhow::anyhow!("panicked: {}", panic_message(&*panic))),
    };
    let attempts = d.attempts;
    let acted = match outcome {
        Ok(written) => {
            tracing::debug!(tenant = %job.tenant, conversation = %job.conversation,
                written, "job done");
            if let Some(request) = job.request {
                if let Err(e) = ctx
                    .store
                    .finish_request_item(request, &job.conversation)
                    .await
                {
                    tracing::warn!("cannot record progress of request {request}: {e}");
                }
            }
            counters.done.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("huixi_jobs_total", "outcome" => "done").increment(1);
            queue.ack(d).await
        }
        Err(e) if attempts >= retry.max_tries => {
            let reason = format!("failed {attempts} times, last: {e:#}");
            tracing::warn!(tenant = %job.tenant, conversation = %job.conversation, "{reason}");
            counters.dead.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("huixi_jobs_total", "outcome" => "dead").increment(1);
            queue.bury(d, &reason).await
        }
        Err(e) => {
            let delay = retry.delay(attempts);
            tracing::info!(tenant = %job.tenant, conversation = %job.conversation, attempts,
                "job failed, retrying in {delay:?}: {e:#}");
            counters.retried.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("huixi_jobs_total", "outcome" => "retried").increment(1);
            queue.retry(d, delay, &format!("{e:#}")).await
        }
    };
    // The job stays with the queue (lease or unacknowledged delivery) and comes back: harmless, since
    // analysing a conversation again writes nothing that is already there.
    if let Err(e) = acted {
        tracing::error!("could not settle a job with the queue, it will be delivered again: {e}");
    }
}

/// Tries a job gets inside itself when the store reports a deadlock or a lock wait: those say
/// nothing about the job, so it is run again at once rather than parked in a retry queue.
const TRANSIENT_TRIES: u32 = 5;

/// Analyses a job's conversation and commits it; an on-demand job folds its customers' profiles at
/// once (a person is waiting), a batch job leaves them stale for the pool's fold. Returns the sessions
/// written.
async fn run_job(
    ctx: &Context,
    job: &crate::queue::Job,
    counters: &Counters,
) -> anyhow::Result<usize> {
    let mut tries = 0;
    loop {
        tries += 1;
        let outcome = async {
            // Looked up per job: any worker serves any tenant, with that tenant's configuration.
            let tenant = ctx.tenants.get(&job.tenant).await?;
            // A person asking is a reason to ask the model again about answers given up on.
            let asked = job.lane == Lane::OnDemand;
            let (out, committed) = pipeline::analyze_conversation(
                &ctx.tenants,
                &tenant,
                None,
                &job.conversation,
                asked,
            )
            .await?;
            if job.lane == Lane::OnDemand {
                pipeline::refresh_now(&ctx.tenants, &tenant, &out.customers()).await?;
            }
            anyhow::Ok(committed.sessions)
        }
        .await;
        match outcome {
            Err(e) if tries < TRANSIENT_TRIES && transient(&e) => {
                metrics::counter!("huixi_store_conflicts_total").increment(1);
                counters.conflicts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(conversation = %job.conversation, tries, "store conflict, running again: {e:#}");
                tokio::time::sleep(Duration::from_millis(10 * u64::from(tries))).await;
            }
            other => return other,
        }
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A deadlock, a lock wait that timed out, or a busy SQLite file: the store's way of saying "again".
pub fn transient(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let db = cause
            .downcast_ref::<sqlx::Error>()
            .or_else(|| match cause.downcast_ref::<crate::store::StoreError>() {
                Some(crate::store::StoreError::Sql(e)) => Some(e),
                _ => None,
            })
            .and_then(|e| e.as_database_error());
        let Some(db) = db else {
            return false;
        };
        let code = db.code().unwrap_or_default();
        let message = db.message();
        // 40001: MySQL's deadlock (1213); 1205: lock wait timeout; 5 and 517: SQLITE_BUSY.
        matches!(code.as_ref(), "40001" | "5" | "517")
            || message.contains("Lock wait timeout")
            || message.contains("Deadlock found")
            || message.contains("database is locked")
    })
}

/// Folds the profiles the pool's batch jobs left stale, every tenant's, each customer once.
async fn fold(ctx: &Context) {
    match pipeline::fold_stale(&ctx.tenants, None).await {
        Ok(folded) if folded.is_empty() => {}
        Ok(folded) => tracing::debug!(profiles = folded.len(), "stale profiles folded"),
        Err(e) if transient(&e) => tracing::debug!("fold: store conflict, next round: {e:#}"),
        Err(e) => tracing::warn!("folding stale profiles: {e:#}"),
    }
}
