//! The flags that say how sessions are analysed (lexicon, competitors, thresholds, model endpoint),
//! shared by `huixi analyze` and `huixi worker`, and the [`Context`] they build.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::{load_lexicon, warn_lines};
use crate::agents::llm::{LlmAnalysers, Prices};
use crate::agents::offline::OfflineAnalysers;
use crate::agents::{AgentSet, Sources};
use crate::llm::{AnswerCache, Endpoint, LlmConfig};
use crate::sensitive::{Lexicon, Registry, RiskRules};
use crate::store::Store;
use crate::worker::Context;

/// How sessions are analysed: shared by `analyze` and `worker`.
#[derive(Args)]
pub struct AnalysisArgs {
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
    /// Where tenants' knowledge bases are (`huixi kb ingest --data-dir`); agents that declare retrieval
    /// then get the best-matching chunks in their prompt.
    #[arg(long, env = "HUIXI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Knowledge bases on this Qdrant server (gRPC, e.g. http://127.0.0.1:6334) instead of embedded.
    #[arg(long, env = "HUIXI_QDRANT_URL", requires = "data_dir")]
    pub qdrant_url: Option<String>,
    #[command(flatten)]
    pub embeddings: super::kb::EmbeddingArgs,
    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Where a model is: shared by every command that can call one.
#[derive(Args)]
pub struct EndpointArgs {
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
}

/// The model endpoint. Without `--llm-base-url` the offline analysers answer everything.
#[derive(Args)]
pub struct LlmArgs {
    #[command(flatten)]
    pub endpoint: EndpointArgs,
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

impl AnalysisArgs {
    /// Loads lexicons and analysers and connects the model endpoint. `tenant` gets the `--lexicon` and
    /// the agent overrides; other tenants get the starter lexicon and the shipped agents.
    pub fn context(&self, store: &Store, tenant: &str) -> anyhow::Result<Context> {
        if self.idle_gap_minutes <= 0 {
            bail!(
                "--idle-gap-minutes must be positive, got {}",
                self.idle_gap_minutes
            );
        }
        let rules = RiskRules {
            redpacket_threshold_fen: yuan_to_fen(self.redpacket_threshold_yuan)?,
            transfer_threshold_fen: yuan_to_fen(self.transfer_threshold_yuan)?,
        };
        let lexicons = Registry::new(Lexicon::starter());
        if let Some(lexicon) = &self.lexicon {
            let errors = lexicons
                .watch_files(tenant, lexicon.clone(), self.whitelist.clone())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            warn_lines(&errors);
        } else if let Some(whitelist) = &self.whitelist {
            lexicons.set(tenant, load_lexicon(None, Some(whitelist))?);
        }
        let (offline, errors) = OfflineAnalysers::load(self.competitors.as_deref())?;
        warn_lines(&errors);
        let llm = match &self.llm.endpoint.llm_base_url {
            Some(url) => Some(llm_analysers(url, &self.llm, tenant, store)?),
            None => None,
        };
        let kb = match &self.data_dir {
            Some(dir) => {
                let endpoint = &self.llm.endpoint;
                let embedder = self
                    .embeddings
                    .embedder(endpoint.llm_base_url.as_deref(), &endpoint.llm_api_key)?;
                Some(crate::kb::Knowledge::new(
                    dir,
                    self.qdrant_url.as_deref(),
                    embedder,
                ))
            }
            None => None,
        };
        Ok(Context {
            store: store.clone(),
            lexicons,
            offline,
            llm,
            idle_gap_ms: self.idle_gap_minutes * 60_000,
            rules,
            kb,
        })
    }
}

fn llm_analysers(
    url: &str,
    args: &LlmArgs,
    tenant: &str,
    store: &Store,
) -> anyhow::Result<LlmAnalysers> {
    let mut config = LlmConfig::new(url, &args.endpoint.llm_model);
    config.api_key = args.endpoint.llm_api_key.clone();
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

fn yuan_to_fen(yuan: f64) -> anyhow::Result<i64> {
    if !yuan.is_finite() || yuan < 0.0 {
        bail!("a threshold must be a non-negative amount of yuan, got {yuan}");
    }
    Ok((yuan * 100.0).round() as i64)
}
