//! `huixi serve` (the HTTP API, with the worker pool in the same process unless `--no-worker`) and
//! `huixi token` (API tokens, for bootstrapping the first admin token and for scripts).

use std::sync::Arc;

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::api::{self, AppState};
use crate::settings::Settings;
use crate::startup;
use crate::worker::{self, Until};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the address is printed on stdout).
    #[arg(long, env = "HUIXI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Serve the API only; workers run elsewhere (`huixi worker`).
    #[arg(long)]
    pub no_worker: bool,
    /// Seconds a request may take, reading its body included (a slow client gets 408).
    #[arg(long, env = "HUIXI_REQUEST_TIMEOUT_SECS", default_value_t = 60)]
    pub request_timeout_secs: u64,
    /// Seconds a connection may take to send a request's headers, and may stay open idle between
    /// requests.
    #[arg(long, env = "HUIXI_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    #[command(flatten)]
    pub settings: Settings,
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    let store = startup::store(&args.settings).await?;
    let (pool, queue) = startup::queue(&args.settings, &store).await?;
    let ctx = Arc::new(startup::context(&args.settings, &store)?);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    println!("listening on http://{}", listener.local_addr()?);
    let worker = (!args.no_worker).then(|| {
        let (ctx, queue, pool) = (ctx.clone(), queue.clone(), pool.clone());
        tokio::spawn(async move { worker::run(ctx, queue, &pool, Until::Stopped).await })
    });
    // Conversations of messages that arrived through the API or the puller are published once
    // quiet, and each tenant with a WeCom source is pulled (one replica per tenant, by lease).
    let schedule = tokio::spawn(crate::ingest::schedule::run_forever(
        store.clone(),
        queue.clone(),
    ));
    let pullers = tokio::spawn(crate::ingest::wecom::run_forever(
        ctx.clone(),
        args.settings.ingest.clone(),
    ));
    let state = AppState {
        ctx,
        queue,
        metrics,
        allow_private_webhooks: args.settings.webhook_allow_private,
        request_timeout: std::time::Duration::from_secs(args.request_timeout_secs.max(1)),
    };
    let header_timeout = std::time::Duration::from_secs(args.header_timeout_secs.max(1));
    api::serve(listener, state, header_timeout).await?;
    schedule.abort();
    pullers.abort();
    if let Some(w) = worker {
        let tally = w.await??;
        tracing::info!(?tally, "worker stopped");
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown once; only its hash is stored).
    Create {
        #[arg(long, required_unless_present = "admin")]
        tenant: Option<String>,
        /// A token that manages tenants' tokens instead of reading a tenant's data.
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "")]
        label: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Revoke a token by id.
    Revoke {
        id: i64,
        #[command(flatten)]
        settings: Box<Settings>,
    },
}

pub async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            tenant,
            admin,
            label,
            settings,
        } => {
            let store = startup::store(&settings).await?;
            let tenant = tenant.unwrap_or_else(|| "*".to_string());
            let token = api::new_token();
            let id = store.create_token(&tenant, &token, admin, &label).await?;
            println!(
                "{}",
                serde_json::json!({"id": id, "tenant": tenant, "admin": admin, "token": token})
            );
        }
        TokenCommand::Revoke { id, settings } => {
            let store = startup::store(&settings).await?;
            if !store.revoke_token(id).await? {
                bail!("no active token {id}");
            }
            println!("token {id} revoked");
        }
    }
    Ok(())
}
