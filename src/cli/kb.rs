//! `huixi kb`: a tenant's knowledge base — ingest documents, search them, remove a file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Subcommand;

use crate::kb::{EmbedConfig, Embedder, TenantKb};

#[derive(Subcommand)]
pub enum KbCommand {
    /// Ingest Markdown, text, CSV (a row a record) and JSON-lines files or directories. Unchanged files
    /// are left alone; changed ones replace their chunks.
    Ingest {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also remove files ingested earlier that no longer exist.
        #[arg(long)]
        prune: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: KbArgs,
    },
    /// Search the tenant's chunks.
    Search {
        query: String,
        #[arg(long, default_value_t = 5)]
        top: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        at: KbArgs,
    },
    /// Remove one ingested file's chunks.
    Remove {
        source: PathBuf,
        #[command(flatten)]
        at: KbArgs,
    },
}

#[derive(clap::Args)]
pub struct KbArgs {
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
    /// Where knowledge bases are kept (one Qdrant Edge shard per tenant under DIR/kb/).
    #[arg(long, env = "HUIXI_DATA_DIR", default_value = "huixi-data")]
    pub data_dir: PathBuf,
    /// A Qdrant server (gRPC, e.g. http://127.0.0.1:6334) instead of the embedded shards.
    #[arg(long, env = "HUIXI_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    #[command(flatten)]
    pub embeddings: EmbeddingArgs,
}

/// Dense vectors for hybrid search: shared by `kb` and the commands that analyse sessions.
#[derive(clap::Args)]
pub struct EmbeddingArgs {
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
    pub embeddings_api_key: Option<String>,
}

impl EmbeddingArgs {
    /// The embedder, if a model is configured; `llm_url` and `llm_key` are the chat endpoint's, the
    /// default place to find it.
    pub fn embedder(
        &self,
        llm_url: Option<&str>,
        llm_key: &str,
    ) -> anyhow::Result<Option<Embedder>> {
        let Some(model) = &self.embeddings_model else {
            return Ok(None);
        };
        if model.trim().is_empty() {
            bail!("--embeddings-model (HUIXI_EMBEDDINGS_MODEL) is empty");
        }
        let Some(base_url) = self.embeddings_base_url.as_deref().or(llm_url) else {
            bail!(
                "--embeddings-model {model} needs an endpoint: --embeddings-base-url \
                 (HUIXI_EMBEDDINGS_BASE_URL) or the chat model's --llm-base-url (HUIXI_LLM_BASE_URL)"
            );
        };
        let config = EmbedConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: self
                .embeddings_api_key
                .clone()
                .unwrap_or_else(|| llm_key.to_string()),
            model: model.clone(),
            timeout: std::time::Duration::from_secs(60),
            max_retries: 4,
        };
        Embedder::new(config)
            .map_err(|e| anyhow::anyhow!("embeddings endpoint {base_url}: {e}"))
            .map(Some)
    }
}

impl KbArgs {
    async fn open(&self) -> anyhow::Result<TenantKb> {
        // `kb` has no chat-model flags; the chat endpoint's variables are the default all the same.
        let llm_url = std::env::var("HUIXI_LLM_BASE_URL").ok();
        let llm_key = std::env::var("HUIXI_LLM_API_KEY").unwrap_or_default();
        let embedder = self.embeddings.embedder(llm_url.as_deref(), &llm_key)?;
        Ok(TenantKb::open(
            &self.data_dir,
            &self.tenant,
            self.qdrant_url.as_deref(),
            embedder.map(Arc::new),
        )
        .await?)
    }
}

pub async fn kb(command: KbCommand) -> anyhow::Result<()> {
    match command {
        KbCommand::Ingest {
            paths,
            prune,
            json,
            at,
        } => {
            let mut kb = at.open().await?;
            let report = kb.ingest(&paths, prune).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for r in &report {
                    println!("{:<9} {:>4} chunks  {}", r.status, r.chunks, r.source);
                }
            }
        }
        KbCommand::Search {
            query,
            top,
            json,
            at,
        } => {
            let hits = at.open().await?.search(&query, top).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else {
                for h in &hits {
                    let heading = if h.heading.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", h.heading)
                    };
                    println!(
                        "{:.3}  {}  {}#{}{heading}",
                        h.score, h.id, h.source, h.position
                    );
                    for line in h.text.lines().take(3) {
                        println!("       {line}");
                    }
                }
            }
        }
        KbCommand::Remove { source, at } => {
            let r = at.open().await?.remove(&source).await?;
            println!("removed {} chunks of {}", r.chunks, r.source);
        }
    }
    Ok(())
}
