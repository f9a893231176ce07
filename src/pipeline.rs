//! One analysis run, left to right: read archive files → keep new messages in the store → re-sessionize
//! every conversation the input touched → for each session whose input changed: sensitive/risk matching,
//! then the analysers → write results, one transaction per session.
//!
//! A session is analysed again only when its messages, the lexicon, the rules or the analysers changed
//! (its input hash), which is what makes a re-run on the same input leave the store untouched.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::agents::llm::LlmAnalysers;
use crate::agents::offline::OfflineAnalysers;
use crate::agents::Passage;
use crate::agents::SessionResult;
use crate::archive::{conversation_key, read_files, sessionize, RejectedLine, Session};
use crate::customers::{contributions, refresh, CustomerProfile, Duplicate, TagLibrary};
use crate::digest::hex;
use crate::kb::Knowledge;
use crate::sensitive::{scan_session, Alert, Engine, Registry, RiskRules};
use crate::store::{MetricsFilter, RunRecord, Store, TenantSettings};
use crate::trajectory::{self, session_metrics, SessionMetrics, StaffDay, TIMEOUT_KIND};

pub struct Options {
    pub tenant: String,
    pub idle_gap_ms: i64,
    pub rules: RiskRules,
}

/// The analysis backends of a run: the offline analysers always (they also supply the facts computed
/// from timestamps and rules), and a model endpoint when one is configured.
pub struct Analysers<'a> {
    pub offline: &'a OfflineAnalysers,
    pub llm: Option<&'a LlmAnalysers>,
    /// Tenant knowledge bases, searched for the agents that declare retrieval.
    pub kb: Option<&'a Knowledge>,
}

/// What `huixi analyze --json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tenant: String,
    pub sessions: usize,
    pub messages: usize,
    pub rejected_lines: Vec<RejectedLine>,
    pub alerts: Vec<Alert>,
    pub results: Vec<SessionResult>,
    /// 会话轨迹 of the sessions above, and per staff member and day over the days they cover.
    pub metrics: RunMetrics,
    /// Profiles of the customers in the sessions above, across all their sessions.
    pub customers: Vec<CustomerProfile>,
    /// 撞单 involving those customers.
    pub duplicates: Vec<Duplicate>,
    #[serde(skip)]
    pub stats: RunRecord,
}

#[derive(Debug, Default, Serialize)]
pub struct RunMetrics {
    pub sessions: Vec<SessionMetrics>,
    pub staff_days: Vec<StaffDay>,
    /// Local dates the sessions have messages on.
    #[serde(skip)]
    pub days: BTreeSet<String>,
}

/// Called once per conversation finished, for progress display.
pub trait Progress {
    fn start(&self, conversations: u64);
    fn advance(&self);
}

impl Progress for indicatif::ProgressBar {
    fn start(&self, conversations: u64) {
        self.set_length(conversations);
    }
    fn advance(&self) {
        self.inc(1);
    }
}

pub async fn analyze(
    store: &Store,
    lexicons: &Registry,
    analysers: &Analysers<'_>,
    files: &[PathBuf],
    opts: &Options,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let input = read_files(files)?;
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let run = store.start_run(&opts.tenant, &names).await?;
    store.record_rejected(run, &input.rejected).await?;
    let mut stats = RunRecord {
        messages_read: input.messages.len() as u64,
        ..RunRecord::default()
    };
    stats.messages_new = store
        .insert_messages(&opts.tenant, &input.messages)
        .await
        .context("storing messages")?;
    let conversations: BTreeSet<String> =
        input.messages.iter().filter_map(conversation_key).collect();
    progress.start(conversations.len() as u64);

    let mut report = Report {
        tenant: opts.tenant.clone(),
        sessions: 0,
        messages: input.messages.len(),
        rejected_lines: input.rejected,
        alerts: Vec::new(),
        results: Vec::new(),
        metrics: RunMetrics::default(),
        customers: Vec::new(),
        duplicates: Vec::new(),
        stats: RunRecord::default(),
    };
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for key in &conversations {
        let done = analyze_conversation(
            store,
            lexicons,
            analysers,
            opts,
            Some(run),
            key,
            Fold::AfterBatch(&mut touched),
        )
        .await?;
        stats.sessions += done.sessions as u64;
        stats.sessions_analysed += done.written as u64;
        stats.alerts += done.alerts.len() as u64;
        report.alerts.extend(done.alerts);
        report.results.extend(done.results);
        report.metrics.sessions.extend(done.metrics);
        report.metrics.days.extend(done.days);
        progress.advance();
    }
    report.sessions = report.results.len();
    // A batch folds each customer once, after all their conversations in it were analysed.
    let settings = store.tenant_settings(&opts.tenant).await?;
    let library = settings.tag_library.as_ref();
    report.customers = refresh_customers(store, analysers, opts, library, touched).await?;
    report.customers.sort_by(|a, b| a.customer.cmp(&b.customer));
    // Questions left unanswered in conversations this run did not touch fall due as the archive
    // moves on; they are raised now, with this run.
    report
        .alerts
        .extend(store.raise_quiet_timeouts(Some(&opts.tenant)).await?);
    for d in report.customers.iter().flat_map(|c| &c.duplicates) {
        if !report.duplicates.contains(d) {
            report.duplicates.push(d.clone());
        }
    }
    report.metrics.staff_days = run_staff_days(store, &opts.tenant, &report.metrics).await?;
    store
        .finish_run(run, report.rejected_lines.len(), &stats)
        .await?;
    report.stats = stats;
    Ok(report)
}

/// What analysing one conversation produced.
pub struct ConversationDone {
    pub sessions: usize,
    /// Sessions whose analysis was written now (the others were unchanged since the last analysis).
    pub written: usize,
    pub results: Vec<SessionResult>,
    pub alerts: Vec<Alert>,
    pub metrics: Vec<SessionMetrics>,
    /// Local dates the sessions have messages on.
    pub days: BTreeSet<String>,
}

/// When the profiles of a conversation's customers are folded again.
pub enum Fold<'a> {
    /// Right after the conversation: a worker's job, or a re-analysis.
    Now,
    /// After the batch, once per customer: the customers are added to the set.
    AfterBatch(&'a mut BTreeSet<String>),
}

#[tracing::instrument(skip_all, fields(tenant = %opts.tenant, conversation = %key))]
/// Rebuilds a conversation's sessions from everything stored for it and analyses each session whose
/// inputs changed since it was last analysed. Running it twice, or concurrently, writes each session
/// once: that is what lets a queue deliver a job more than once.
pub async fn analyze_conversation(
    store: &Store,
    lexicons: &Registry,
    analysers: &Analysers<'_>,
    opts: &Options,
    run: Option<i64>,
    key: &str,
    fold: Fold<'_>,
) -> anyhow::Result<ConversationDone> {
    // A lexicon file edited during a long run applies from the next conversation on; the engine's
    // fingerprint in the input hash keeps results from the old and new lexicon apart.
    for (tenant, reloaded) in lexicons.reload_changed() {
        match reloaded {
            Ok(errors) => {
                tracing::info!(%tenant, skipped_lines = errors.len(), "lexicon reloaded");
                for e in errors {
                    tracing::warn!("skipped line: {e}");
                }
            }
            Err(e) => tracing::warn!(%tenant, "lexicon not reloaded, keeping the old one: {e}"),
        }
    }
    let engine = lexicons.engine(&opts.tenant);
    // Sessions are rebuilt from everything stored for the conversation, not just the latest input: a
    // message arriving late in another file may bridge two sessions into one.
    let messages = store.conversation_messages(&opts.tenant, key).await?;
    if messages.is_empty() {
        anyhow::bail!(
            "conversation {key:?} of tenant {:?} has no stored messages",
            opts.tenant
        );
    }
    let sessions = sessionize(&opts.tenant, messages, opts.idle_gap_ms);
    let stored = store.sessions_of(&opts.tenant, key).await?;
    let mut done = ConversationDone {
        sessions: sessions.len(),
        written: 0,
        results: Vec::new(),
        alerts: Vec::new(),
        metrics: Vec::new(),
        days: BTreeSet::new(),
    };
    for session in &sessions {
        // Passages are part of the input: a changed knowledge base is a reason to analyse again.
        let passages = match (analysers.llm, analysers.kb) {
            (Some(_), Some(kb)) => kb.passages(&opts.tenant, session).await?,
            _ => Vec::new(),
        };
        let hash = input_hash(session, &engine, analysers, opts, &passages);
        let unchanged = stored
            .iter()
            .any(|s| s.id == session.id && s.input_hash == hash);
        let loaded = if unchanged {
            store.load_session(&opts.tenant, &session.id).await?
        } else {
            None
        };
        let (result, alerts) = match loaded {
            Some(found) => found,
            None => {
                let alerts = scan_session(&engine, &opts.rules, session);
                let mut result = analysers.offline.analyse(session, &alerts);
                if let Some(llm) = analysers.llm {
                    let (from_model, mut usage) =
                        llm.analyse(&opts.tenant, session, &result, &passages).await;
                    for u in &mut usage {
                        u.run_id = run;
                    }
                    store.record_usage(&usage).await?;
                    for u in &usage {
                        metrics::counter!("huixi_llm_tokens_total", "kind" => "prompt")
                            .increment(u.prompt_tokens);
                        metrics::counter!("huixi_llm_tokens_total", "kind" => "completion")
                            .increment(u.completion_tokens);
                        metrics::counter!("huixi_llm_cost_micros_total")
                            .increment((u.cost * 1e6) as u64);
                    }
                    result = from_model;
                }
                // A session with a failed agent is stored under a hash no input matches, so the
                // next run tries it again (answers that did succeed come from the cache).
                let stored_hash = if result.failures.is_empty() {
                    hash.clone()
                } else {
                    format!("retry:{hash}")
                };
                let written = store
                    .save_session(&opts.tenant, session, &stored_hash, &result, &alerts)
                    .await
                    .with_context(|| format!("saving session {}", session.id))?;
                done.written += written as usize;
                if written {
                    for a in &alerts {
                        metrics::counter!("huixi_alerts_total", "severity" => a.severity.as_str())
                            .increment(1);
                    }
                }
                (result, alerts)
            }
        };
        done.alerts.extend(alerts);
        done.results.push(result);
    }
    for gone in stored
        .iter()
        .filter(|s| !sessions.iter().any(|n| n.id == s.id))
    {
        store.delete_session(&opts.tenant, &gone.id).await?;
    }
    let settings = store.tenant_settings(&opts.tenant).await?;
    let customers = beyond_sessions(store, opts, &settings, key, &sessions, &mut done).await?;
    match fold {
        // The profiles are in the store, which is where a worker's job leaves its results.
        Fold::Now => {
            let library = settings.tag_library.as_ref();
            refresh_customers(store, analysers, opts, library, customers).await?;
        }
        Fold::AfterBatch(touched) => touched.extend(customers),
    }
    Ok(done)
}

/// What spans sessions, recomputed whenever a conversation is analysed: its metrics (a reply in the
/// next session still answers the last one) and its customers' contributions. Returns the customers
/// whose profiles to fold again.
async fn beyond_sessions(
    store: &Store,
    opts: &Options,
    settings: &TenantSettings,
    key: &str,
    sessions: &[Session],
    done: &mut ConversationDone,
) -> anyhow::Result<BTreeSet<String>> {
    let tenant = opts.tenant.as_str();
    let hours = settings
        .calendar
        .hours()
        .map_err(|e| anyhow::anyhow!("calendar of tenant {tenant:?}: {e}"))?;
    let horizon = store.archive_horizon(tenant).await?;
    // Stored sessions come back with the timeouts raised last time; they are raised afresh here.
    done.alerts.retain(|a| a.kind != TIMEOUT_KIND);
    let measured = trajectory::measure(sessions, &done.results, &done.alerts, &hours, horizon);
    done.metrics = sessions
        .iter()
        .map(|s| session_metrics(&s.id, &measured.turns, &measured.traffic, horizon))
        .collect();
    done.days = measured.traffic.iter().map(|t| t.day.clone()).collect();
    done.alerts.extend(measured.timeouts.iter().cloned());

    let contributed: Vec<_> = sessions
        .iter()
        .zip(&done.results)
        .flat_map(|(s, r)| contributions(s, r))
        .collect();
    let mut customers = store
        .replace_conversation_extras(tenant, key, &measured, &contributed)
        .await
        .with_context(|| format!("saving the metrics and customer contributions of {key}"))?;
    // All of the conversation's customers, changed or not: a re-analysis asked for recomputes them.
    customers.extend(contributed.into_iter().map(|c| c.customer));
    Ok(customers)
}

/// Folds the profiles of these customers again, and of the customers found to share a phone or name
/// with them (their 撞单 changed too).
async fn refresh_customers(
    store: &Store,
    analysers: &Analysers<'_>,
    opts: &Options,
    library: Option<&TagLibrary>,
    customers: BTreeSet<String>,
) -> anyhow::Result<Vec<CustomerProfile>> {
    let tenant = opts.tenant.as_str();
    let mut customers: Vec<String> = customers.into_iter().rev().collect();
    let mut refreshed: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while let Some(customer) = customers.pop() {
        if !refreshed.insert(customer.clone()) {
            continue;
        }
        let Some(profile) = refresh(store, tenant, &customer, library, analysers.llm).await? else {
            continue;
        };
        // A phone this customer wrote may also be another customer's: their 撞单 changed too.
        for d in &profile.duplicates {
            customers.extend(
                d.customers
                    .iter()
                    .filter(|c| !refreshed.contains(*c))
                    .cloned(),
            );
        }
        out.push(profile);
    }
    Ok(out)
}

/// Per staff member and day, over the days the run's sessions touched, for the staff in them.
async fn run_staff_days(
    store: &Store,
    tenant: &str,
    metrics: &RunMetrics,
) -> anyhow::Result<Vec<StaffDay>> {
    let (Some(first), Some(last)) = (metrics.days.first(), metrics.days.last()) else {
        return Ok(Vec::new());
    };
    let staff: BTreeSet<&str> = metrics
        .sessions
        .iter()
        .flat_map(|m| m.staff.iter().map(String::as_str))
        .collect();
    let filter = MetricsFilter {
        from_day: Some(first.clone()),
        to_day: Some(last.clone()),
        ..MetricsFilter::default()
    };
    let (turns, traffic) = store.metrics_rows(tenant, &filter).await?;
    let horizon = store.archive_horizon(tenant).await?;
    Ok(trajectory::staff_days(&turns, &traffic, horizon)
        .into_iter()
        .filter(|d| staff.contains(d.staff.as_str()) && metrics.days.contains(&d.day))
        .collect())
}

fn input_hash(
    session: &Session,
    engine: &Engine,
    analysers: &Analysers<'_>,
    opts: &Options,
    passages: &[Passage],
) -> String {
    let mut h = Sha256::new();
    let rules = format!(
        "{}:{}:{}",
        opts.rules.redpacket_threshold_fen, opts.rules.transfer_threshold_fen, opts.idle_gap_ms
    );
    for part in [
        analysers.offline.fingerprint(),
        analysers.llm.map_or("offline", |l| l.fingerprint()),
        engine.fingerprint(),
        rules.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for m in &session.messages {
        h.update(m.raw.as_bytes());
        h.update([0]);
    }
    for p in passages {
        h.update(p.id.as_bytes());
        h.update(p.text.as_bytes());
        h.update([0]);
    }
    hex(&h.finalize())
}
