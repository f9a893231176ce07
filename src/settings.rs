//! The deployment's configuration, one typed [`Settings`] shared by every subcommand: built-in
//! defaults, under an optional TOML file (`--config FILE` or `HUIXI_CONFIG`), under `HUIXI_*`
//! environment variables, under flags. Tenants' own settings are data in the store
//! ([`crate::tenant`]); what is here are the defaults under them and where the parts of the
//! deployment are.
//!
//! The file's keys are the environment variables' names without `HUIXI_`, in lower case; a table's
//! name prefixes its keys, so `[llm] base_url = …` is `HUIXI_LLM_BASE_URL`. The file is applied by
//! filling in the variables the environment does not set before the command line is parsed, which
//! is what gives the file its place in the order without a second parser for every setting.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Serialize;

/// Everything a deployment is configured with.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Settings {
    /// TOML file of settings, under the environment and the flags.
    #[arg(long, env = "HUIXI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreSettings,
    #[command(flatten)]
    pub queue: QueueSettings,
    #[command(flatten)]
    pub defaults: TenantDefaults,
    #[command(flatten)]
    pub kb: KbSettings,
    #[command(flatten)]
    pub llm: LlmSettings,
    #[command(flatten)]
    pub ingest: IngestSettings,
    /// Let webhooks go to loopback and private addresses. For development and tests: in production a
    /// tenant's URL could otherwise reach the CRM's database or a cloud metadata endpoint.
    #[arg(long, env = "HUIXI_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// Key that seals secrets (webhook secrets) at rest: 64 hex characters (`openssl rand -hex 32`).
    /// Environment or settings file only, never a flag, so it does not show in a process listing.
    #[arg(skip = std::env::var("HUIXI_MASTER_KEY").ok())]
    #[serde(serialize_with = "redact_optional")]
    pub master_key: Option<String>,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct StoreSettings {
    /// Store URL: sqlite://FILE (created when missing) or mysql://user:password@host:port/database.
    #[arg(long, env = "HUIXI_DB", default_value = "sqlite://huixi.db")]
    #[serde(serialize_with = "redact_url")]
    pub db: String,
    /// Keep message text (`huixi_messages.content` and `.raw`) in clear although HUIXI_MASTER_KEY
    /// is set: by default a master key seals it too, so the database holds no chat in clear.
    #[arg(long, env = "HUIXI_PLAINTEXT_MESSAGES")]
    pub plaintext_messages: bool,
}

/// Where the queue is and which pool's settings apply.
#[derive(Args, Debug, Clone, Serialize)]
pub struct QueueSettings {
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f; the embedded queue (in the store)
    /// when absent.
    #[arg(long, env = "HUIXI_AMQP")]
    #[serde(serialize_with = "redact_optional_url")]
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

/// What a tenant that configured nothing gets. A tenant's own settings (`PUT /v1/settings`,
/// `/v1/lexicon`, …, or `huixi tenant set`) replace these field by field.
#[derive(Args, Debug, Clone, Serialize)]
pub struct TenantDefaults {
    /// Sensitive-word lexicon (`word,category,severity[,pinyin]`); the shipped starter list when absent.
    #[arg(long, env = "HUIXI_LEXICON")]
    pub lexicon: Option<PathBuf>,
    /// Whitelist: words whose matches are suppressed (e.g. 微信支付 when 微信 is sensitive).
    #[arg(long, env = "HUIXI_WHITELIST")]
    pub whitelist: Option<PathBuf>,
    /// Competitors (`name,alias|alias`); the shipped example when absent.
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
    /// Directory with edited agent definitions (`NAME.toml`, schemas, `tenants/T/NAME.toml`).
    #[arg(long, env = "HUIXI_AGENTS_DIR")]
    pub agents_dir: Option<PathBuf>,
    /// Directory with edited prompt templates (`*.hbs`).
    #[arg(long, env = "HUIXI_PROMPTS_DIR")]
    pub prompts_dir: Option<PathBuf>,
}

/// Where tenants' knowledge bases are.
#[derive(Args, Debug, Clone, Serialize)]
pub struct KbSettings {
    /// Where knowledge bases are kept (one Qdrant Edge shard per tenant under DIR/kb/); agents that
    /// declare retrieval then get the best-matching chunks in their prompt. No knowledge base when
    /// absent (`huixi kb` then uses ./huixi-data).
    #[arg(long, env = "HUIXI_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Knowledge bases on this Qdrant server (gRPC, e.g. http://127.0.0.1:6334) instead of embedded.
    #[arg(long, env = "HUIXI_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// An embeddings model (e.g. text-embedding-3-small, bge-m3): chunks get a dense vector too, and
    /// search fuses it with BM25 (RRF). Without it, search is BM25 only.
    #[arg(long, env = "HUIXI_EMBEDDINGS_MODEL")]
    pub embeddings_model: Option<String>,
    /// OpenAI-compatible API base of the embeddings model (POST {base}/embeddings). Default: the chat
    /// model's, --llm-base-url or HUIXI_LLM_BASE_URL.
    #[arg(long, env = "HUIXI_EMBEDDINGS_BASE_URL")]
    pub embeddings_base_url: Option<String>,
    /// API key of the embeddings endpoint. Default: the chat model's (HUIXI_LLM_API_KEY).
    #[arg(long, env = "HUIXI_EMBEDDINGS_API_KEY", hide_env_values = true)]
    #[serde(serialize_with = "redact_optional")]
    pub embeddings_api_key: Option<String>,
}

/// Where the WeCom puller finds the finance SDK and keeps media files.
#[derive(Args, Debug, Clone, Serialize)]
pub struct IngestSettings {
    /// WeCom's finance SDK (libWeWorkFinanceSdk_C.so, downloaded from WeCom), for tenants whose
    /// source names no library of its own.
    #[arg(long, env = "HUIXI_WECOM_SDK")]
    pub wecom_sdk: Option<PathBuf>,
    /// Directory for media files (images, voice, files) the puller fetches, and for downloads in
    /// progress.
    #[arg(long, env = "HUIXI_MEDIA_DIR", default_value = "huixi-media")]
    pub media_dir: PathBuf,
    /// Media files go to this S3-compatible bucket instead (s3://bucket/prefix; credentials, region
    /// and endpoint from the AWS_* variables). Downloads in progress stay in --media-dir.
    #[arg(long, env = "HUIXI_MEDIA_URL")]
    pub media_url: Option<String>,
}

/// The model endpoint. Without `--llm-base-url` the offline analysers answer everything.
#[derive(Args, Debug, Clone, Serialize)]
pub struct LlmSettings {
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
        hide_env_values = true,
        hide_default_value = true
    )]
    #[serde(serialize_with = "redact")]
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
    /// Triage: sessions the offline analysers read at least this surely (0–1, their `confidence`)
    /// keep the offline reading and are not sent to the model. Unset: every session goes to it.
    #[arg(long, env = "HUIXI_LLM_TRIAGE", value_parser = confidence)]
    pub llm_triage: Option<f64>,
    /// Price of a million prompt tokens, for cost accounting.
    #[arg(long, env = "HUIXI_LLM_PRICE_INPUT", default_value_t = 0.0)]
    pub llm_price_input: f64,
    /// Price of a million completion tokens.
    #[arg(long, env = "HUIXI_LLM_PRICE_OUTPUT", default_value_t = 0.0)]
    pub llm_price_output: f64,
}

const REDACTED: &str = "(set, not shown)";

fn confidence(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(c) if (0.0..=1.0).contains(&c) => Ok(c),
        _ => Err(format!("{s:?} is not a confidence between 0 and 1")),
    }
}

fn redact<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if v.is_empty() { "" } else { REDACTED })
}

fn redact_optional<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

/// A URL with its password replaced: `mysql://root:secret@db/crm` prints as `mysql://root:***@db/crm`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn redact_url<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_password(v))
}

fn redact_optional_url<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(url) => s.serialize_str(&redact_password(url)),
        None => s.serialize_none(),
    }
}

/// The `--config` file named on the command line or in `HUIXI_CONFIG`, read before clap parses, so
/// its values can sit under the environment's.
pub fn config_file(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(path) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("HUIXI_CONFIG").map(PathBuf::from)
}

/// The environment variables a file sets: `known` are the names the command line reads, so a
/// misspelt key is an error that names it, not a setting silently ignored.
pub fn file_variables(path: &Path, known: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read settings file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("settings file {}", path.display()))?;
    let mut out = Vec::new();
    flatten(path, "", &table, known, &mut out)?;
    Ok(out)
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    known: &[String],
    out: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    for (key, value) in table {
        let name = format!("{prefix}{}", key.to_ascii_uppercase().replace('-', "_"));
        let value = match value {
            toml::Value::Table(t) => {
                flatten(path, &format!("{name}_"), t, known, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "settings file {}: `{}` must be a string, number or boolean, not {}",
                path.display(),
                name.to_ascii_lowercase(),
                other.type_str()
            ),
        };
        let var = format!("HUIXI_{name}");
        if !known.contains(&var) {
            bail!(
                "settings file {}: unknown setting `{}` (it would be {var}); `huixi config` lists them",
                path.display(),
                name.to_ascii_lowercase()
            );
        }
        out.push((var, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_and_hosts_kept() {
        assert_eq!(
            redact_password("mysql://root:s3cret@127.0.0.1:3306/crm"),
            "mysql://root:***@127.0.0.1:3306/crm"
        );
        assert_eq!(redact_password("sqlite://huixi.db"), "sqlite://huixi.db");
        assert_eq!(
            redact_password("amqp://guest:guest@h:5672/%2f"),
            "amqp://guest:***@h:5672/%2f"
        );
    }

    #[test]
    fn file_keys_map_to_variables_and_a_misspelt_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("huixi.toml");
        std::fs::write(
            &file,
            "db = \"sqlite://x.db\"\nidle_gap_minutes = 45\n[llm]\nbase_url = \"http://m/v1\"\n",
        )
        .unwrap();
        let known: Vec<String> = ["HUIXI_DB", "HUIXI_IDLE_GAP_MINUTES", "HUIXI_LLM_BASE_URL"]
            .map(String::from)
            .to_vec();
        let mut vars = file_variables(&file, &known).unwrap();
        vars.sort();
        assert_eq!(
            vars,
            vec![
                ("HUIXI_DB".into(), "sqlite://x.db".into()),
                ("HUIXI_IDLE_GAP_MINUTES".into(), "45".into()),
                ("HUIXI_LLM_BASE_URL".into(), "http://m/v1".into()),
            ]
        );
        std::fs::write(&file, "[llm]\nbase_ulr = \"x\"\n").unwrap();
        let err = file_variables(&file, &known).unwrap_err().to_string();
        assert!(err.contains("llm_base_ulr"), "{err}");
    }
}
