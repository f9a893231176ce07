//! The command line: each subcommand parses its flags and makes one call into the modules that do the
//! work. Flags can also come from `HUIXI_*` environment variables, so a deployment configures huixi the
//! same way whether it runs a one-off analysis or a long-lived service.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::agents::llm::{LlmAnalysers, Prices};
use crate::agents::offline::OfflineAnalysers;
use crate::agents::{AgentSet, Sources};
use crate::llm::{AnswerCache, Endpoint, LlmConfig};
use crate::pipeline::{self, Options, Report};
use crate::sensitive::{self, Engine, Lexicon, LineError, Registry, RiskRules, Severity};
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Analyse archive files: alerts, emotion, staff score, keywords, competitors, opportunity.
    Analyze(Box<AnalyzeArgs>),
    /// The sensitive-word engine on its own.
    #[command(subcommand)]
    Words(WordsCommand),
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
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// WeCom archive files, one JSON message a line.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
    /// Store URL: sqlite://FILE (created when missing) or mysql://user:password@host:port/database.
    #[arg(long, env = "HUIXI_DB", default_value = "sqlite://huixi.db")]
    pub db: String,
    /// Sensitive-word lexicon (`word,category,severity[,pinyin]`); the shipped starter list when absent.
    #[arg(long, env = "HUIXI_LEXICON")]
    pub lexicon: Option<PathBuf>,
    /// Whitelist: words whose matches are suppressed (e.g. 微信支付 when 微信 is sensitive).
    #[arg(long, env = "HUIXI_WHITELIST")]
    pub whitelist: Option<PathBuf>,
    /// The tenant's competitors (`name,alias|alias`); the shipped example when absent.
    #[arg(long, env = "HUIXI_COMPETITORS")]
    pub competitors: Option<PathBuf>,
    /// A gap longer than this between two messages of a conversation starts a new session.
    #[arg(long, env = "HUIXI_IDLE_GAP_MINUTES", default_value_t = 30)]
    pub idle_gap_minutes: i64,
    /// Red packets of at least this many yuan raise an alert.
    #[arg(long, env = "HUIXI_REDPACKET_THRESHOLD_YUAN", default_value_t = 200.0)]
    pub redpacket_threshold_yuan: f64,
    /// Transfers announced in chat of at least this many yuan raise an alert.
    #[arg(long, env = "HUIXI_TRANSFER_THRESHOLD_YUAN", default_value_t = 1000.0)]
    pub transfer_threshold_yuan: f64,
    /// Print one JSON document on stdout instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// The model endpoint. Without `--llm-base-url` the offline analysers answer everything.
#[derive(Args)]
pub struct LlmArgs {
    /// An OpenAI-compatible API base, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1.
    #[arg(long, env = "HUIXI_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// Model for agents that do not name their own.
    #[arg(long, env = "HUIXI_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,
    #[arg(
        long,
        env = "HUIXI_LLM_API_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub llm_api_key: String,
    /// One call per session for all agents (a combined schema) instead of one call per agent.
    #[arg(long, env = "HUIXI_LLM_COMBINED")]
    pub llm_combined: bool,
    #[arg(long, env = "HUIXI_LLM_TIMEOUT_SECS", default_value_t = 60)]
    pub llm_timeout_secs: u64,
    #[arg(long, env = "HUIXI_LLM_MAX_RETRIES", default_value_t = 4)]
    pub llm_max_retries: u32,
    /// Requests in flight to the endpoint at once.
    #[arg(long, env = "HUIXI_LLM_CONCURRENCY", default_value_t = 8)]
    pub llm_concurrency: usize,
    /// Requests in flight for one tenant at once.
    #[arg(long, env = "HUIXI_LLM_TENANT_CONCURRENCY", default_value_t = 4)]
    pub llm_tenant_concurrency: usize,
    /// Do not send `response_format: json_schema` (for servers that reject it); answers are still validated.
    #[arg(long, env = "HUIXI_LLM_NO_JSON_SCHEMA")]
    pub llm_no_json_schema: bool,
    /// Price of a million prompt tokens, for cost accounting.
    #[arg(long, env = "HUIXI_LLM_PRICE_INPUT", default_value_t = 0.0)]
    pub llm_price_input: f64,
    /// Price of a million completion tokens.
    #[arg(long, env = "HUIXI_LLM_PRICE_OUTPUT", default_value_t = 0.0)]
    pub llm_price_output: f64,
    /// Directory with edited agent definitions (`NAME.toml`, schemas, `tenants/T/NAME.toml`).
    #[arg(long, env = "HUIXI_AGENTS_DIR")]
    pub agents_dir: Option<PathBuf>,
    /// Directory with edited prompt templates (`*.hbs`).
    #[arg(long, env = "HUIXI_PROMPTS_DIR")]
    pub prompts_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum WordsCommand {
    /// Scan texts, one a line, and print every match with offsets into the original line.
    Scan {
        #[arg(long)]
        lexicon: PathBuf,
        #[arg(long)]
        whitelist: Option<PathBuf>,
        /// Input file, or - for stdin.
        #[arg(long, default_value = "-")]
        input: String,
        #[arg(long)]
        json: bool,
    },
    /// Throughput of the full scan against raw Aho-Corasick and a naive loop, on a fixed-seed corpus.
    Bench {
        #[arg(long, default_value_t = 50_000)]
        lexicon_size: usize,
        #[arg(long, default_value_t = 100)]
        mb: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Analyze(args) => analyze(*args).await,
        Command::Usage {
            db,
            tenant,
            by,
            json,
        } => usage(&db, tenant.as_deref(), by, json).await,
        Command::Words(WordsCommand::Scan {
            lexicon,
            whitelist,
            input,
            json,
        }) => words_scan(&lexicon, whitelist.as_deref(), &input, json),
        Command::Words(WordsCommand::Bench {
            lexicon_size,
            mb,
            seed,
            json,
        }) => {
            let report = sensitive::bench::run(lexicon_size, mb, seed);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(())
        }
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

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn warn_lines(errors: &[LineError]) {
    for e in errors {
        tracing::warn!("skipped line: {e}");
        eprintln!("warning: skipped {e}");
    }
}

fn words_scan(
    lexicon: &Path,
    whitelist: Option<&Path>,
    input: &str,
    json: bool,
) -> anyhow::Result<()> {
    let engine = Engine::build(&load_lexicon(Some(lexicon), whitelist)?);
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?;
        Box::new(BufReader::new(file))
    };
    sensitive::scan_lines(&engine, reader, out, json)?;
    Ok(())
}

async fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    if args.idle_gap_minutes <= 0 {
        bail!(
            "--idle-gap-minutes must be positive, got {}",
            args.idle_gap_minutes
        );
    }
    for f in &args.files {
        if !f.is_file() {
            bail!("cannot read archive {}: no such file", f.display());
        }
    }
    let lexicons = Registry::new(Lexicon::starter());
    if let Some(lexicon) = &args.lexicon {
        let errors = lexicons
            .watch_files(&args.tenant, lexicon.clone(), args.whitelist.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        warn_lines(&errors);
    } else if let Some(whitelist) = &args.whitelist {
        lexicons.set(&args.tenant, load_lexicon(None, Some(whitelist))?);
    }
    let (analysers, errors) = OfflineAnalysers::load(args.competitors.as_deref())?;
    warn_lines(&errors);
    let store = Store::connect(&args.db).await?;
    let opts = Options {
        tenant: args.tenant.clone(),
        idle_gap_ms: args.idle_gap_minutes * 60_000,
        rules: RiskRules {
            redpacket_threshold_fen: yuan_to_fen(args.redpacket_threshold_yuan)?,
            transfer_threshold_fen: yuan_to_fen(args.transfer_threshold_yuan)?,
        },
    };
    let bar = if args.json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} analysing {pos}/{len} conversations [{bar:30}] {elapsed}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar
    };
    let llm = match &args.llm.llm_base_url {
        Some(url) => Some(llm_analysers(url, &args.llm, &args.tenant, &store)?),
        None => None,
    };
    let backends = pipeline::Analysers {
        offline: &analysers,
        llm: llm.as_ref(),
    };
    let report = pipeline::analyze(&store, &lexicons, &backends, &args.files, &opts, &bar).await?;
    bar.finish_and_clear();
    if let Some(llm) = &llm {
        let (requests, retries) = llm.traffic();
        tracing::info!(requests, retries, "model endpoint traffic");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_summary(&mut out, &report)?;
    }
    Ok(())
}

fn llm_analysers(
    url: &str,
    args: &LlmArgs,
    tenant: &str,
    store: &Store,
) -> anyhow::Result<LlmAnalysers> {
    let mut config = LlmConfig::new(url, &args.llm_model);
    config.api_key = args.llm_api_key.clone();
    config.timeout = std::time::Duration::from_secs(args.llm_timeout_secs.max(1));
    config.max_retries = args.llm_max_retries;
    config.concurrency = args.llm_concurrency;
    config.tenant_concurrency = args.llm_tenant_concurrency;
    config.json_schema = !args.llm_no_json_schema;
    let endpoint = std::sync::Arc::new(Endpoint::new(config)?);
    let sources = Sources {
        agents_dir: args.agents_dir.clone(),
        prompts_dir: args.prompts_dir.clone(),
    };
    let agents = AgentSet::load(&sources, tenant)?;
    let cache = AnswerCache::new(Some(store.clone()), 10_000);
    let prices = Prices {
        input_per_million: args.llm_price_input,
        output_per_million: args.llm_price_output,
    };
    Ok(LlmAnalysers::new(
        endpoint,
        agents,
        args.llm_combined,
        cache,
        prices,
    )?)
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

fn yuan_to_fen(yuan: f64) -> anyhow::Result<i64> {
    if !yuan.is_finite() || yuan < 0.0 {
        bail!("a threshold must be a non-negative amount of yuan, got {yuan}");
    }
    Ok((yuan * 100.0).round() as i64)
}

fn print_summary(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let count = |s: Severity| r.alerts.iter().filter(|a| a.severity == s).count();
    writeln!(out, "huixi analyze — tenant {}", r.tenant)?;
    writeln!(
        out,
        "  {} messages read ({} new), {} lines rejected",
        r.messages,
        r.stats.messages_new,
        r.rejected_lines.len()
    )?;
    writeln!(
        out,
        "  {} sessions ({} analysed now, {} unchanged since the last run)",
        r.sessions,
        r.stats.sessions_analysed,
        r.sessions as u64 - r.stats.sessions_analysed
    )?;
    writeln!(
        out,
        "  {} alerts: {} high, {} medium, {} low",
        r.alerts.len(),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    )?;
    if !r.rejected_lines.is_empty() {
        writeln!(out, "\nRejected lines")?;
        for l in &r.rejected_lines {
            writeln!(out, "  {}:{}: {}", l.file, l.line, l.error)?;
        }
    }
    if !r.alerts.is_empty() {
        writeln!(out, "\nAlerts")?;
        for a in &r.alerts {
            writeln!(
                out,
                "  [{:<6}] {} / {} «{}» {} {}: {}",
                a.severity.as_str(),
                a.kind,
                a.category,
                a.word,
                a.session,
                a.msgid,
                a.text.chars().take(60).collect::<String>()
            )?;
        }
    }
    writeln!(out, "\nSessions")?;
    for s in &r.results {
        let emotion = |e: &Option<crate::agents::Emotion>| {
            e.as_ref().map_or("-".to_string(), |e| {
                format!("{:?} {:+.2}", e.label, e.score)
            })
        };
        writeln!(
            out,
            "  {} {} {} → {}  [{}]",
            s.session,
            s.kind.as_str(),
            s.start,
            s.end,
            s.participants.join(", ")
        )?;
        writeln!(
            out,
            "      customer {}, staff {}, score {}, stage {}{}",
            emotion(&s.emotion.customer),
            emotion(&s.emotion.staff),
            s.staff_score
                .as_ref()
                .map_or("-".to_string(), |x| x.score.to_string()),
            s.opportunity
                .as_ref()
                .map_or("-", |o| o.stage_label.as_str()),
            if s.competitors.is_empty() {
                String::new()
            } else {
                format!(
                    ", competitors {}",
                    s.competitors
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join("、")
                )
            }
        )?;
        let kws: Vec<&str> = s.keywords.iter().map(|k| k.word.as_str()).collect();
        if !kws.is_empty() {
            writeln!(out, "      keywords {}", kws.join(" "))?;
        }
        if let Some(summary) = &s.summary {
            writeln!(out, "      {}", summary.text)?;
        }
        for f in &s.failures {
            writeln!(out, "      FAILED {}: {}", f.agent, f.error)?;
        }
    }
    Ok(())
}
