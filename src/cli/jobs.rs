//! `huixi enqueue`, `huixi worker` and `huixi dlq`: background analysis through a queue. Without
//! `--amqp` the queue is the embedded one, kept in the store.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::archive::{conversation_key, read_files, RejectedLine};
use crate::ingest::{self, Then};
use crate::queue::{Job, Lane};
use crate::settings::Settings;
use crate::startup;
use crate::worker::{self, Until};

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
    pub settings: Settings,
}

#[derive(Serialize)]
struct Enqueued {
    tenant: String,
    messages: usize,
    rejected_lines: Vec<RejectedLine>,
    /// Rejected lines beyond those listed, counted only.
    rejected_beyond: usize,
    jobs: usize,
    confirmed: usize,
    /// Real-time alerts raised as the messages were stored.
    alerts: usize,
}

pub async fn enqueue(args: EnqueueArgs) -> anyhow::Result<()> {
    let store = startup::store(&args.settings).await?;
    let (_pool, queue) = startup::queue(&args.settings, &store).await?;
    let mut report = Enqueued {
        tenant: args.tenant.clone(),
        messages: 0,
        rejected_lines: Vec::new(),
        rejected_beyond: 0,
        jobs: 0,
        confirmed: 0,
        alerts: 0,
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
        // The same path as messages arriving through the API or the puller: real-time alerts
        // raised and announced as they are stored.
        // The scan needs the tenant's lexicon and rules, not its knowledge base: a workers' shard
        // stays theirs.
        let mut scanning = args.settings.clone();
        (scanning.kb.data_dir, scanning.kb.qdrant_url) = (None, None);
        let tenants = startup::tenants(&scanning, &store)?;
        let tenant = tenants.get(&args.tenant).await?;
        let done = ingest::accept(&store, &tenant, &input.messages, Then::Published).await?;
        report.alerts = done.alerts.len();
        report.messages = input.messages.len();
        report.rejected_lines = input.rejected;
        report.rejected_beyond = input.rejected_beyond;
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
            report.rejected_lines.len() + report.rejected_beyond,
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
    #[command(flatten)]
    pub settings: Settings,
}

pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let store = startup::store(&args.settings).await?;
    let (mut pool, queue) = startup::queue(&args.settings, &store).await?;
    if let Some(c) = args.concurrency {
        pool.concurrency = c.max(1);
    }
    let ctx = Arc::new(startup::context(&args.settings, &store)?);
    let until = match (args.drain, args.max_jobs) {
        (true, _) => Until::Drained,
        (_, Some(n)) => Until::Taken(n),
        _ => Until::Stopped,
    };
    // Workers deliver the webhook outbox too: a deployment of workers and no API still announces
    // what it analysed, and replicas claim each event, so none is sent twice.
    let webhooks = tokio::spawn(crate::webhook::deliver_forever(
        store.clone(),
        args.settings.webhook_allow_private,
    ));
    // And the idle schedule: conversations of arriving messages are published once quiet.
    let schedule = tokio::spawn(ingest::schedule::run_forever(store.clone(), queue.clone()));
    let tally = worker::run(ctx, queue, &pool, until).await?;
    webhooks.abort();
    schedule.abort();
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
        settings: Box<Settings>,
    },
    /// Put every dead job back in the queue.
    Replay {
        #[command(flatten)]
        settings: Box<Settings>,
    },
}

pub async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            limit,
            json,
            settings,
        } => {
            let store = startup::store(&settings).await?;
            let (_, queue) = startup::queue(&settings, &store).await?;
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
        DlqCommand::Replay { settings } => {
            let store = startup::store(&settings).await?;
            let (_, queue) = startup::queue(&settings, &store).await?;
            println!("{} jobs replayed", queue.replay().await?);
        }
    }
    Ok(())
}
