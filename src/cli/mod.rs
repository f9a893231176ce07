//! The command line: each subcommand parses its flags and makes one call into the modules that do the
//! work. The deployment's configuration is one [`Settings`] (defaults, a TOML file, `HUIXI_*`
//! variables, flags) flattened into every subcommand that needs it, and built into parts by
//! [`crate::startup`].

mod analyze;
mod eval;
mod ingest;
mod jobs;
mod kb;
mod serve;
mod tenant;
mod words;

use clap::{CommandFactory, Parser, Subcommand};

use crate::settings::{self, Settings};
use crate::store::UsageGrouping;

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
        /// One tenant only.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, value_enum, default_value = "agent")]
        by: UsageGrouping,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Store archive files and publish one analysis job per conversation (or re-analyse a session).
    Enqueue(Box<jobs::EnqueueArgs>),
    /// Run a worker pool: take jobs from the queue, any tenant's, and analyse them.
    Worker(Box<jobs::WorkerArgs>),
    /// Jobs given up on: list them or put them back in the queue.
    #[command(subcommand)]
    Dlq(jobs::DlqCommand),
    /// Run the HTTP API for the CRM (and the worker pool, unless --no-worker).
    Serve(Box<serve::ServeArgs>),
    /// API tokens.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// A tenant's configuration in the store: show it, set it, its agents and knowledge base.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Print the deployment's effective settings (secrets hidden), as a settings file.
    Config {
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Run an eval suite: variants side by side, with a regression gate.
    Eval(Box<eval::EvalArgs>),
    /// A tenant's knowledge base (Qdrant Edge): ingest, search, remove.
    #[command(subcommand)]
    Kb(kb::KbCommand),
    /// Messages in continuously: a tenant's WeCom finance-SDK source and its quarantine.
    #[command(subcommand)]
    Ingest(ingest::IngestCommand),
}

/// Parses the command line, with a settings file's values under the environment's. An error in the
/// file is reported like a bad flag.
pub fn parse() -> anyhow::Result<Cli> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(file) = settings::config_file(&args) {
        let mut known = vec!["HUIXI_MASTER_KEY".to_string()];
        env_names(&Cli::command(), &mut known);
        for (name, value) in settings::file_variables(&file, &known)? {
            // The environment outranks the file: only what it leaves unset is filled in.
            if std::env::var_os(&name).is_none() {
                // Single-threaded still: no runtime, no other thread reads the environment yet.
                std::env::set_var(name, value);
            }
        }
    }
    Ok(Cli::parse())
}

fn env_names(cmd: &clap::Command, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        if let Some(name) = arg.get_env().and_then(|e| e.to_str()) {
            if !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
    }
    for sub in cmd.get_subcommands() {
        env_names(sub, out);
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Analyze(args) => analyze::analyze(*args).await,
        Command::Usage {
            tenant,
            by,
            json,
            settings,
        } => usage(&settings, tenant.as_deref(), by, json).await,
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
        Command::Tenant(command) => tenant::tenant(command).await,
        Command::Config { settings } => {
            print!("{}", toml::to_string(&*settings)?);
            Ok(())
        }
        Command::Eval(args) => eval::eval(*args).await,
        Command::Kb(command) => kb::kb(command).await,
        Command::Ingest(command) => ingest::ingest(command).await,
    }
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

async fn usage(
    settings: &Settings,
    tenant: Option<&str>,
    by: UsageGrouping,
    json: bool,
) -> anyhow::Result<()> {
    let store = crate::startup::store(settings).await?;
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
