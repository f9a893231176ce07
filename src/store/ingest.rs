//! Messages as they arrive (the WeCom puller, `POST /v1/messages`, `huixi enqueue`): each chunk is
//! stored with the alerts it raises, their `alert.created` events and its conversations' place in the
//! idle schedule, in one transaction — an alert is never announced for a message that was not kept,
//! nor a message kept whose alert was lost.
//!
//! A real-time alert is a row of `huixi_alerts` with an empty session and a `live:` key. When the
//! session that holds its message is analysed, the commit adopts the row ([`live_key`]) instead of
//! inserting a second one, and does not announce it again.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;

use super::messages::{message_row, MESSAGE_COLUMNS};
use super::rows::{insert_rows, select_in, Value};
use super::sessions::{alert_values, ALERT_INSERT};
use super::wecom::PageCommit;
use super::{now_ms, text, Dialect, Store, StoreError};
use crate::archive::{conversation_key, Event, Message};
use crate::sensitive::{Alert, Flag, Severity};

/// What the store did with a batch of arriving messages.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Messages stored now.
    pub new: usize,
    /// Messages stored before with the same content: nothing to do.
    pub duplicates: usize,
    /// Messages whose msgid was stored before with different content: refused, the stored one kept.
    pub conflicts: Vec<String>,
    /// The alerts raised on the new messages, committed with them.
    pub alerts: Vec<Alert>,
}

/// The scan of arriving messages: their alerts, given what earlier messages they recall showed.
pub type Scan<'a> = dyn Fn(&[&Message], &HashMap<String, Flag>) -> Vec<Alert> + Send + Sync + 'a;

/// Messages a transaction carries (a finance-SDK page, up to 1,000, is always one): on SQLite each
/// commit is a write of the log and a share of a checkpoint, so a file or a large request goes in
/// few of them.
const CHUNK: usize = 5_000;
/// Tries of a chunk that met another writer storing the same msgids at the same moment.
const RACE_TRIES: usize = 3;

/// The key of a real-time alert: the same message, detector and word give the same key, however the
/// alert was raised, so the session's analysis finds the row the arrival wrote.
pub fn live_key(a: &Alert) -> String {
    let hash = crate::digest::hash_parts([
        a.msgid.as_str(),
        a.kind.as_str(),
        a.category.as_str(),
        a.word.as_str(),
    ]);
    format!("live:{}", &hash[..40])
}

impl Store {
    /// Stores the messages not stored before, raises `scan`'s alerts on them, and puts their
    /// conversations in the idle schedule, due `idle_gap_ms` after their newest message (`None`:
    /// the caller publishes their jobs itself). A finance-SDK `page` has its
    /// cursor, quarantine and media committed with its messages, in one transaction, or nothing is.
    pub async fn ingest_page(
        &self,
        tenant: &str,
        messages: &[Message],
        idle_gap_ms: Option<i64>,
        scan: &Scan<'_>,
        page: Option<&PageCommit>,
    ) -> Result<Ingested, StoreError> {
        let mut out = Ingested::default();
        let chunks: Vec<&[Message]> = match page {
            // One transaction for the page, whatever its size; a page without readable messages
            // still moves the cursor.
            Some(_) => vec![messages],
            None => messages.chunks(CHUNK).collect(),
        };
        for chunk in chunks {
            let mut tries = 0;
            loop {
                tries += 1;
                match self
                    .ingest_chunk(tenant, chunk, idle_gap_ms, scan, page)
                    .await?
                {
                    Some(done) => {
                        out.new += done.new;
                        out.duplicates += done.duplicates;
                        out.conflicts.extend(done.conflicts);
                        out.alerts.extend(done.alerts);
                        break;
                    }
                    // Someone stored some of these msgids between our read and our insert: the
                    // transaction was rolled back, and the next try sees their rows.
                    None if tries < RACE_TRIES => continue,
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "messages of tenant {tenant} kept changing under {RACE_TRIES} tries"
                        )))
                    }
                }
            }
        }
        Ok(out)
    }

    async fn ingest_chunk(
        &self,
        tenant: &str,
        chunk: &[Message],
        idle_gap_ms: Option<i64>,
        scan: &Scan<'_>,
        page: Option<&PageCommit>,
    ) -> Result<Option<Ingested>, StoreError> {
        let mut tx = self.begin_write().await?;
        let ids: Vec<&str> = chunk.iter().map(|m| m.msgid.as_str()).collect();
        let stored = stored_raw(&mut tx, tenant, &ids).await?;
        let stored: HashMap<String, String> = stored
            .into_iter()
            .map(|(id, raw)| Ok((id, self.open_message(&raw)?)))
            .collect::<Result<_, StoreError>>()?;
        let mut out = Ingested::default();
        let mut fresh: Vec<&Message> = Vec::new();
        for m in chunk {
            match stored.get(m.msgid.as_str()) {
                Some(raw) if *raw == m.raw => out.duplicates += 1,
                Some(_) => out.conflicts.push(m.msgid.clone()),
                None => fresh.push(m),
            }
        }
        if let Some(page) = page {
            let media = fresh.iter().filter_map(|m| media_of(m)).collect();
            let page = PageCommit {
                media,
                ..page.clone()
            };
            super::wecom::commit_page(&mut tx, self.dialect, tenant, &page).await?;
        }
        if fresh.is_empty() {
            tx.commit().await?;
            return Ok(Some(out));
        }
        let recalled: Vec<&str> = fresh
            .iter()
            .filter_map(|m| match &m.event {
                Event::Revoke { pre_msgid } => Some(pre_msgid.as_str()),
                _ => None,
            })
            .collect();
        let earlier = flags(&mut tx, tenant, &recalled).await?;
        let alerts = scan(&fresh, &earlier);

        let head = format!("{} INTO {MESSAGE_COLUMNS}", self.dialect.insert_ignore());
        let key = self.message_key();
        let rows = fresh.iter().map(|m| message_row(tenant, m, key)).collect();
        if insert_rows(&mut tx, &head, rows).await? != fresh.len() as u64 {
            tx.rollback().await?;
            return Ok(None);
        }
        let alert_rows = alerts
            .iter()
            .map(|a| {
                let mut row = alert_values(tenant, a);
                *row.last_mut().expect("alert rows end with the key") =
                    Value::OptText(Some(live_key(a)));
                row
            })
            .collect();
        let ignore = ALERT_INSERT.replacen("INSERT", self.dialect.insert_ignore(), 1);
        insert_rows(&mut tx, &ignore, alert_rows).await?;
        if !alerts.is_empty() && super::webhooks::hooked(&mut tx, tenant).await? {
            let conversations: HashMap<&str, String> = fresh
                .iter()
                .filter_map(|m| conversation_key(m).map(|c| (m.msgid.as_str(), c)))
                .collect();
            let received_at = now_ms();
            // One event per message and tier: a message's high alerts go together to the
            // supervisors' channel, ahead of the rest (the delivery loop takes a tenant's events in
            // id order), and its other alerts together after them.
            let mut events = Vec::new();
            for high in [true, false] {
                // The scan lists a message's alerts together, so a group is the run of one msgid.
                let mut by_message: Vec<(&str, Vec<&Alert>)> = Vec::new();
                for a in alerts
                    .iter()
                    .filter(|a| (a.severity == Severity::High) == high)
                {
                    match by_message.last_mut() {
                        Some((m, list)) if *m == a.msgid => list.push(a),
                        _ => by_message.push((a.msgid.as_str(), vec![a])),
                    }
                }
                for (msgid, list) in by_message {
                    let payload = serde_json::json!({
                        "tenant": tenant,
                        "conversation": conversations.get(msgid),
                        "msgid": msgid,
                        "received_at": received_at,
                        "alerts": list,
                    });
                    events.push((if high { "high" } else { "" }, "alert.created", payload));
                }
            }
            super::webhooks::insert_channel_events(&mut tx, tenant, events).await?;
        }
        if let Some(idle_gap_ms) = idle_gap_ms {
            schedule(&mut tx, self.dialect, tenant, &fresh, idle_gap_ms).await?;
        }
        tx.commit().await?;
        out.new = fresh.len();
        out.alerts = alerts;
        Ok(Some(out))
    }

    /// Conversations whose idle time is up, oldest due first: `(tenant, conversation, due_at)`.
    pub async fn due_conversations(
        &self,
        limit: usize,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant, conversation, due_at FROM huixi_pending_analysis WHERE due_at <= ? \
             ORDER BY due_at LIMIT ?",
        )
        .bind(now_ms())
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((text(r, 0)?, text(r, 1)?, r.try_get(2)?)))
            .collect()
    }

    /// Takes a conversation off the idle schedule once its job is published, unless a message came
    /// in since (`due_at` moved): then it waits for its new time.
    pub async fn unschedule(
        &self,
        tenant: &str,
        conversation: &str,
        due_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM huixi_pending_analysis WHERE tenant = ? AND conversation = ? AND due_at = ?",
        )
        .bind(tenant)
        .bind(conversation)
        .bind(due_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The raw lines stored under these msgids.
pub(super) async fn stored_raw(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, String>, StoreError> {
    let sql = "SELECT msgid, raw FROM huixi_messages";
    select_in(tx, sql, "msgid", tenant, ids, "")
        .await?
        .iter()
        .map(|r| Ok((text(r, 0)?, text(r, 1)?)))
        .collect()
}

/// What the stored alerts of these messages flag, for recalls of them.
async fn flags(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    ids: &[&str],
) -> Result<HashMap<String, Flag>, StoreError> {
    let mut out: HashMap<String, Flag> = HashMap::new();
    let sql = "SELECT msgid, severity, word, text FROM huixi_alerts";
    let tail = " AND kind IN ('sensitive', 'pii', 'handoff') ORDER BY id";
    for r in select_in(tx, sql, "msgid", tenant, ids, tail).await? {
        let severity: Severity = text(&r, 1)?.parse().unwrap_or(Severity::Low);
        let word = text(&r, 2)?;
        let flag = out
            .entry(text(&r, 0)?)
            .or_insert((Severity::Low, Vec::new(), text(&r, 3)?));
        flag.0 = flag.0.max(severity);
        if !flag.1.contains(&word) {
            flag.1.push(word);
        }
    }
    Ok(out)
}

/// Puts conversations in the idle schedule: each is due its idle gap after its newest message (a
/// backlog of old messages is due at once), and never earlier than it was (a late message from
/// long ago does not bring it forward). In key order, the order every writer takes, so two
/// arrivals for the same conversations wait for each other instead of deadlocking.
async fn schedule(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    tenant: &str,
    messages: &[&Message],
    idle_gap_ms: i64,
) -> Result<(), StoreError> {
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for m in messages {
        if let Some(c) = conversation_key(m) {
            let t = newest.entry(c).or_insert(m.msgtime);
            *t = (*t).max(m.msgtime);
        }
    }
    let head = match dialect {
        Dialect::Sqlite => {
            "INSERT INTO huixi_pending_analysis (tenant, conversation, due_at) VALUES __ \
             ON CONFLICT (tenant, conversation) DO UPDATE SET \
             due_at = MAX(huixi_pending_analysis.due_at, excluded.due_at)"
        }
        Dialect::MySql => {
            "INSERT INTO huixi_pending_analysis (tenant, conversation, due_at) VALUES __ \
             ON DUPLICATE KEY UPDATE due_at = GREATEST(due_at, VALUES(due_at))"
        }
    };
    let rows = newest
        .into_iter()
        .map(|(c, t)| {
            vec![
                Value::from(tenant),
                Value::Text(c),
                Value::Int(t.saturating_add(idle_gap_ms)),
            ]
        })
        .collect();
    insert_rows(tx, head, rows).await?;
    Ok(())
}

/// A message's media file, when its type has one: (msgid, sdkfileid, md5sum, filesize).
fn media_of(m: &Message) -> Option<(String, String, String, i64)> {
    let raw: serde_json::Value = serde_json::from_str(&m.raw).ok()?;
    let body = raw.get(&m.msgtype)?;
    let fileid = body.get("sdkfileid")?.as_str()?;
    let md5 = body.get("md5sum").and_then(|v| v.as_str()).unwrap_or("");
    let size = body.get("filesize").and_then(|v| v.as_i64()).unwrap_or(0);
    Some((m.msgid.clone(), fileid.to_string(), md5.to_string(), size))
}
