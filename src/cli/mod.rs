//! The command line: each subcommand parses its flags and makes one call into the modules that do the
//! work. Flags can also come from `HUIXI_*` environment variables, so a deployment configures huixi the
//! same way whether it runs a one-off analysis or a long-lived worker.

mod analysis;
mod analyze;
mod eval;
mod jobs;
mod kb;
mod serve;
mod words;

use std::path::Path;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::sensitive::{Lexicon, LineError};
use crate::store::{Store, UsageGrouping};

#[derive(Parser)]
#[command(
    name = "huixi",
    version,
    about = "会析 — analyse WeCom conversation archives"
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318, Jaeger's OTLP port).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Analyse archive files: alerts, emotion, staff score, keywords, competitors, opportunity.
    Analyze(Box<analyze::AnalyzeArgs>),
    /// The sensitive-word engine on its own.
    #[command(subcommand)]
    Words(words::WordsCommand),
    /// Tokens and cost of model calls, from the store's ledger.
    Usage {
        #[arg(long, env = "HUIXI_DB", default_value = "sqlite://huixi.db")]
        db: String,
        /// One tenant only.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "agent")]
        by: UsageGrouping,
        #[arg(long)]
        json: bool,
    },
    /// Store archive files and publish one analysis job per conversation (or re-analyse a session).
    Enqueue(Box<jobs::EnqueueArgs>),
    /// Run a worker pool: take jobs from the queue and analyse them.
    Worker(Box<jobs::WorkerArgs>),
    /// Jobs given up on: list them or put them back in the queue.
    #[command(subcommand)]
    Dlq(jobs::DlqCommand),
    /// Run the HTTP API for the CRM (and the worker pool, unless --no-worker).
    Serve(Box<serve::ServeArgs>),
    /// API tokens.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Run an eval suite: variants side by side, with a regression gate.
    Eval(Box<eval::EvalArgs>),
    /// A tenant's knowledge base (Qdrant Edge): ingest, search, remove.
    #[command(subcommand)]
    Kb(kb::KbCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Analyze(args) => analyze::analyze(*args).await,
        Command::Usage {
            db,
            tenant,
            by,
            json,
        } => usage(&db, tenant.as_deref(), by, json).await,
        Command::Words(words::WordsCommand::Scan {
            lexicon,
            whitelist,
            input,
            json,
        }) => words::scan(&lexicon, whitelist.as_deref(), &input, json),
        Command::Words(words::WordsCommand::Bench {
            lexicon_size,
            mb,
            seed,
            json,
        }) => words::bench(lexicon_size, mb, seed, json),
        Command::Enqueue(args) => jobs::enqueue(*args).await,
        Command::Worker(args) => jobs::worker(*args).await,
        Command::Dlq(command) => jobs::dlq(command).await,
        Command::Serve(args) => serve::serve(*args).await,
        Command::Token(command) => serve::token(command).await,
        Command::Eval(args) => eval::eval(*args).await,
        Command::Kb(command) => kb::kb(command).await,
    }
}

/// Loads a lexicon (and whitelist), warning about bad lines without failing on them.
fn load_lexicon(lexicon: Option<&Path>, whitelist: Option<&Path>) -> anyhow::Result<Lexicon> {
    let mut lex = match lexicon {
        Some(path) => {
            let text = read(path)?;
            let (lex, errors) = Lexicon::parse(&path.display().to_string(), &text);
            warn_lines(&errors);
            lex
        }
        None => Lexicon::starter(),
    };
    if let Some(path) = whitelist {
        let text = read(path)?;
        let (words, errors) = Lexicon::parse_whitelist(&path.display().to_string(), &text);
        warn_lines(&errors);
        lex.whitelist.extend(words);
    }
    Ok(lex)
}

/// Every archive named on the command line is a readable file, before anything is stored.
fn check_archives(files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    for f in files {
        let why = match std::fs::metadata(f) {
            Ok(m) if m.is_dir() => "is a directory, not an archive file",
            Ok(m) if m.is_file() => continue,
            Ok(_) => "is not a regular file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file",
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => "permission denied",
            Err(_) => "cannot be read",
        };
        anyhow::bail!("cannot read archive {}: {why}", f.display());
    }
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn warn_lines(errors: &[LineError]) {
    for e in errors {
        tracing::warn!("skipped line: {e}");
        eprintln!("warning: skipped {e}");
    }
}

async fn usage(
    db: &str,
    tenant: Option<&str>,
    by: UsageGrouping,
    json: bool,
) -> anyhow::Result<()> {
    let store = Store::connect(db).await?;
    let totals = store.usage_totals(tenant, by).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&totals)?);
        return Ok(());
    }
    println!(
        "{:<28} {:>7} {:>7} {:>7} {:>12} {:>12} {:>10}",
        "group", "calls", "cached", "failed", "prompt tok", "output tok", "cost"
    );
    for t in totals {
        println!(
            "{:<28} {:>7} {:>7} {:>7} {:>12} {:>12} {:>10.4}",
            t.group, t.calls, t.cached, t.failed, t.prompt_tokens, t.completion_tokens, t.cost
        );
    }
    Ok(())
}
