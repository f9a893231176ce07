//! `huixi enqueue`, `huixi worker` and `huixi dlq`: background analysis through a queue. Without
//! `--amqp` the queue is the embedded one, kept in the store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::analysis::AnalysisArgs;
use crate::archive::{conversation_key, read_files, RejectedLine};
use crate::queue::{AmqpQueue, EmbeddedQueue, Job, Lane, Queue};
use crate::store::Store;
use crate::worker::pool::PoolDef;
use crate::worker::{self, Until};

/// Where the queue is and which pool's settings apply.
#[derive(Args)]
pub struct QueueArgs {
    /// Store URL (also the embedded queue's home).
    #[arg(long, env = "HUIXI_DB", default_value = "sqlite://huixi.db")]
    pub db: String,
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f; the embedded queue when absent.
    #[arg(long, env = "HUIXI_AMQP")]
    pub amqp: Option<String>,
    /// Pool definitions; the shipped `workers/pools.toml` when absent.
    #[arg(long, env = "HUIXI_POOLS")]
    pub pools: Option<PathBuf>,
    #[arg(long, env = "HUIXI_POOL", default_value = "analysis")]
    pub pool: String,
    /// Use this queue name instead of the pool's (to run several deployments on one broker).
    #[arg(long, env = "HUIXI_QUEUE")]
    pub queue: Option<String>,
}

impl QueueArgs {
    pub(super) async fn open(&self) -> anyhow::Result<(Store, PoolDef, Arc<Queue>)> {
        let mut pool = PoolDef::load(self.pools.as_deref(), &self.pool)?;
        if let Some(q) = &self.queue {
            pool.queue = q.clone();
        }
        let store = Store::connect(&self.db).await?;
        let queue = match &self.amqp {
            Some(url) => Queue::Amqp(Box::new(
                AmqpQueue::connect(
                    url,
                    &pool.queue,
                    &pool.retry.delays(),
                    pool.prefetch,
                    store.clone(),
                )
                .await?,
            )),
            None => Queue::Embedded(EmbeddedQueue::new(
                store.clone(),
                &pool.queue,
                Duration::from_secs(pool.lease_secs.max(1)),
            )),
        };
        Ok((store, pool, Arc::new(queue)))
    }
}

#[derive(Args)]
pub struct EnqueueArgs {
    /// Archive files: their messages are stored, then one job is published per conversation they touch.
    #[arg(required_unless_present = "session", conflicts_with = "session")]
    pub files: Vec<PathBuf>,
    /// Re-analyse one stored session (on the on-demand lane unless --lane says otherwise).
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
    #[arg(long, value_enum)]
    pub lane: Option<Lane>,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub queue: QueueArgs,
}

#[derive(Serialize)]
struct Enqueued {
    tenant: String,
    messages: usize,
    rejected_lines: Vec<RejectedLine>,
    jobs: usize,
    confirmed: usize,
}

pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    let (store, _pool, queue) = args.queue.open().await?;
    let mut report = Enqueued {
        tenant: args.tenant.clone(),
        messages: 0,
        rejected_lines: Vec::new(),
        jobs: 0,
        confirmed: 0,
    };
    let jobs: Vec<Job> = if let Some(session) = &args.session {
        let Some(conversation) = store.conversation_of(&args.tenant, session).await? else {
            bail!(
                "no session {session:?} of tenant {:?} in the store",
                args.tenant
            );
        };
        vec![Job {
            tenant: args.tenant.clone(),
            conversation,
            lane: args.lane.unwrap_or(Lane::OnDemand),
            request: None,
        }]
    } else {
        super::check_archives(&args.files)?;
        // Messages are committed before any job is published: a job never points at nothing.
        let input = read_files(&args.files)?;
        let names: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
        let run = store.start_run(&args.tenant, &names).await?;
        store.record_rejected(run, &input.rejected).await?;
        store.insert_messages(&args.tenant, &input.messages).await?;
        report.messages = input.messages.len();
        report.rejected_lines = input.rejected;
        let conversations: BTreeSet<String> =
            input.messages.iter().filter_map(conversation_key).collect();
        conversations
            .into_iter()
            .map(|conversation| Job {
                tenant: args.tenant.clone(),
                conversation,
                lane: args.lane.unwrap_or(Lane::Batch),
                request: None,
            })
            .collect()
    };
    report.jobs = jobs.len();
    report.confirmed = queue.publish(&jobs).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} messages stored, {} lines rejected, {} jobs published, {} confirmed",
            report.messages,
            report.rejected_lines.len(),
            report.jobs,
            report.confirmed
        );
        for l in &report.rejected_lines {
            println!("  rejected {}:{}: {}", l.file, l.line, l.error);
        }
    }
    if report.confirmed < report.jobs {
        bail!(
            "the queue confirmed {} of {} jobs; publish again (jobs are idempotent)",
            report.confirmed,
            report.jobs
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct WorkerArgs {
    /// Stop once nothing is waiting and nothing is in flight.
    #[arg(long, conflicts_with = "max_jobs")]
    pub drain: bool,
    /// Stop after taking this many jobs.
    #[arg(long)]
    pub max_jobs: Option<u64>,
    /// Jobs analysed at once; the pool's `concurrency` when absent.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The tenant that --lexicon and agent overrides apply to.
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let (store, mut pool, queue) = args.queue.open().await?;
    if let Some(c) = args.concurrency {
        pool.concurrency = c.max(1);
    }
    let ctx = Arc::new(args.analysis.context(&store, &args.tenant)?);
    let until = match (args.drain, args.max_jobs) {
        (true, _) => Until::Drained,
        (_, Some(n)) => Until::Taken(n),
        _ => Until::Stopped,
    };
    let tally = worker::run(ctx, queue, &pool, until).await?;
    println!("{}", serde_json::to_string(&tally)?);
    Ok(())
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Print the jobs given up on, with the reason.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        queue: QueueArgs,
    },
    /// Put every dead job back in the queue.
    Replay {
        #[command(flatten)]
        queue: QueueArgs,
    },
}

pub async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { limit, json, queue } => {
            let (_, _, queue) = queue.open().await?;
            let dead = queue.dead_letters(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&dead)?);
            } else {
                for d in &dead {
                    println!(
                        "{}  tries {}  {}\n    {}",
                        d.id, d.attempts, d.reason, d.payload
                    );
                }
                println!("{} dead jobs", dead.len());
            }
        }
        DlqCommand::Replay { queue } => {
            let (_, _, queue) = queue.open().await?;
            println!("{} jobs replayed", queue.replay().await?);
        }
    }
    Ok(())
}
