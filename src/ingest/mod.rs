//! Messages in, continuously. Every way a message arrives — the WeCom finance-SDK puller
//! ([`wecom`]), `POST /v1/messages`, `huixi enqueue` — goes through [`accept`]: the same parser as
//! archive files, idempotent by msgid against the store, each new message scanned at once for the
//! tenant's risks (its alerts and their `alert.created` webhooks committed with it), and its
//! conversation put in the idle schedule, which [`schedule`] turns into analysis jobs once the
//! conversation has been quiet for the tenant's idle gap.

pub mod schedule;
pub mod wecom;

use std::collections::HashMap;

use serde::Serialize;

use crate::archive::{ArchiveReader, Message, RejectedLine};
use crate::sensitive::{scan_messages, Flag};
use crate::store::{Ingested, PageCommit, Store, StoreError};
use crate::tenant::Tenant;

/// Largest NDJSON body `POST /v1/messages` takes: a finance-SDK page of 1,000 messages is well under
/// it, and a request holds its body in memory.
pub const MAX_BODY_BYTES: usize = 16 << 20;
/// Most lines one request may carry.
pub const MAX_LINES: usize = 10_000;

/// What became of a batch of arriving lines.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Messages stored now.
    pub accepted: usize,
    /// Messages already stored with the same content (or repeated in the input): nothing to do.
    pub duplicates: usize,
    /// Lines refused, with where and why.
    pub rejected: Vec<RejectedLine>,
    /// Rejected lines beyond those listed, counted only.
    pub rejected_beyond: usize,
    /// Alerts raised on the accepted messages.
    pub alerts: usize,
}

/// When the conversations of arriving messages are analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Once quiet for the tenant's idle gap: messages that arrive as they are sent.
    WhenIdle,
    /// The caller publishes their jobs now: a file of history (`huixi enqueue`).
    Published,
}

/// Stores what is new of `messages` with its real-time alerts, and schedules its conversations.
pub async fn accept(
    store: &Store,
    tenant: &Tenant,
    messages: &[Message],
    then: Then,
) -> Result<Ingested, StoreError> {
    let due = (then == Then::WhenIdle).then_some(tenant.idle_gap_ms);
    store_arrivals(store, tenant, messages, due, None).await
}

/// [`accept`] of a finance-SDK page, committed with the page's cursor, quarantine and media.
pub async fn accept_page(
    store: &Store,
    tenant: &Tenant,
    messages: &[Message],
    page: &PageCommit,
) -> Result<Ingested, StoreError> {
    store_arrivals(
        store,
        tenant,
        messages,
        Some(tenant.idle_gap_ms),
        Some(page),
    )
    .await
}

async fn store_arrivals(
    store: &Store,
    tenant: &Tenant,
    messages: &[Message],
    idle_gap_ms: Option<i64>,
    page: Option<&PageCommit>,
) -> Result<Ingested, StoreError> {
    // The tenant's engine and rules, as the session analysis uses them: the alert raised now is
    // the one the analysis finds again.
    let scan = |fresh: &[&Message], earlier: &HashMap<String, Flag>| {
        scan_messages(
            &tenant.engine,
            &tenant.rules,
            "",
            fresh.iter().copied(),
            earlier,
            &Default::default(),
        )
    };
    let done = store
        .ingest_page(&tenant.id, messages, idle_gap_ms, &scan, page)
        .await?;
    metrics::counter!("huixi_ingested_messages_total").increment(done.new as u64);
    metrics::counter!("huixi_realtime_alerts_total").increment(done.alerts.len() as u64);
    if !done.alerts.is_empty() {
        crate::webhook::wake();
    }
    Ok(done)
}

/// Reads an NDJSON body (the same checks as a file, lines numbered from 1) and [`accept`]s it.
pub async fn accept_ndjson(
    store: &Store,
    tenant: &Tenant,
    name: &str,
    body: Vec<u8>,
) -> Result<Report, StoreError> {
    let mut reader = ArchiveReader::from_bytes(name, body);
    let mut report = Report::default();
    // The whole body is in memory already: one batch, committed a chunk at a time in line order.
    let messages = reader
        .next_batch(usize::MAX)
        .expect("reading memory cannot fail")
        .unwrap_or_default();
    let done = accept(store, tenant, &messages, Then::WhenIdle).await?;
    report.accepted = done.new;
    report.duplicates = done.duplicates + reader.duplicates;
    report.alerts = done.alerts.len();
    report.rejected = std::mem::take(&mut reader.rejected);
    report.rejected_beyond = reader.rejected_beyond;
    let lines = reader.lines.take().unwrap_or_default();
    let line_of: HashMap<&str, usize> = messages
        .iter()
        .map(|m| m.msgid.as_str())
        .zip(lines.iter().copied())
        .collect();
    for msgid in done.conflicts {
        let line = line_of.get(msgid.as_str()).copied().unwrap_or(0);
        report.rejected.push(RejectedLine {
            file: name.to_string(),
            line,
            error: format!(
                "msgid {msgid:?} was stored earlier with different content; the stored one is kept"
            ),
        });
    }
    report.rejected.sort_by_key(|r| r.line);
    Ok(report)
}
