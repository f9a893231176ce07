//! One analysis run, left to right: read archive files a batch at a time → keep new messages in the
//! store → for each conversation the input touched: load it, analyse it ([`crate::analysis`]), commit
//! it → fold the profiles of the customers those commits made stale, each once → report.
//!
//! A session is analysed again only when its messages, the lexicon, the rules or the analysers changed
//! (its input hash), and a conversation writes only what differs from what the store holds, which is
//! what makes a re-run on the same input leave the store untouched. Memory is bounded by one
//! conversation and one batch of messages, not by the archive: the report is streamed to a sink.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use tracing::Instrument;

use crate::agents::llm::LlmAnalysers;
use crate::analysis::{self, ConversationOutput, Reading};
use crate::archive::{conversation_key, ArchiveReader, Message, RejectedLine};
use crate::customers::{refresh_many, CustomerProfile, Duplicate};
use crate::kb::Knowledge;
use crate::sensitive::Alert;
use crate::store::{
    BatchTransaction, Committed, MetricsFilter, RunRecord, SettledFile, Store, StoredConversation,
};
use crate::tenant::{Tenant, Tenants};
use crate::trajectory::{self, StaffDay};

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

/// Where a run's report goes, piece by piece as the run makes it: `huixi analyze` streams JSON or a
/// readable summary.
pub trait ReportSink {
    fn conversation(&mut self, out: &ConversationOutput) -> std::io::Result<()>;
    fn customer(&mut self, profile: &CustomerProfile) -> std::io::Result<()>;
    fn finish(&mut self, summary: RunSummary) -> std::io::Result<()>;
}

/// What a run reports once every conversation and customer went to the sink.
#[derive(Debug)]
pub struct RunSummary {
    pub tenant: String,
    pub messages: usize,
    pub sessions: usize,
    pub rejected_lines: Vec<RejectedLine>,
    /// Rejected lines beyond those listed, counted only.
    pub rejected_beyond: usize,
    /// 超时未回复 raised in conversations the run did not touch, as the archive moved on.
    pub quiet_timeouts: Vec<Alert>,
    /// Per staff member and day, over the days the run's sessions cover.
    pub staff_days: Vec<StaffDay>,
    /// 撞单 involving the run's customers.
    pub duplicates: Vec<Duplicate>,
    /// Files skipped whole: an earlier run read the same bytes under the same analysis.
    pub unchanged_files: Vec<SettledFile>,
    pub stats: RunRecord,
}

/// Messages read and stored per batch: what a run holds of the archive at once.
const BATCH: usize = 5_000;
/// Conversations a batch loads, and commits, together.
const GROUP: usize = 128;
/// Messages, and conversations, between two commits of a batch on SQLite (see `BatchTransaction`):
/// ≈ 25 MB of the log each at 100k sessions, a second or two of another writer's wait.
const MESSAGES_PER_COMMIT: usize = 50_000;
const CONVERSATIONS_PER_COMMIT: usize = 2_048;

/// `reread`: read every file, even those an earlier run settled (see [`unchanged_files`]).
pub async fn analyze(
    tenants: &Tenants,
    tenant: &Tenant,
    files: &[PathBuf],
    reread: bool,
    progress: &dyn Progress,
    sink: &mut dyn ReportSink,
) -> anyhow::Result<RunRecord> {
    let store = tenants.store();
    let tenant_id = &tenant.id;
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let run = store.start_run(tenant_id, &names).await?;
    let mut stats = RunRecord::default();
    let fingerprint = files_fingerprint(tenant);
    let (to_read, unchanged) =
        unchanged_files(store, tenant_id, files, fingerprint.as_deref(), reread).await?;
    if !unchanged.is_empty() {
        tracing::info!(
            files = unchanged.len(),
            messages = unchanged.iter().map(|f| f.messages).sum::<u64>(),
            "files unchanged since an earlier run, not read again"
        );
    }
    let paths: Vec<PathBuf> = to_read.iter().map(|f| PathBuf::from(&f.path)).collect();
    let mut reader = ArchiveReader::new(&paths);
    let mut conversations: BTreeSet<String> = BTreeSet::new();
    // A batch is stored while the next one is read and parsed: the store's thread and this one
    // work side by side. The batches share transactions (see `BatchTransaction`).
    type Stored = (BatchTransaction, Vec<Message>, u64, Vec<usize>);
    type Storing = tokio::task::JoinHandle<anyhow::Result<Stored>>;
    let store_batch = |mut tx: BatchTransaction, batch: Vec<Message>| -> Storing {
        let (store, tenant) = (store.clone(), tenant_id.clone());
        tokio::spawn(async move {
            let (new, conflicts) = store
                .insert_messages(&mut tx, &tenant, &batch)
                .await
                .context("storing messages")?;
            Ok((tx, batch, new, conflicts))
        })
    };
    // The file and line of each of the batch's messages, to name one the store refuses.
    type ReadAt = Vec<(std::sync::Arc<str>, usize)>;
    let mut storing: Option<(Storing, ReadAt)> = None;
    let mut idle = Some(BatchTransaction::new(store, MESSAGES_PER_COMMIT, true));
    loop {
        let next = reader.next_batch(BATCH)?;
        if let Some((task, at)) = storing.take() {
            let (tx, batch, new, conflicts) = task.await??;
            idle = Some(tx);
            stats.messages_new += new;
            for i in conflicts {
                let why = format!(
                    "msgid {:?} is stored from an earlier run with different content; the stored one is kept",
                    batch[i].msgid
                );
                reader.reject_read(&at, i, why);
            }
        }
        let Some(batch) = next else { break };
        stats.messages_read += batch.len() as u64;
        conversations.extend(batch.iter().filter_map(conversation_key));
        let at = reader.take_batch_at();
        let tx = idle.take().expect("the last batch's transaction came back");
        storing = Some((store_batch(tx, batch), at));
    }
    if let Some(mut tx) = idle {
        tx.commit().await?;
    }
    reader.forget_seen();
    store.record_rejected(run, &reader.rejected).await?;
    tracing::info!(
        messages = stats.messages_read,
        new = stats.messages_new,
        conversations = conversations.len(),
        "messages stored"
    );
    progress.start(conversations.len() as u64);

    let mut customers: BTreeSet<String> = BTreeSet::new();
    let mut staff: BTreeSet<String> = BTreeSet::new();
    let mut days: BTreeSet<String> = BTreeSet::new();
    let mut report = |out: ConversationOutput, committed: Committed| -> std::io::Result<()> {
        stats.sessions += out.sessions.len() as u64;
        stats.sessions_analysed += committed.sessions as u64;
        stats.alerts += out.alerts().count() as u64;
        customers.extend(out.customers());
        staff.extend(out.metrics.traffic.iter().map(|t| t.staff.clone()));
        days.extend(out.days.iter().cloned());
        sink.conversation(&out)?;
        progress.advance();
        Ok(())
    };
    // Three stages at once: the next conversation loading, this one analysed on this thread, the
    // last group committing. The store's I/O runs beside the analysis, not after it, and a group of
    // conversations shares one transaction (one commit, not one per conversation).
    // Every message of the run is stored: how far the archive reaches is known once for all.
    let horizon = store.archive_horizon(tenant_id).await?;
    // Three groups of conversations at once: the next loading, this one analysed on this thread,
    // the last committing. The store's I/O (one step: commit the last, load the next) runs beside
    // the analysis, not after it, and a group shares a statement per table. Groups share
    // transactions on SQLite unless a model is configured: its analysis reads and writes the
    // store (answers cached, tokens counted) while a step runs, and SQLite has one connection.
    type Group = Vec<ConversationOutput>;
    type Step = (
        BatchTransaction,
        Option<(Group, Vec<Committed>)>,
        Vec<StoredConversation>,
    );
    let step = |mut tx: BatchTransaction, done: Option<Group>, next: Option<&[String]>| {
        let (store, tenant) = (store.clone(), tenant_id.clone());
        let next = next.map(<[String]>::to_vec);
        tokio::spawn(async move {
            let committed = match done {
                Some(group) => {
                    let committed = store
                        .commit_conversations_in(&mut tx, &group)
                        .await
                        .with_context(|| {
                            let first = group.first().map_or("", |o| o.conversation.as_str());
                            format!("saving {} conversations from {first}", group.len())
                        })?;
                    Some((group, committed))
                }
                None => None,
            };
            let loaded = match next {
                Some(keys) => {
                    store
                        .load_conversations_in(&mut tx, &tenant, &keys, Some(horizon))
                        .await?
                }
                None => Vec::new(),
            };
            anyhow::Ok::<Step>((tx, committed, loaded))
        })
    };
    let keys: Vec<String> = conversations.iter().cloned().collect();
    let groups: Vec<&[String]> = keys.chunks(GROUP).collect();
    let tx = BatchTransaction::new(store, CONVERSATIONS_PER_COMMIT, tenant.llm.is_none());
    let (mut tx, _, mut stored) = step(tx, None, groups.first().copied()).await??;
    let mut previous: Option<Group> = None;
    for (i, group) in groups.iter().enumerate() {
        let running = step(tx, previous.take(), groups.get(i + 1).copied());
        let mut outs = Vec::with_capacity(group.len());
        for (key, stored) in group.iter().zip(&stored) {
            let why = Occasion {
                run: Some(run),
                asked: false,
            };
            let out = analyse(store, tenants.kb(), tenant, why, key, stored)
                .instrument(conversation_span(tenant_id, key))
                .await?;
            outs.push(out);
        }
        let (back, done, next) = running.await??;
        (tx, stored, previous) = (back, next, Some(outs));
        for (out, c) in done.into_iter().flat_map(|(g, c)| g.into_iter().zip(c)) {
            report(out, c)?;
        }
    }
    let (mut tx, done, _) = step(tx, previous, None).await??;
    tx.commit().await?;
    for (out, c) in done.into_iter().flat_map(|(g, c)| g.into_iter().zip(c)) {
        report(out, c)?;
    }
    tracing::info!(
        sessions = stats.sessions,
        written = stats.sessions_analysed,
        "conversations analysed"
    );
    // A batch folds each customer once, after all their conversations in it were committed.
    let library = tenant.settings.tag_library.as_ref();
    let folded = fold_stale(tenants, Some(tenant_id)).await?;
    tracing::info!(customers = folded.len(), "stale profiles folded");
    let mut duplicates: Vec<Duplicate> = Vec::new();
    let customers: Vec<String> = customers.into_iter().collect();
    // Every customer of the run, brought up to date (a new tag library re-tags them): for most, a
    // comparison of hashes.
    for group in customers.chunks(FOLD_GROUP) {
        for r in refresh_many(store, tenant_id, group, library, tenant.llm.as_ref(), &[]).await? {
            for d in &r.profile.duplicates {
                if !duplicates.contains(d) {
                    duplicates.push(d.clone());
                }
            }
            sink.customer(&r.profile)?;
        }
    }
    tracing::info!(customers = customers.len(), "profiles reported");
    // Questions left unanswered in conversations this run did not touch fall due as the archive
    // moves on; they are raised now, with this run.
    let quiet_timeouts = store.raise_quiet_timeouts(Some(tenant_id)).await?;
    stats.alerts += quiet_timeouts.len() as u64;
    let staff_days = run_staff_days(store, tenant_id, &staff, &days).await?;
    if let Some(fingerprint) = &fingerprint {
        let settled = settled_now(&reader, to_read);
        store
            .settle_files(tenant_id, fingerprint, run, &settled)
            .await?;
    }
    store
        .finish_run(run, reader.rejected.len() + reader.rejected_beyond, &stats)
        .await?;
    sink.finish(RunSummary {
        tenant: tenant_id.clone(),
        messages: stats.messages_read as usize,
        sessions: stats.sessions as usize,
        rejected_lines: std::mem::take(&mut reader.rejected),
        rejected_beyond: reader.rejected_beyond,
        quiet_timeouts,
        staff_days,
        duplicates,
        unchanged_files: unchanged,
        stats: stats.clone(),
    })?;
    Ok(stats)
}

/// What a file's conversations were committed under, for skipping it later: the tenant's analysis
/// (lexicon, rules, analysers, calendar), its tag library and this build. `None` when a model is
/// configured: its readings also depend on the knowledge base, and a run asks again about sessions
/// whose model answers failed, so every file is read.
fn files_fingerprint(tenant: &Tenant) -> Option<String> {
    if tenant.llm.is_some() {
        return None;
    }
    let library = tenant
        .settings
        .tag_library
        .as_ref()
        .map(|l| serde_json::to_string(l).expect("a tag library serializes"))
        .unwrap_or_default();
    Some(crate::digest::hash_parts([
        env!("CARGO_PKG_VERSION"),
        tenant.fingerprint().as_str(),
        library.as_str(),
    ]))
}

/// Splits the run's files into those to read and those an earlier run settled: the same bytes,
/// read to the end with no line rejected and every conversation committed, under the same
/// fingerprint. Reading one again would store no message and change no conversation, only cost a
/// parse and a comparison of every line. A file given twice in one run is read once.
async fn unchanged_files(
    store: &Store,
    tenant: &str,
    files: &[PathBuf],
    fingerprint: Option<&str>,
    reread: bool,
) -> anyhow::Result<(Vec<SettledFile>, Vec<SettledFile>)> {
    let (mut to_read, mut unchanged) = (Vec::new(), Vec::new());
    let mut seen = BTreeSet::new();
    for path in files {
        let (content_hash, bytes) = file_digest(path)?;
        if !seen.insert(content_hash.clone()) {
            continue;
        }
        if let (Some(fingerprint), false) = (fingerprint, reread) {
            if let Some(mut settled) = store
                .settled_file(tenant, &content_hash, fingerprint)
                .await?
            {
                settled.path = path.display().to_string();
                unchanged.push(settled);
                continue;
            }
        }
        to_read.push(SettledFile {
            content_hash,
            path: path.display().to_string(),
            bytes,
            messages: 0,
        });
    }
    Ok((to_read, unchanged))
}

/// SHA-256 of a file's bytes, and their count.
fn file_digest(path: &std::path::Path) -> anyhow::Result<(String, u64)> {
    use sha2::Digest;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The files of this run that it settled: read whole, no line of theirs rejected. A run that
/// rejected more lines than it lists cannot tell whose they were, and settles none.
fn settled_now(reader: &ArchiveReader, read: Vec<SettledFile>) -> Vec<SettledFile> {
    if reader.rejected_beyond > 0 {
        return Vec::new();
    }
    read.into_iter()
        .filter(|f| !reader.rejected.iter().any(|r| r.file == f.path))
        .map(|mut f| {
            f.messages = reader
                .accepted
                .iter()
                .filter(|(name, _)| **name == *f.path)
                .map(|(_, n)| n)
                .sum();
            f
        })
        .collect()
}

/// Loads a conversation, analyses it, and commits what changed: sessions whose inputs changed are
/// read again, the rest reused. Running it twice, or concurrently, writes each session once: that is
/// what lets a queue deliver a job more than once. The profiles of the customers the commit changed
/// are left stale for [`fold_stale`].
///
/// `asked`: someone asked for this analysis (the on-demand lane), so model answers given up on
/// after [`MODEL_TRIES`] are tried once more.
pub async fn analyze_conversation(
    tenants: &Tenants,
    tenant: &Tenant,
    run: Option<i64>,
    key: &str,
    asked: bool,
) -> anyhow::Result<(ConversationOutput, Committed)> {
    let store = tenants.store();
    async {
        let stored = store.load_conversation(&tenant.id, key, None).await?;
        let why = Occasion { run, asked };
        let out = analyse(store, tenants.kb(), tenant, why, key, &stored).await?;
        let committed = store
            .commit_conversation(&out)
            .await
            .with_context(|| format!("saving conversation {key}"))?;
        Ok((out, committed))
    }
    .instrument(conversation_span(&tenant.id, key))
    .await
}

/// The span of one conversation's load, analysis and commit, wherever each of them runs.
fn conversation_span(tenant: &str, key: &str) -> tracing::Span {
    tracing::info_span!("analyze_conversation", tenant = %tenant, conversation = %key)
}

/// What an analysis is for: the run it belongs to (for the usage ledger), and whether someone asked
/// for it (then model answers given up on are tried once more).
#[derive(Debug, Clone, Copy)]
struct Occasion {
    run: Option<i64>,
    asked: bool,
}

/// The analysis of a loaded conversation: [`analysis::run`] offline; with a model, the sessions whose
/// inputs changed are read by it between the core's steps.
async fn analyse(
    store: &Store,
    kb: Option<&Knowledge>,
    tenant: &Tenant,
    why: Occasion,
    key: &str,
    stored: &StoredConversation,
) -> anyhow::Result<ConversationOutput> {
    if stored.messages.is_empty() {
        anyhow::bail!(
            "conversation {key:?} of tenant {:?} has no stored messages",
            tenant.id
        );
    }
    let cfg = tenant.config();
    let out = match &tenant.llm {
        None => analysis::run(&cfg, key, stored),
        Some(llm) => {
            let sessions = analysis::sessions(&cfg, stored);
            let mut readings = Vec::with_capacity(sessions.len());
            for session in &sessions {
                readings.push(read_with_model(store, llm, kb, &cfg, stored, session, why).await?);
            }
            analysis::finish(&cfg, key, stored, sessions, readings)
        }
    };
    // Counted as read, whether or not the commit then finds them stored already.
    for s in out.sessions.iter().filter(|s| s.write.is_some()) {
        for a in &s.alerts {
            metrics::counter!("huixi_alerts_total", "severity" => a.severity.as_str()).increment(1);
        }
    }
    Ok(out)
}

/// One session's reading on the model path: the knowledge-base passages are part of its input (a
/// changed knowledge base is a reason to ask again), the offline reading is the model's starting point.
async fn read_with_model(
    store: &Store,
    llm: &LlmAnalysers,
    kb: Option<&Knowledge>,
    cfg: &analysis::Config<'_>,
    stored: &StoredConversation,
    session: &crate::archive::Session,
    why: Occasion,
) -> anyhow::Result<Reading> {
    let passages = match kb {
        Some(kb) => kb.passages(cfg.tenant, session).await?,
        None => Vec::new(),
    };
    let hash = analysis::input_hash(cfg, session, &passages);
    if let Some((result, alerts)) = analysis::reuse(stored, session, &hash) {
        return Ok(Reading::Unchanged(result, alerts));
    }
    // A session whose agents failed on these very inputs is asked again a bounded number of times,
    // then left as it is (given up, with its failures recorded) until its inputs change.
    let tries = stored.sessions.get(&session.id).and_then(|s| {
        crate::digest::failed_tries(&s.input_hash, &hash).map(|n| (n, s.input_hash.clone()))
    });
    if let Some((n, stored_hash)) = &tries {
        if *n >= MODEL_TRIES && !why.asked {
            if let Some((result, alerts)) = analysis::reuse(stored, session, stored_hash) {
                tracing::debug!(session = %session.id, tries = n, "model answers given up on");
                return Ok(Reading::Unchanged(result, alerts));
            }
        }
    }
    let tries = tries.map_or(0, |(n, _)| n);
    let (offline, alerts) = analysis::read_offline(cfg, session);
    if llm.keeps_offline(&offline) {
        metrics::counter!("huixi_llm_triaged_total").increment(1);
        return Ok(Reading::Fresh {
            hash,
            result: offline,
            alerts,
        });
    }
    let (result, mut usage) = llm.analyse(cfg.tenant, session, &offline, &passages).await;
    for u in &mut usage {
        u.run_id = why.run;
    }
    store.record_usage(&usage).await?;
    for u in &usage {
        metrics::counter!("huixi_llm_tokens_total", "kind" => "prompt").increment(u.prompt_tokens);
        metrics::counter!("huixi_llm_tokens_total", "kind" => "completion")
            .increment(u.completion_tokens);
        metrics::counter!("huixi_llm_cost_micros_total").increment((u.cost * 1e6) as u64);
    }
    // A session with a failed agent is stored under a hash no input matches, with the count of
    // tries, so the next run tries it again (answers that did succeed come from the cache), up to
    // MODEL_TRIES.
    let hash = if result.failures.is_empty() {
        hash
    } else {
        format!("retry{}:{hash}", tries + 1)
    };
    Ok(Reading::Fresh {
        hash,
        result,
        alerts,
    })
}

/// Runs that ask the model again about a session whose agents failed on unchanged inputs.
const MODEL_TRIES: u32 = 3;

/// Folds the profiles that commits made stale, each customer once however many of its conversations
/// were committed, until none is left; one tenant's, or every tenant's. A profile that changed makes
/// the customers it shares a phone or name with stale in turn (their 撞单 changed too). Returns the
/// customers folded, by tenant.
pub async fn fold_stale(
    tenants: &Tenants,
    tenant: Option<&str>,
) -> anyhow::Result<BTreeSet<(String, String)>> {
    let store = tenants.store();
    let mut folded = BTreeSet::new();
    loop {
        let stale = store.stale_customers(tenant, 10_000).await?;
        if stale.is_empty() {
            return Ok(folded);
        }
        let mut by_tenant: std::collections::BTreeMap<String, Vec<crate::store::StaleCustomer>> =
            Default::default();
        for s in stale {
            by_tenant.entry(s.tenant.clone()).or_default().push(s);
        }
        for (t, stale) in by_tenant {
            // Each tenant's profiles with its own tag library and model agents.
            let config = tenants.get(&t).await?;
            let library = config.settings.tag_library.as_ref();
            for group in stale.chunks(FOLD_GROUP) {
                let customers: Vec<String> = group.iter().map(|s| s.customer.clone()).collect();
                let marks: Vec<i64> = group.iter().flat_map(|s| s.marks.iter().copied()).collect();
                let refreshed =
                    refresh_many(store, &t, &customers, library, config.llm.as_ref(), &marks)
                        .await
                        .with_context(|| format!("folding the profiles of {}…", customers[0]))?;
                for r in refreshed {
                    if r.written {
                        mark_partners(store, &t, &r.partners).await?;
                    }
                    folded.insert((t.clone(), r.customer));
                }
            }
        }
    }
}

/// Customers are folded this many at a time: one read per table and one transaction for the group.
const FOLD_GROUP: usize = 256;

/// A profile that changed makes the customers it shares a phone or name with stale: their 撞单
/// changed too. All of them, not only those its profile lists.
async fn mark_partners(
    store: &Store,
    tenant: &str,
    partners: &BTreeSet<String>,
) -> anyhow::Result<()> {
    store
        .mark_stale(tenant, partners.iter().map(String::as_str))
        .await?;
    Ok(())
}

/// Folds these customers' profiles now (a re-analysis asked for recomputes them, changed or not),
/// then whatever that made stale.
pub async fn refresh_now(
    tenants: &Tenants,
    tenant: &Tenant,
    customers: &BTreeSet<String>,
) -> anyhow::Result<()> {
    let store = tenants.store();
    let library = tenant.settings.tag_library.as_ref();
    let customers: Vec<String> = customers.iter().cloned().collect();
    for group in customers.chunks(FOLD_GROUP) {
        for r in refresh_many(store, &tenant.id, group, library, tenant.llm.as_ref(), &[]).await? {
            if r.written {
                mark_partners(store, &tenant.id, &r.partners).await?;
            }
        }
    }
    fold_stale(tenants, Some(&tenant.id)).await?;
    Ok(())
}

/// Per staff member and day, over the days the run's sessions touched, for the staff in them.
async fn run_staff_days(
    store: &Store,
    tenant: &str,
    staff: &BTreeSet<String>,
    days: &BTreeSet<String>,
) -> anyhow::Result<Vec<StaffDay>> {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(Vec::new());
    };
    let horizon = store.archive_horizon(tenant).await?;
    let mut out = Vec::new();
    // One staff member at a time: each query is bounded by the (tenant, staff, day) index.
    for s in staff {
        let filter = MetricsFilter {
            staff: Some(s.clone()),
            from_day: Some(first.clone()),
            to_day: Some(last.clone()),
            ..MetricsFilter::default()
        };
        let (turns, traffic) = store.metrics_rows(tenant, &filter).await?;
        out.extend(
            trajectory::staff_days(&turns, &traffic, horizon)
                .into_iter()
                .filter(|d| days.contains(&d.day)),
        );
    }
    Ok(out)
}
