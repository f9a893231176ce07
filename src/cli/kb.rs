//! `huixi kb`: a tenant's knowledge base — ingest documents, search them, remove a file.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;

use crate::kb::TenantKb;
use crate::settings::Settings;

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
    #[command(flatten)]
    pub settings: Box<Settings>,
}

impl KbArgs {
    async fn open(&self) -> anyhow::Result<TenantKb> {
        let dir = self
            .settings
            .kb
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("huixi-data"));
        let embedder = crate::startup::embedder(&self.settings)?;
        Ok(TenantKb::open(
            &dir,
            &self.tenant,
            self.settings.kb.qdrant_url.as_deref(),
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
