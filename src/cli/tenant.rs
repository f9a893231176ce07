//! `huixi tenant`: a tenant's configuration in the store, for operators — the same checks and the
//! same effect as the admin API's routes (every worker picks a change up within seconds).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::settings::Settings;
use crate::startup::{self, read};
use crate::tenant::Tenants;

#[derive(Args)]
pub struct Which {
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
    #[command(flatten)]
    pub settings: Box<Settings>,
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// The configuration in effect (JSON): version, settings, lexicon source, agents.
    Show {
        #[command(flatten)]
        which: Which,
    },
    /// Change the tenant's configuration: any of the files below, each checked before it is stored.
    Set {
        /// Settings document (JSON, as `PUT /v1/settings`).
        #[arg(long, value_name = "FILE")]
        settings_file: Option<PathBuf>,
        /// Sensitive-word lexicon (`word,category,severity[,pinyin]`).
        #[arg(long = "lexicon-file", value_name = "FILE")]
        lexicon_file: Option<PathBuf>,
        /// Whitelist, a word a line.
        #[arg(long = "whitelist-file", value_name = "FILE")]
        whitelist_file: Option<PathBuf>,
        /// Working-hours calendar (TOML or JSON).
        #[arg(long, value_name = "FILE")]
        calendar: Option<PathBuf>,
        /// Tag library (JSON).
        #[arg(long, value_name = "FILE")]
        tag_library: Option<PathBuf>,
        #[command(flatten)]
        which: Which,
    },
    /// The tenant's agents, or one agent's override: put (JSON with the fields of agents/NAME.toml)
    /// or delete.
    Agents {
        /// An agent to override (with --put) or to restore (with --delete).
        name: Option<String>,
        #[arg(
            long,
            value_name = "FILE",
            requires = "name",
            conflicts_with = "delete"
        )]
        put: Option<PathBuf>,
        #[arg(long, requires = "name")]
        delete: bool,
        #[command(flatten)]
        which: Which,
    },
    /// The tenant's knowledge-base documents in the store: list them, put a file (md, txt, csv,
    /// jsonl) under its file name, or delete one. Every worker indexes the change.
    Kb {
        #[arg(long, value_name = "FILE", conflicts_with = "delete")]
        put: Option<PathBuf>,
        /// Remove the document of this name.
        #[arg(long, value_name = "NAME")]
        delete: Option<String>,
        #[command(flatten)]
        which: Which,
    },
}

async fn open(which: &Which) -> anyhow::Result<Tenants> {
    let store = startup::store(&which.settings).await?;
    startup::tenants(&which.settings, &store)
}

pub async fn tenant(command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Show { which } => {
            let tenants = open(&which).await?;
            show(&tenants, &which.tenant).await
        }
        TenantCommand::Set {
            settings_file,
            lexicon_file,
            whitelist_file,
            calendar,
            tag_library,
            which,
        } => {
            let tenants = open(&which).await?;
            let t = &which.tenant;
            if let Some(path) = &settings_file {
                tenants
                    .put_settings(t, read(path)?.as_bytes())
                    .await
                    .with_context(|| path.display().to_string())?;
            }
            for (path, whitelist) in [(&lexicon_file, false), (&whitelist_file, true)] {
                if let Some(path) = path {
                    let (count, skipped) = tenants
                        .put_words(t, whitelist, &read(path)?)
                        .await
                        .with_context(|| path.display().to_string())?;
                    startup::warn_lines(&skipped);
                    eprintln!("{}: {count} entries", path.display());
                }
            }
            super::analyze::store_settings(
                tenants.store(),
                t,
                calendar.as_deref(),
                tag_library.as_deref(),
            )
            .await?;
            show(&tenants, t).await
        }
        TenantCommand::Agents {
            name,
            put,
            delete,
            which,
        } => {
            let tenants = open(&which).await?;
            let t = &which.tenant;
            if let (Some(name), Some(path)) = (&name, &put) {
                tenants
                    .put_agent(t, name, &read(path)?)
                    .await
                    .with_context(|| path.display().to_string())?;
            }
            if let (Some(name), true) = (&name, delete) {
                if !tenants.delete_agent(t, name).await? {
                    anyhow::bail!("tenant {t:?} has no override of agent {name:?}");
                }
            }
            let config = tenants.fresh(t).await?;
            let agents: Vec<serde_json::Value> = config
                .agents
                .agents
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "name": a.name,
                        "model": a.model,
                        "temperature": a.temperature,
                        "prompt": a.template_file,
                        "vars": a.vars,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"version": config.version, "agents": agents})
                )?
            );
            Ok(())
        }
        TenantCommand::Kb { put, delete, which } => {
            let tenants = open(&which).await?;
            kb(&tenants, &which.tenant, put.as_deref(), delete.as_deref()).await
        }
    }
}

async fn kb(
    tenants: &Tenants,
    tenant: &str,
    put: Option<&Path>,
    delete: Option<&str>,
) -> anyhow::Result<()> {
    let store = tenants.store();
    if let Some(path) = put {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let format = crate::api::kb::check_name(&name)
            .map_err(|e| anyhow::anyhow!("{}: name: {e}", path.display()))?;
        let text = read(path)?;
        crate::api::kb::check_text(&name, format, &text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let (_, put) = store.put_kb_document(tenant, &name, &text).await?;
        eprintln!("{name}: {put:?}");
    }
    if let Some(name) = delete {
        if !store.delete_kb_document(tenant, name).await? {
            anyhow::bail!("tenant {tenant:?} has no document {name:?}");
        }
    }
    // With --data-dir, this process's index is brought up to date too.
    tenants.fresh(tenant).await?;
    let docs: Vec<serde_json::Value> = store
        .kb_documents(tenant)
        .await?
        .into_iter()
        .map(|d| serde_json::json!({"name": d.name, "bytes": d.bytes, "digest": d.digest, "updated_at": d.updated_at}))
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"documents": docs}))?
    );
    Ok(())
}

async fn show(tenants: &Tenants, tenant: &str) -> anyhow::Result<()> {
    let t = tenants.fresh(tenant).await?;
    let agents: Vec<&str> = t.agents.agents.iter().map(|a| a.name.as_str()).collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "tenant": t.id,
            "version": t.version,
            "settings": t.effective,
            "lexicon": if t.own_lexicon { "tenant" } else { "default" },
            "calendar": t.settings.calendar,
            "tag_library": t.settings.tag_library.is_some(),
            "agents": agents,
            "fingerprint": t.fingerprint(),
        }))?
    );
    Ok(())
}
