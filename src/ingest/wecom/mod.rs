//! The WeCom finance-SDK puller, for tenants that archive through their own 自建应用. WeCom keeps
//! archived messages for 5 days, so the rule here is that nothing is ever skipped:
//!
//! - the cursor (`seq`) moves only in the transaction that stores its page's messages, its
//!   quarantined items and its media to fetch ([`crate::store::PageCommit`]): a crash anywhere
//!   pulls the page again, and the store's msgid keys make the second storing a no-op;
//! - an item that does not decrypt or parse goes to the quarantine, raw, with its seq and reason,
//!   until `huixi ingest quarantine replay` reads it (after adding the key it needed, say);
//! - the SDK's transient errors (10001–10003) back off and retry; any other error stops that
//!   tenant's puller with an `ingest.stopped` alert, and other tenants go on;
//! - a source that has not caught up for its lag limit raises `ingest.lag`, long before 5 days.
//!
//! One replica pulls a tenant at a time (a lease in the store); a source is pulled every
//! `interval_secs`, and at once when WeCom's `msgaudit_notify` callback arrives ([`notify`]).

mod keys;
pub mod media;
pub mod notify;
mod sdk;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

pub use keys::KeyRing;
pub use sdk::{Sdk, SdkError};

use crate::archive::Message;
use crate::settings::IngestSettings;
use crate::store::{PageCommit, StoreError, WecomSource};
use crate::worker::Context;
use media::MediaStore;

/// A pull's hold on its tenant: renewed with every page.
const LEASE_MS: i64 = 60_000;
/// Items asked for per page: the SDK's maximum.
const PAGE: u32 = 1_000;
/// Tries of an SDK call that fails with a transient error, before the round gives up (the next
/// round tries again; the cursor has not moved).
const TRIES: u32 = 6;

/// One archive item as `GetChatData` lists it.
#[derive(Debug, Deserialize)]
struct Item {
    seq: i64,
    #[serde(default)]
    msgid: String,
    #[serde(default)]
    publickey_ver: u32,
    #[serde(default)]
    encrypt_random_key: String,
    #[serde(default)]
    encrypt_chat_msg: String,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    errcode: i32,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    chatdata: Vec<serde_json::Value>,
}

/// Why a pull ended early.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Needs a person: the tenant's puller stops until its source is set again or resumed.
    #[error("{0}")]
    Fatal(String),
    /// Try again next round.
    #[error("{0}")]
    Transient(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Pulls every tenant with a WeCom source, forever: in `huixi serve`.
pub async fn run_forever(ctx: Arc<Context>, settings: IngestSettings) {
    let media = match MediaStore::new(&settings) {
        Ok(m) => Arc::new(m),
        Err(e) => {
            tracing::error!("WeCom puller not started: {e}");
            return;
        }
    };
    let owner = format!(
        "{}-{}-{:08x}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "huixi".into()),
        std::process::id(),
        rand::random::<u32>()
    );
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        match ctx.store.wecom_sources().await {
            Ok(sources) => {
                let now = chrono::Utc::now().timestamp_millis();
                for source in sources {
                    // Every second, whether or not a pull brought anything: a lag that grows
                    // while nothing arrives is what the metric is for.
                    let tenant = source.tenant.clone();
                    let status = &source.status;
                    metrics::gauge!("huixi_ingest_lag_seconds", "tenant" => tenant.clone())
                        .set(status.lag_secs as f64);
                    let behind = (now - status.advanced_at) / 1000;
                    metrics::gauge!("huixi_wecom_seconds_since_caught_up", "tenant" => tenant)
                        .set(behind as f64);
                    let due = source.status.pulled_at + source.config.interval_secs * 1000 <= now;
                    let busy = running
                        .lock()
                        .expect("running lock")
                        .contains(&source.tenant);
                    if source.status.stopped.is_some() || busy || !due {
                        continue;
                    }
                    match ctx
                        .store
                        .take_wecom_lease(&source.tenant, &owner, LEASE_MS)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            tracing::warn!(tenant = %source.tenant, "WeCom lease: {e}");
                            continue;
                        }
                    }
                    running
                        .lock()
                        .expect("running lock")
                        .insert(source.tenant.clone());
                    let (ctx, settings, media, owner, running) = (
                        ctx.clone(),
                        settings.clone(),
                        media.clone(),
                        owner.clone(),
                        running.clone(),
                    );
                    tokio::spawn(async move {
                        let tenant = source.tenant.clone();
                        pull_round(&ctx, &settings, &media, &owner, source).await;
                        if let Err(e) = ctx.store.release_wecom_lease(&tenant, &owner).await {
                            tracing::warn!(%tenant, "WeCom lease: {e}");
                        }
                        running.lock().expect("running lock").remove(&tenant);
                    });
                }
            }
            Err(e) => tracing::warn!("WeCom sources unavailable: {e}"),
        }
        match ctx.store.raise_lag_alerts().await {
            Ok(tenants) => {
                for t in tenants {
                    tracing::warn!(tenant = %t, "WeCom archive lagging: ingest.lag raised");
                }
            }
            Err(e) => tracing::warn!("WeCom lag check: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One round of a tenant: pages until caught up, then its media; errors recorded as they need.
async fn pull_round(
    ctx: &Context,
    settings: &IngestSettings,
    media: &MediaStore,
    owner: &str,
    source: WecomSource,
) {
    let tenant = source.tenant.clone();
    let outcome = pull(ctx, settings, owner, &source).await;
    let caught_up = match &outcome {
        Ok(sdk) => {
            media::fetch_all(ctx, media, &tenant, sdk.clone()).await;
            true
        }
        Err(PullError::Fatal(why)) => {
            tracing::error!(%tenant, "WeCom puller stopped: {why}");
            if let Err(e) = ctx.store.stop_wecom(&tenant, why).await {
                tracing::warn!(%tenant, "cannot record the stop: {e}");
            }
            false
        }
        Err(e) => {
            tracing::warn!(%tenant, "WeCom pull ends early, the next round goes on: {e}");
            false
        }
    };
    if let Err(e) = ctx.store.record_wecom_pull(&tenant, caught_up).await {
        tracing::warn!(%tenant, "cannot record the pull: {e}");
    }
}

/// The SDK behind its lock, shared by a round's pages and media.
pub type SharedSdk = Arc<Mutex<Sdk>>;

/// Opens the tenant's SDK (on a blocking thread: Init talks to WeCom).
pub async fn open_sdk(
    settings: &IngestSettings,
    source: &WecomSource,
) -> Result<SharedSdk, PullError> {
    let path: PathBuf = match (&source.config.sdk_path, &settings.wecom_sdk) {
        (p, _) if !p.is_empty() => PathBuf::from(p),
        (_, Some(p)) => p.clone(),
        _ => {
            return Err(PullError::Fatal(
                "no WeCom finance SDK: set the source's sdk_path or HUIXI_WECOM_SDK".into(),
            ))
        }
    };
    let (corpid, secret) = (source.config.corpid.clone(), source.config.secret.clone());
    let opened = tokio::task::spawn_blocking(move || Sdk::open(&path, &corpid, &secret))
        .await
        .map_err(|e| PullError::Transient(format!("SDK thread: {e}")))?;
    opened
        .map(|sdk| Arc::new(Mutex::new(sdk)))
        .map_err(PullError::Fatal)
}

/// Runs an SDK call on a blocking thread, retrying transient errors with growing pauses.
pub async fn call<T: Send + 'static>(
    sdk: &SharedSdk,
    f: impl Fn(&Sdk) -> Result<T, SdkError> + Send + Sync + Clone + 'static,
) -> Result<T, PullError> {
    let mut pause = Duration::from_millis(500);
    for attempt in 1..=TRIES {
        let (sdk, f) = (sdk.clone(), f.clone());
        let result = tokio::task::spawn_blocking(move || f(&sdk.lock().expect("SDK lock")))
            .await
            .map_err(|e| PullError::Transient(format!("SDK thread: {e}")))?;
        match result {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && attempt < TRIES => {
                metrics::counter!("huixi_wecom_sdk_retries_total").increment(1);
                tracing::info!("{e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) if e.retryable() => return Err(PullError::Transient(e.to_string())),
            Err(e) => return Err(PullError::Fatal(e.to_string())),
        }
    }
    unreachable!("the last attempt returns")
}

/// Pulls pages from the source's cursor until WeCom has no more; returns the SDK for the media.
async fn pull(
    ctx: &Context,
    settings: &IngestSettings,
    owner: &str,
    source: &WecomSource,
) -> Result<SharedSdk, PullError> {
    let tenant = &source.tenant;
    let ring = KeyRing::parse(&source.config.private_keys).map_err(PullError::Fatal)?;
    let sdk = open_sdk(settings, source).await?;
    let mut cursor = source.cursor;
    loop {
        if !ctx.store.take_wecom_lease(tenant, owner, LEASE_MS).await? {
            return Err(PullError::Transient(
                "the lease went to another replica".into(),
            ));
        }
        let seq = cursor as u64;
        let body = call(&sdk, move |s| s.chat_data(seq, PAGE)).await?;
        let page: Page = serde_json::from_slice(&keys::strip_control(&body)).map_err(|e| {
            PullError::Transient(format!("GetChatData answered what is not its JSON: {e}"))
        })?;
        if page.errcode != 0 {
            let e = SdkError {
                call: "GetChatData",
                code: page.errcode,
            };
            let why = format!("{e}: {}", page.errmsg);
            return Err(match e.retryable() {
                true => PullError::Transient(why),
                false => PullError::Fatal(why),
            });
        }
        if page.chatdata.is_empty() {
            return Ok(sdk);
        }
        let full = page.chatdata.len() >= PAGE as usize;
        let read = read_page(&sdk, &ring, page.chatdata).await?;
        let Some(to_seq) = read.last_seq else {
            return Err(PullError::Fatal(
                "GetChatData listed items without a seq".into(),
            ));
        };
        let commit = PageCommit {
            owner: owner.to_string(),
            from_seq: cursor,
            to_seq,
            newest_msgtime: read.messages.iter().map(|m| m.msgtime).max().unwrap_or(0),
            quarantine: read.quarantine,
            media: Vec::new(),
        };
        let built = ctx
            .tenants
            .get(tenant)
            .await
            .map_err(|e| PullError::Transient(e.to_string()))?;
        let done = super::accept_page(&ctx.store, &built, &read.messages, &commit).await?;
        metrics::gauge!("huixi_wecom_cursor", "tenant" => tenant.clone()).set(to_seq as f64);
        if commit.newest_msgtime > 0 {
            let lag = (chrono::Utc::now().timestamp_millis() - commit.newest_msgtime) / 1000;
            metrics::gauge!("huixi_ingest_lag_seconds", "tenant" => tenant.clone()).set(lag as f64);
        }
        tracing::info!(%tenant, from = cursor, to = to_seq, new = done.new, alerts = done.alerts.len(), quarantined = commit.quarantine.len(), "WeCom page stored");
        cursor = to_seq;
        if !full {
            return Ok(sdk);
        }
    }
}

/// A page's items, read: messages, and what could not be read.
#[derive(Default)]
struct ReadPage {
    messages: Vec<Message>,
    quarantine: Vec<(i64, String, String, String)>,
    last_seq: Option<i64>,
}

/// Decrypts and parses a page's items; an item that fails is quarantined, never dropped.
async fn read_page(
    sdk: &SharedSdk,
    ring: &KeyRing,
    items: Vec<serde_json::Value>,
) -> Result<ReadPage, PullError> {
    let mut out = ReadPage::default();
    for value in items {
        let raw = value.to_string();
        let item: Item = match serde_json::from_value(value) {
            Ok(i) => i,
            Err(e) => {
                // Without a seq the item cannot even be placed; WeCom always sends one.
                return Err(PullError::Fatal(format!(
                    "GetChatData listed an item that is not one ({e}): {}",
                    raw.chars().take(200).collect::<String>()
                )));
            }
        };
        out.last_seq = Some(out.last_seq.map_or(item.seq, |s: i64| s.max(item.seq)));
        match read_item(sdk, ring, &item).await? {
            Ok(m) => out.messages.push(m),
            Err(reason) => {
                metrics::counter!("huixi_wecom_quarantined_total").increment(1);
                out.quarantine
                    .push((item.seq, item.msgid.clone(), raw, reason));
            }
        }
    }
    Ok(out)
}

/// One item's message, or why it cannot be read (the outer error: the SDK itself failed).
async fn read_item(
    sdk: &SharedSdk,
    ring: &KeyRing,
    item: &Item,
) -> Result<Result<Message, String>, PullError> {
    let key = match ring.random_key(item.publickey_ver, &item.encrypt_random_key) {
        Ok(k) => k,
        Err(why) => return Ok(Err(why)),
    };
    let msg = item.encrypt_chat_msg.clone();
    let plain = match call(sdk, move |s| s.decrypt(&key, &msg)).await {
        Ok(p) => p,
        // A decrypt that fails for this item (a bad key: 10006, 10008) is the item's problem.
        Err(PullError::Fatal(why)) => return Ok(Err(why)),
        Err(e) => return Err(e),
    };
    let text = match String::from_utf8(keys::strip_control(&plain)) {
        Ok(t) => t,
        Err(_) => return Ok(Err("the decrypted message is not UTF-8".into())),
    };
    Ok(Message::parse_input(&text).map_err(|e| format!("decrypted message: {e}")))
}

/// Reads quarantined items again (after a key was added, say); returns (stored, still quarantined).
pub async fn replay(
    ctx: &Context,
    settings: &IngestSettings,
    tenant: &str,
) -> anyhow::Result<(usize, usize)> {
    let Some(source) = ctx.store.wecom_source(tenant).await? else {
        anyhow::bail!("tenant {tenant:?} has no WeCom source");
    };
    let ring = KeyRing::parse(&source.config.private_keys).map_err(anyhow::Error::msg)?;
    let sdk = open_sdk(settings, &source).await?;
    let built = ctx.tenants.get(tenant).await?;
    let (mut stored, mut still) = (0, 0);
    // A quarantine is the exception (a missing key, a malformed item): it is read whole.
    for q in ctx.store.quarantined(tenant, 1_000_000).await? {
        let value: serde_json::Value = serde_json::from_str(&q.raw)?;
        let item: Item = serde_json::from_value(value)?;
        match read_item(&sdk, &ring, &item).await? {
            Ok(m) => {
                super::accept(&ctx.store, &built, &[m], super::Then::WhenIdle).await?;
                ctx.store.settle_quarantined(q.id, None).await?;
                stored += 1;
            }
            Err(reason) => {
                ctx.store.settle_quarantined(q.id, Some(&reason)).await?;
                still += 1;
            }
        }
    }
    Ok((stored, still))
}

/// Private keys from `VERSION=FILE` pairs, as `huixi ingest wecom set --key` takes them.
pub fn read_keys(pairs: &[String]) -> anyhow::Result<BTreeMap<u32, String>> {
    let mut keys = BTreeMap::new();
    for pair in pairs {
        let Some((version, path)) = pair.split_once('=') else {
            anyhow::bail!("--key {pair:?}: expected VERSION=FILE, e.g. 1=private_key_v1.pem");
        };
        let version: u32 = version
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--key {pair:?}: the version must be a number"))?;
        let pem = std::fs::read_to_string(path.trim())
            .map_err(|e| anyhow::anyhow!("--key {pair:?}: cannot read {path}: {e}"))?;
        keys.insert(version, pem);
    }
    Ok(keys)
}
