//! `huixi ingest`: a tenant's WeCom finance-SDK source (set, show, resume) and its quarantine (list,
//! replay). The puller itself runs inside `huixi serve`.

use clap::Subcommand;

use crate::ingest::wecom;
use crate::settings::Settings;
use crate::startup;
use crate::store::WecomConfig;

#[derive(Subcommand)]
pub enum IngestCommand {
    /// The tenant's WeCom finance-SDK source.
    #[command(subcommand)]
    Wecom(WecomCommand),
    /// Archive items that could not be decrypted or parsed.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
}

#[derive(Subcommand)]
pub enum WecomCommand {
    /// Set the source (a source already there keeps its cursor; a stopped one starts again).
    Set {
        #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
        tenant: String,
        #[arg(long)]
        corpid: String,
        /// File holding the 会话存档 Secret (kept out of the process list).
        #[arg(long)]
        secret_file: std::path::PathBuf,
        /// A private key by its version: VERSION=FILE.pem, once per version still in use.
        #[arg(long = "key", required = true)]
        keys: Vec<String>,
        /// The SDK library for this tenant; HUIXI_WECOM_SDK when absent.
        #[arg(long, default_value = "")]
        sdk_path: String,
        #[arg(long, default_value_t = crate::api::WECOM_INTERVAL_SECS)]
        interval_secs: i64,
        /// Raise ingest.lag when the source has not caught up for this long.
        #[arg(long, default_value_t = 6.0)]
        lag_alert_hours: f64,
        /// The callback's Token and EncodingAESKey, for WeCom's msgaudit_notify.
        #[arg(long, default_value = "")]
        notify_token: String,
        #[arg(long, default_value = "")]
        notify_aes_key: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Cursor, lag, quarantine and why it stopped (no secret is shown).
    Show {
        #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
        tenant: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
}

#[derive(Subcommand)]
pub enum QuarantineCommand {
    List {
        #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
        tenant: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Read every quarantined item again (after adding the key it needed, say).
    Replay {
        #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
        tenant: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
}

pub async fn ingest(command: IngestCommand) -> anyhow::Result<()> {
    match command {
        IngestCommand::Wecom(WecomCommand::Set {
            tenant,
            corpid,
            secret_file,
            keys,
            sdk_path,
            interval_secs,
            lag_alert_hours,
            notify_token,
            notify_aes_key,
            settings,
        }) => {
            let secret = std::fs::read_to_string(&secret_file)
                .map_err(|e| anyhow::anyhow!("--secret-file {}: {e}", secret_file.display()))?;
            let private_keys = wecom::read_keys(&keys)?;
            wecom::KeyRing::parse(&private_keys).map_err(anyhow::Error::msg)?;
            if !(lag_alert_hours > 0.0 && lag_alert_hours <= 120.0) {
                anyhow::bail!(
                    "--lag-alert-hours: more than 0 and at most 120 (WeCom keeps 5 days)"
                );
            }
            let store = startup::store(&settings).await?;
            let config = WecomConfig {
                corpid,
                secret: secret.trim().to_string(),
                private_keys,
                sdk_path,
                interval_secs: interval_secs.clamp(1, 86_400),
                lag_alert_secs: (lag_alert_hours * 3600.0) as i64,
                notify_token,
                notify_aes_key,
            };
            store.put_wecom_source(&tenant, &config).await?;
            println!("WeCom source of tenant {tenant} set");
        }
        IngestCommand::Wecom(WecomCommand::Show { tenant, settings }) => {
            let store = startup::store(&settings).await?;
            match store.wecom_source(&tenant).await? {
                Some(s) => println!("{}", serde_json::to_string_pretty(&s.status)?),
                None => anyhow::bail!("tenant {tenant:?} has no WeCom source"),
            }
        }
        IngestCommand::Quarantine(QuarantineCommand::List {
            tenant,
            limit,
            json,
            settings,
        }) => {
            let store = startup::store(&settings).await?;
            let items = store.quarantined(&tenant, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for q in &items {
                    println!("seq {}  {}  {}", q.seq, q.msgid, q.reason);
                }
                println!("{} quarantined", items.len());
            }
        }
        IngestCommand::Quarantine(QuarantineCommand::Replay { tenant, settings }) => {
            let store = startup::store(&settings).await?;
            let ctx = startup::context(&settings, &store)?;
            let (stored, still) = wecom::replay(&ctx, &settings.ingest, &tenant).await?;
            println!("{stored} items stored, {still} still quarantined");
        }
    }
    Ok(())
}
