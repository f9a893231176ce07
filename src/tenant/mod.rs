//! Tenants: one deployment, many companies, each with its own configuration as data in the store
//! (lexicon and whitelist, competitors, thresholds, idle gap, calendar, tag library, agent overrides,
//! knowledge-base documents). The deployment's flags and files are only the defaults under it.
//!
//! A job names its tenant; [`Tenants::get`] resolves it to a [`Tenant`] — everything that tenant's
//! analysis needs, built (automaton compiled, templates checked) once per version of its configuration
//! and shared by every job of that version. Whether the built one is still current is asked of the
//! store at most every [`CHECK_EVERY`], so a change made through any replica's API is live on every
//! worker within that time, without a restart.

pub mod change;
pub mod document;

use std::sync::Arc;
use std::time::Duration;

use crate::agents::llm::{LlmAnalysers, Prices};
use crate::agents::offline::OfflineAnalysers;
use crate::agents::{AgentSet, Sources};
use crate::analysis;
use crate::kb::Knowledge;
use crate::llm::{AnswerCache, Endpoint};
use crate::sensitive::behaviour::Behaviours;
use crate::sensitive::{Engine, Lexicon, LineError, RiskRules};
use crate::store::{Store, StoredTenant, TenantSettings};
use crate::trajectory::Hours;
pub use document::{Competitor, SettingsDocument};

/// How stale a worker's view of a tenant's configuration may be.
pub const CHECK_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The tenant's knowledge base could not be brought up to its stored documents.
    #[error("knowledge base of tenant {tenant:?}: {source}")]
    Kb {
        tenant: String,
        source: crate::kb::KbError,
    },
    /// The stored configuration does not build: only possible if it was written around the API.
    #[error("configuration of tenant {tenant:?} (version {version}): {message}")]
    Invalid {
        tenant: String,
        version: i64,
        message: String,
    },
}

/// What the deployment's flags and files say, for tenants that did not say otherwise.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub lexicon: Lexicon,
    /// The competitor list: where it came from, and its text (`name,alias|alias` lines).
    pub competitors: (String, String),
    pub redpacket_threshold_yuan: f64,
    pub transfer_threshold_yuan: f64,
    pub idle_gap_minutes: i64,
    pub agents: Sources,
}

/// The model endpoint and what every tenant's model analysers share.
pub struct Models {
    pub endpoint: Arc<Endpoint>,
    pub combined: bool,
    /// `--llm-triage`: see [`LlmAnalysers::with_triage`].
    pub triage: Option<f64>,
    pub cache: AnswerCache,
    pub prices: Prices,
}

/// One tenant's configuration, resolved and built.
pub struct Tenant {
    pub id: String,
    /// The store's version of the configuration this was built from (0: nothing configured).
    pub version: i64,
    pub settings: TenantSettings,
    pub hours: Hours,
    /// The settings in effect, the deployment's defaults filled in.
    pub effective: Effective,
    pub engine: Arc<Engine>,
    pub offline: OfflineAnalysers,
    pub agents: AgentSet,
    pub llm: Option<LlmAnalysers>,
    pub rules: RiskRules,
    pub idle_gap_ms: i64,
    /// Whether the lexicon is the tenant's own upload.
    pub own_lexicon: bool,
}

/// The settings document with every field decided, as `GET /v1/settings` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Effective {
    pub competitors: Vec<Competitor>,
    pub redpacket_threshold_yuan: f64,
    pub transfer_threshold_yuan: f64,
    pub idle_gap_minutes: i64,
    /// Every sensitive behaviour's rule as it applies.
    pub behaviours: Behaviours,
}

impl Tenant {
    /// The configuration of this tenant's analysis, for [`analysis`].
    pub fn config(&self) -> analysis::Config<'_> {
        analysis::Config {
            tenant: &self.id,
            idle_gap_ms: self.idle_gap_ms,
            rules: &self.rules,
            engine: &self.engine,
            offline: &self.offline,
            model: self.llm.as_ref().map_or("offline", |l| l.fingerprint()),
            hours: &self.hours,
        }
    }

    /// What every session's input hash holds of the configuration: a change in any part of it
    /// re-reads this tenant's sessions, and nobody else's.
    pub fn fingerprint(&self) -> String {
        analysis::config_fingerprint(&self.config())
    }
}

/// Every tenant's built configuration, shared by the jobs of a process.
pub struct Tenants {
    store: Store,
    defaults: Defaults,
    default_engine: Arc<Engine>,
    offline: OfflineAnalysers,
    models: Option<Models>,
    kb: Option<Knowledge>,
    /// The version last read per tenant; expires after [`CHECK_EVERY`], which is what makes a worker
    /// ask again.
    versions: moka::future::Cache<String, i64>,
    /// The newest built configuration of each tenant.
    built: moka::future::Cache<String, Arc<Tenant>>,
    building: tokio::sync::Mutex<()>,
}

impl Tenants {
    /// `offline` carries the default competitor list already.
    pub fn new(
        store: Store,
        defaults: Defaults,
        offline: OfflineAnalysers,
        models: Option<Models>,
        kb: Option<Knowledge>,
    ) -> Tenants {
        Tenants {
            store,
            default_engine: Arc::new(Engine::build(&defaults.lexicon)),
            defaults,
            offline,
            models,
            kb,
            versions: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(CHECK_EVERY)
                .build(),
            built: moka::future::Cache::builder()
                .max_capacity(1_000)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
            building: tokio::sync::Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn kb(&self) -> Option<&Knowledge> {
        self.kb.as_ref()
    }

    pub fn models(&self) -> Option<&Models> {
        self.models.as_ref()
    }

    pub fn defaults(&self) -> &Defaults {
        &self.defaults
    }

    /// The tenant's configuration as it is now, give or take [`CHECK_EVERY`].
    pub async fn get(&self, tenant: &str) -> Result<Arc<Tenant>, TenantError> {
        let version = match self.versions.get(tenant).await {
            Some(v) => v,
            None => {
                let v = self.store.tenant_version(tenant).await?;
                self.versions.insert(tenant.to_string(), v).await;
                v
            }
        };
        let current = |b: &Arc<Tenant>| b.version >= version;
        if let Some(built) = self.built.get(tenant).await.filter(current) {
            return Ok(built);
        }
        // One build at a time: jobs of a tenant whose configuration just changed wait for the one
        // build of the new version instead of each compiling its automaton.
        let _building = self.building.lock().await;
        if let Some(built) = self.built.get(tenant).await.filter(current) {
            return Ok(built);
        }
        let stored = self.store.stored_tenant(tenant).await?;
        let built = Arc::new(self.build(tenant, &stored)?);
        // The knowledge base is materialised here from the documents in the store: this process's
        // embedded index may be on another machine than the API that took the upload. A new version
        // is the only time it can have changed; unchanged documents cost a digest comparison.
        if let Some(kb) = &self.kb {
            let synced = kb
                .sync(tenant, || self.store.kb_document_bodies(tenant))
                .await
                .map_err(|source| TenantError::Kb {
                    tenant: tenant.to_string(),
                    source,
                })?;
            if !synced.is_empty() {
                tracing::info!(tenant, documents = synced.len(), "knowledge base synced");
            }
        }
        tracing::info!(
            tenant,
            version = built.version,
            "tenant configuration loaded"
        );
        // Replaces the tenant's older build: one automaton per tenant in memory, not one per upload.
        self.built.insert(tenant.to_string(), built.clone()).await;
        Ok(built)
    }

    /// The tenant's configuration at the newest version, now: for a change the caller just made.
    pub async fn fresh(&self, tenant: &str) -> Result<Arc<Tenant>, TenantError> {
        self.forget(tenant).await;
        self.get(tenant).await
    }

    /// Makes the next [`Tenants::get`] ask the store: this process made a change and must not wait
    /// out [`CHECK_EVERY`] to see it.
    pub async fn forget(&self, tenant: &str) {
        self.versions.invalidate(tenant).await;
    }

    /// Builds a tenant from what it stored. The API calls it with a configuration before storing
    /// it, so nothing that does not build is ever stored.
    pub fn build(&self, tenant: &str, stored: &StoredTenant) -> Result<Tenant, TenantError> {
        let invalid = |message: String| TenantError::Invalid {
            tenant: tenant.to_string(),
            version: stored.version,
            message,
        };
        let doc = match &stored.document {
            Some(json) => SettingsDocument::from_stored(json)
                .map_err(|e| invalid(format!("settings document: {e}")))?,
            None => SettingsDocument::default(),
        };
        let d = &self.defaults;
        let (offline, competitors) = match &doc.competitors {
            Some(list) => {
                let text = document::competitor_lines(list);
                let (offline, errors) = self
                    .offline
                    .with_competitors(&format!("competitors of {tenant}"), &text);
                warn_lines(tenant, &errors);
                (offline, list.clone())
            }
            None => (self.offline.clone(), parse_competitors(&d.competitors.1)),
        };
        let effective = Effective {
            competitors,
            redpacket_threshold_yuan: doc
                .redpacket_threshold_yuan
                .unwrap_or(d.redpacket_threshold_yuan),
            transfer_threshold_yuan: doc
                .transfer_threshold_yuan
                .unwrap_or(d.transfer_threshold_yuan),
            idle_gap_minutes: doc.idle_gap_minutes.unwrap_or(d.idle_gap_minutes),
            behaviours: match &doc.behaviours {
                Some(patches) => {
                    Behaviours::patched(patches).map_err(|e| invalid(format!("behaviours: {e}")))?
                }
                None => Behaviours::default(),
            },
        };
        let (engine, own_lexicon) = match &stored.lexicon {
            Some((lexicon, whitelist)) => {
                let mut lex = if lexicon.trim().is_empty() {
                    d.lexicon.clone()
                } else {
                    let (lex, errors) = Lexicon::parse(&format!("lexicon of {tenant}"), lexicon);
                    warn_lines(tenant, &errors);
                    lex
                };
                if !whitelist.trim().is_empty() {
                    let (words, errors) =
                        Lexicon::parse_whitelist(&format!("whitelist of {tenant}"), whitelist);
                    warn_lines(tenant, &errors);
                    lex.whitelist = words;
                }
                (Arc::new(Engine::build(&lex)), true)
            }
            None => (self.default_engine.clone(), false),
        };
        let mut agents = AgentSet::load_for(&d.agents, tenant, &stored.agents)
            .map_err(|e| invalid(e.to_string()))?;
        // The competitors agent is told the tenant's list (its prompt reads `vars.competitors`),
        // unless the tenant's override of it says otherwise.
        if let Some(a) = agents.agents.iter_mut().find(|a| a.name == "competitors") {
            a.vars
                .entry("competitors".to_string())
                .or_insert_with(|| serde_json::Value::String(describe(&effective.competitors)));
        }
        let llm = match &self.models {
            Some(m) => Some(
                LlmAnalysers::new(
                    m.endpoint.clone(),
                    agents.clone(),
                    m.combined,
                    m.cache.clone(),
                    m.prices,
                )
                .map_err(|e| invalid(format!("prompt templates: {e}")))?
                .with_triage(m.triage),
            ),
            None => None,
        };
        let hours = stored
            .settings
            .calendar
            .hours()
            .map_err(|e| invalid(format!("calendar: {e}")))?;
        Ok(Tenant {
            id: tenant.to_string(),
            version: stored.version,
            settings: stored.settings.clone(),
            hours,
            rules: RiskRules {
                redpacket_threshold_fen: fen(effective.redpacket_threshold_yuan),
                transfer_threshold_fen: fen(effective.transfer_threshold_yuan),
                behaviours: effective.behaviours.clone(),
            },
            idle_gap_ms: effective.idle_gap_minutes * 60_000,
            effective,
            engine,
            offline,
            agents,
            llm,
            own_lexicon,
        })
    }
}

/// The list as the competitors prompt shows it: `销售易（XSY、neocrm）；飞书（Lark）`.
fn describe(list: &[Competitor]) -> String {
    list.iter()
        .map(|c| {
            if c.aliases.is_empty() {
                c.name.clone()
            } else {
                format!("{}（{}）", c.name, c.aliases.join("、"))
            }
        })
        .collect::<Vec<_>>()
        .join("；")
}

fn fen(yuan: f64) -> i64 {
    (yuan * 100.0).round() as i64
}

/// The default competitor file as entries, for showing the effective settings.
fn parse_competitors(text: &str) -> Vec<Competitor> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (name, aliases) = l.split_once(',').unwrap_or((l, ""));
            let name = name.trim();
            (!name.is_empty()).then(|| Competitor {
                name: name.to_string(),
                aliases: aliases
                    .split('|')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

fn warn_lines(tenant: &str, errors: &[LineError]) {
    for e in errors {
        tracing::warn!(tenant, "skipped line: {e}");
    }
}
