//! One conversation in, one conversation out: [`Store::load_conversation`] reads everything its
//! analysis needs, [`Store::commit_conversation`] writes everything the analysis produced (sessions,
//! findings, alerts, metrics, customer contributions, the customers made stale, webhook events) in one
//! transaction.
//!
//! Concurrent writers never deadlock: a commit locks its own conversation's row first, and every other
//! row it touches belongs to that conversation, or is a fresh insert no one else can hold (alerts,
//! outbox events, stale-customer marks). Two commits of the same conversation queue on that row; two of
//! different conversations share nothing.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::batch_transaction::BatchTransaction;
use super::rows::{delete_in, insert_rows, select_in, Value};
use super::sessions::{alert, alert_values, ALERT_COLUMNS, ALERT_INSERT};
use super::{now_ms, text, Dialect, Store, StoreError};
use crate::analysis::ConversationOutput;
use crate::archive::Message;
use crate::sensitive::Alert;
use crate::trajectory::TIMEOUT_KIND;

/// What the store holds of a conversation: its messages and what its last analysis left.
#[derive(Debug, Default)]
pub struct StoredConversation {
    /// Ordered by (msgtime, msgid).
    pub messages: Vec<Message>,
    /// Sessions by id.
    pub sessions: BTreeMap<String, StoredSession>,
    /// The hash of the conversation's metrics and contributions as last committed.
    pub extras: Option<String>,
    /// The archive's newest message time for the tenant ("now" for overdue replies).
    pub horizon: i64,
    /// What the QR codes in its images say, by msgid, for the images read so far.
    pub qr_codes: BTreeMap<String, Vec<String>>,
}

/// A session as last analysed. The result stays JSON until the analysis finds it can reuse it.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub input_hash: String,
    pub result: String,
    /// Its alerts, 超时未回复 included.
    pub alerts: Vec<Alert>,
}

/// What a commit wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct Committed {
    /// Sessions written (the others were stored already for the same input).
    pub sessions: usize,
    /// Whether the metrics and contributions were replaced.
    pub extras: bool,
    /// Whether sessions that no longer exist were removed.
    pub gone: bool,
}

impl Store {
    /// Everything one conversation's analysis reads, on one connection. `horizon` is the archive's
    /// newest message time when the caller knows it (a batch, after storing its messages); it is read
    /// otherwise.
    pub async fn load_conversation(
        &self,
        tenant: &str,
        conversation: &str,
        horizon: Option<i64>,
    ) -> Result<StoredConversation, StoreError> {
        let mut all = self
            .load_conversations(tenant, &[conversation.to_string()], horizon)
            .await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// [`Store::load_conversation`] for several conversations of a tenant at once: a statement per
    /// table for all of them, each bounded by the index on (tenant, conversation). In the order given.
    pub async fn load_conversations(
        &self,
        tenant: &str,
        conversations: &[String],
        horizon: Option<i64>,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.load_on(&mut conn, tenant, conversations, horizon)
            .await
    }

    /// [`Store::load_conversations`] in `batch`'s transaction when it has one open: on SQLite that
    /// transaction holds the one connection, and it has written what this reads.
    pub async fn load_conversations_in(
        &self,
        batch: &mut BatchTransaction,
        tenant: &str,
        conversations: &[String],
        horizon: Option<i64>,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        match batch.open() {
            Some(tx) => self.load_on(tx, tenant, conversations, horizon).await,
            None => {
                self.load_conversations(tenant, conversations, horizon)
                    .await
            }
        }
    }

    async fn load_on(
        &self,
        conn: &mut sqlx::AnyConnection,
        tenant: &str,
        conversations: &[String],
        horizon: Option<i64>,
    ) -> Result<Vec<StoredConversation>, StoreError> {
        let keys: Vec<&str> = conversations.iter().map(String::as_str).collect();
        let mut by_key: BTreeMap<&str, StoredConversation> = keys
            .iter()
            .map(|k| (*k, StoredConversation::default()))
            .collect();
        for r in select_in(
            conn,
            "SELECT conversation, msgid, raw FROM huixi_messages",
            "conversation",
            tenant,
            &keys,
            " ORDER BY conversation, msgtime, msgid",
        )
        .await?
        {
            let (key, msgid) = (text(&r, 0)?, text(&r, 1)?);
            let m = Message::parse(&self.open_message(&text(&r, 2)?)?)
                .map_err(|e| StoreError::Corrupt(format!("message {msgid}: {e}")))?;
            if let Some(c) = by_key.get_mut(key.as_str()) {
                c.messages.push(m);
            }
        }
        // Images whose bytes the media store has and whose QR codes were read.
        let images: std::collections::HashMap<&str, &str> = by_key
            .iter()
            .flat_map(|(k, c)| {
                c.messages
                    .iter()
                    .filter(|m| m.msgtype == "image")
                    .map(move |m| (m.msgid.as_str(), *k))
            })
            .collect();
        let mut codes: Vec<(String, String, Vec<String>)> = Vec::new();
        if !images.is_empty() {
            let ids: Vec<&str> = images.keys().copied().collect();
            let rows = select_in(
                conn,
                "SELECT msgid, qr FROM huixi_media",
                "msgid",
                tenant,
                &ids,
                " AND qr IS NOT NULL",
            )
            .await?;
            for r in rows {
                let (msgid, json) = (text(&r, 0)?, text(&r, 1)?);
                let payloads: Vec<String> = serde_json::from_str(&json).unwrap_or_default();
                if let Some(key) = images.get(msgid.as_str()) {
                    if !payloads.is_empty() {
                        codes.push((key.to_string(), msgid, payloads));
                    }
                }
            }
        }
        for (key, msgid, payloads) in codes {
            if let Some(c) = by_key.get_mut(key.as_str()) {
                c.qr_codes.insert(msgid, payloads);
            }
        }
        let mut session_of: BTreeMap<String, String> = BTreeMap::new();
        for r in select_in(
            conn,
            "SELECT conversation, id, input_hash, result FROM huixi_sessions",
            "conversation",
            tenant,
            &keys,
            " ORDER BY conversation, id",
        )
        .await?
        {
            let (key, id) = (text(&r, 0)?, text(&r, 1)?);
            let session = StoredSession {
                input_hash: text(&r, 2)?,
                result: text(&r, 3)?,
                alerts: Vec::new(),
            };
            if let Some(c) = by_key.get_mut(key.as_str()) {
                session_of.insert(id.clone(), key);
                c.sessions.insert(id, session);
            }
        }
        let ids: Vec<&str> = session_of.keys().map(String::as_str).collect();
        let columns = format!("SELECT {ALERT_COLUMNS} FROM huixi_alerts");
        for r in select_in(
            conn,
            &columns,
            "session_id",
            tenant,
            &ids,
            " ORDER BY session_id, id",
        )
        .await?
        {
            let a = alert(&r)?;
            let session = session_of
                .get(&a.session)
                .and_then(|key| by_key.get_mut(key.as_str()))
                .and_then(|c| c.sessions.get_mut(&a.session));
            if let Some(s) = session {
                s.alerts.push(a);
            }
        }
        for r in select_in(
            conn,
            "SELECT conversation, extras FROM huixi_conversations",
            "conversation",
            tenant,
            &keys,
            "",
        )
        .await?
        {
            let key = text(&r, 0)?;
            if let Some(c) = by_key.get_mut(key.as_str()) {
                c.extras = Some(text(&r, 1)?);
            }
        }
        let horizon = match horizon {
            Some(h) => h,
            None => sqlx::query("SELECT MAX(msgtime) FROM huixi_messages WHERE tenant = ?")
                .bind(tenant)
                .fetch_one(&mut *conn)
                .await?
                .try_get::<Option<i64>, _>(0)?
                .unwrap_or(0),
        };
        Ok(keys
            .iter()
            .map(|k| {
                let mut c = by_key.remove(k).unwrap_or_default();
                c.horizon = horizon;
                c
            })
            .collect())
    }

    /// Writes what one conversation's analysis produced, in one transaction; nothing at all when it
    /// is what the store holds. A commit racing another of the same conversation (a redelivered job)
    /// waits for it, then writes only what still differs.
    pub async fn commit_conversation(
        &self,
        out: &ConversationOutput,
    ) -> Result<Committed, StoreError> {
        let done = self.commit_conversations(std::slice::from_ref(out)).await?;
        Ok(done.into_iter().next().unwrap_or_default())
    }

    /// [`Store::commit_conversation`] for several conversations of one tenant in one transaction, a
    /// multi-row statement per table for all of them: a batch pays one commit and a dozen statements
    /// for many conversations, and a crash loses the group whole, to be analysed again. The
    /// conversations' rows are locked first, in key order, so two groups never wait on each other in
    /// a circle.
    pub async fn commit_conversations(
        &self,
        outs: &[ConversationOutput],
    ) -> Result<Vec<Committed>, StoreError> {
        let Some(group) = changing(outs)? else {
            return Ok(vec![Committed::default(); outs.len()]);
        };
        let tx = self.pool.begin().await?;
        self.commit_in(tx, group).await
    }

    /// [`Store::commit_conversations`] in `batch`'s transaction, committed when the batch is due.
    pub async fn commit_conversations_in(
        &self,
        batch: &mut BatchTransaction,
        outs: &[ConversationOutput],
    ) -> Result<Vec<Committed>, StoreError> {
        if !batch.spans() {
            return self.commit_conversations(outs).await;
        }
        let Some(group) = changing(outs)? else {
            return Ok(vec![Committed::default(); outs.len()]);
        };
        // A savepoint: a group that writes nothing leaves nothing behind, not even the
        // conversations' placeholder rows that took their locks.
        let tx = sqlx::Connection::begin(&mut **batch.tx().await?).await?;
        let done = self.commit_in(tx, group).await?;
        batch.wrote(outs.len()).await?;
        Ok(done)
    }

    /// A group's writes in `tx`, committed when they changed something, rolled back when not.
    async fn commit_in(
        &self,
        mut tx: sqlx::Transaction<'_, sqlx::Any>,
        (tenant, changing, mut done): Changing<'_>,
    ) -> Result<Vec<Committed>, StoreError> {
        match self
            .write_group(&mut tx, &tenant, &changing, &mut done)
            .await?
        {
            true => tx.commit().await?,
            false => tx.rollback().await?,
        }
        Ok(done)
    }

    /// The writes of a group's commit; false when they changed nothing.
    async fn write_group(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        tenant: &str,
        changing: &[(usize, &ConversationOutput)],
        done: &mut [Committed],
    ) -> Result<bool, StoreError> {
        let keys: Vec<&str> = changing
            .iter()
            .map(|(_, o)| o.conversation.as_str())
            .collect();
        // The conversations' rows first: they are the locks that order commits of a conversation.
        let rows = keys
            .iter()
            .map(|k| {
                vec![
                    Value::from(tenant),
                    Value::from(*k),
                    Value::from(""),
                    Value::Int(0),
                ]
            })
            .collect();
        insert_rows(tx, &self.dialect.upsert_conversations(false), rows).await?;
        let mut stored_extras: BTreeMap<String, String> = BTreeMap::new();
        let sql = "SELECT conversation, extras FROM huixi_conversations";
        for r in select_in(tx, sql, "conversation", tenant, &keys, "").await? {
            stored_extras.insert(text(&r, 0)?, text(&r, 1)?);
        }
        let mut stored: BTreeMap<String, BTreeMap<String, (String, i64)>> = BTreeMap::new();
        for r in select_in(
            tx,
            "SELECT conversation, id, input_hash, writes FROM huixi_sessions",
            "conversation",
            tenant,
            &keys,
            "",
        )
        .await?
        {
            stored
                .entry(text(&r, 0)?)
                .or_default()
                .insert(text(&r, 1)?, (text(&r, 2)?, r.try_get::<i64, _>(3)?));
        }
        let hooked = super::webhooks::hooked(tx, tenant).await?;
        // Alerts raised in real time as their messages arrived, still waiting for their session:
        // the sessions written now adopt them rather than raise them twice.
        let live_keys: Vec<String> = changing
            .iter()
            .flat_map(|(_, o)| &o.sessions)
            .filter(|s| s.write.is_some())
            .flat_map(|s| &s.alerts)
            .filter(|a| a.kind != TIMEOUT_KIND)
            .map(super::ingest::live_key)
            .collect();
        let live_keys: Vec<&str> = live_keys.iter().map(String::as_str).collect();
        let mut live = BTreeSet::new();
        let sql = "SELECT once_key FROM huixi_alerts";
        let tail = " AND session_id = ''";
        for r in select_in(tx, sql, "once_key", tenant, &live_keys, tail).await? {
            live.insert(text(&r, 0)?);
        }
        let mut rows = Rows::default();
        let none = BTreeMap::new();
        for (i, out) in changing {
            let extras = stored_extras
                .get(&out.conversation)
                .map_or("", String::as_str);
            let sessions = stored.get(&out.conversation).unwrap_or(&none);
            let had = (extras, sessions, &live);
            done[*i] = commit_one(tx, out, had, hooked, &mut rows).await?;
        }
        rows.insert(tx, self.dialect, tenant).await?;
        let wrote: Vec<&ConversationOutput> = changing
            .iter()
            .zip(keys.iter())
            .filter(|((i, _), _)| {
                let d = &done[*i];
                d.sessions > 0 || d.extras || d.gone
            })
            .map(|((_, o), _)| *o)
            .collect();
        if wrote.is_empty() {
            return Ok(false);
        }
        let now = now_ms();
        let rows = wrote
            .iter()
            .map(|o| {
                vec![
                    Value::from(tenant),
                    Value::from(o.conversation.as_str()),
                    Value::from(o.extras.as_str()),
                    Value::Int(now),
                ]
            })
            .collect();
        insert_rows(tx, &self.dialect.upsert_conversations(true), rows).await?;
        Ok(true)
    }
}

/// A group's tenant, the outputs that change the store (with their index among the group's) and
/// a [`Committed`] for every output of the group.
type Changing<'a> = (String, Vec<(usize, &'a ConversationOutput)>, Vec<Committed>);

/// The outputs that change the store, in conversation order (the order their rows are locked in);
/// `None` when nothing changes.
fn changing(outs: &[ConversationOutput]) -> Result<Option<Changing<'_>>, StoreError> {
    let changes = |out: &ConversationOutput| {
        out.sessions.iter().any(|s| s.write.is_some()) || !out.gone.is_empty() || out.extras_changed
    };
    let mut changing: Vec<(usize, &ConversationOutput)> = outs
        .iter()
        .enumerate()
        .filter(|(_, o)| changes(o))
        .collect();
    let Some((_, first)) = changing.first() else {
        return Ok(None);
    };
    let tenant = first.tenant.clone();
    if let Some((_, other)) = changing.iter().find(|(_, o)| o.tenant != tenant) {
        return Err(StoreError::Corrupt(format!(
            "one commit for two tenants ({tenant:?} and {:?})",
            other.tenant
        )));
    }
    changing.sort_by(|a, b| a.1.conversation.cmp(&b.1.conversation));
    Ok(Some((
        tenant,
        changing,
        vec![Committed::default(); outs.len()],
    )))
}

impl Dialect {
    /// An insert of conversation rows that, for a row already there, changes nothing (`set`: false,
    /// to take its lock) or sets the extras and the time of analysis (`set`: true).
    fn upsert_conversations(self, set: bool) -> String {
        let head = "INSERT INTO huixi_conversations (tenant, conversation, extras, analysed_at)";
        match (self, set) {
            (Dialect::Sqlite, false) => format!(
                "{head} VALUES __ ON CONFLICT (tenant, conversation) DO UPDATE SET \
                 analysed_at = huixi_conversations.analysed_at"
            ),
            (Dialect::Sqlite, true) => format!(
                "{head} VALUES __ ON CONFLICT (tenant, conversation) DO UPDATE SET \
                 extras = excluded.extras, analysed_at = excluded.analysed_at"
            ),
            (Dialect::MySql, false) => {
                format!("{head} VALUES __ ON DUPLICATE KEY UPDATE analysed_at = analysed_at")
            }
            (Dialect::MySql, true) => format!(
                "{head} VALUES __ ON DUPLICATE KEY UPDATE extras = VALUES(extras), \
                 analysed_at = VALUES(analysed_at)"
            ),
        }
    }
}

/// The rows a group's commit inserts, gathered from all its conversations and written with one
/// statement per table at the end.
#[derive(Default)]
struct Rows {
    sessions: Vec<Vec<Value>>,
    findings: Vec<Vec<Value>>,
    alerts: Vec<Vec<Value>>,
    turns: Vec<Vec<Value>>,
    traffic: Vec<Vec<Value>>,
    timeouts: Vec<Vec<Value>>,
    contributions: Vec<Vec<Value>>,
    identifiers: Vec<Vec<Value>>,
    stale: Vec<Vec<Value>>,
    events: Vec<(String, &'static str, serde_json::Value)>,
    /// Real-time alerts a session takes as its own: (session, live key).
    adopted: Vec<(String, String)>,
}

impl Rows {
    async fn insert(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        dialect: Dialect,
        tenant: &str,
    ) -> Result<(), StoreError> {
        insert_rows(
            tx,
            "INSERT INTO huixi_sessions (tenant, id, conversation, kind, participants, start_ms, \
             end_ms, message_count, input_hash, result, analysed_at, writes) VALUES __",
            self.sessions,
        )
        .await?;
        insert_rows(
            tx,
            "INSERT INTO huixi_findings (tenant, session_id, kind, payload, evidence, analyser) VALUES __",
            self.findings,
        )
        .await?;
        insert_rows(tx, &format!("{ALERT_INSERT} VALUES __"), self.alerts).await?;
        // One statement per session (a few hundred keys at most each), not one per alert.
        let mut by_session: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (session, key) in &self.adopted {
            by_session.entry(session).or_default().push(key);
        }
        for (session, keys) in by_session {
            for part in keys.chunks(500) {
                let sql = format!(
                    "UPDATE huixi_alerts SET session_id = ? WHERE tenant = ? AND once_key IN ({}) \
                     AND session_id = ''",
                    vec!["?"; part.len()].join(", ")
                );
                let mut q = sqlx::query(&sql).bind(session).bind(tenant);
                for key in part {
                    q = q.bind(*key);
                }
                q.execute(&mut **tx).await?;
            }
        }
        insert_rows(
            tx,
            "INSERT INTO huixi_turns (tenant, conversation, session_id, msgid, customer, staff, day, \
             asked_at, due_at, answered_msgid, answered_at, wait_ms, first_in_session) VALUES __",
            self.turns,
        )
        .await?;
        insert_rows(
            tx,
            "INSERT INTO huixi_traffic (tenant, conversation, session_id, staff, day, sent, received, \
             negative, alerts) VALUES __",
            self.traffic,
        )
        .await?;
        // Keyed once per question: a sweep that raised one meanwhile keeps its row, and this insert
        // skips it.
        let ignore = ALERT_INSERT.replacen("INSERT", dialect.insert_ignore(), 1);
        insert_rows(tx, &format!("{ignore} VALUES __"), self.timeouts).await?;
        insert_rows(
            tx,
            "INSERT INTO huixi_customer_sessions (tenant, customer, session_id, conversation, start_ms, \
             contribution) VALUES __",
            self.contributions,
        )
        .await?;
        insert_rows(
            tx,
            "INSERT INTO huixi_customer_identifiers (tenant, customer, session_id, conversation, msgid, \
             kind, value_hash, masked, staff) VALUES __",
            self.identifiers,
        )
        .await?;
        insert_rows(
            tx,
            "INSERT INTO huixi_stale_customers (tenant, customer) VALUES __",
            self.stale,
        )
        .await?;
        let mut by_tenant: BTreeMap<String, Vec<(&'static str, serde_json::Value)>> =
            BTreeMap::new();
        for (tenant, event, payload) in self.events {
            by_tenant.entry(tenant).or_default().push((event, payload));
        }
        for (tenant, events) in by_tenant {
            super::webhooks::insert_events(tx, &tenant, events).await?;
        }
        Ok(())
    }
}

/// One conversation's part of a group's commit: its old rows deleted where it had any, its new rows
/// added to `rows`.
async fn commit_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    out: &ConversationOutput,
    (stored_extras, stored, live): (&str, &BTreeMap<String, (String, i64)>, &BTreeSet<String>),
    hooked: bool,
    rows: &mut Rows,
) -> Result<Committed, StoreError> {
    let mut done = Committed::default();
    let tenant = out.tenant.as_str();
    let conversation = out.conversation.as_str();
    // A conversation committed for the first time has no rows to replace: its row was created just
    // now (a committed row always has its extras), and no session of it is stored.
    let new = stored_extras.is_empty() && stored.is_empty();

    // Sessions whose input changed: replaced with their findings and alerts (the conversation's
    // 超时未回复 are the metrics' to replace).
    let mut written: Vec<&str> = Vec::new();
    for s in &out.sessions {
        let Some(hash) = &s.write else { continue };
        let writes = match stored.get(&s.session.id) {
            Some((old, _)) if old == hash => continue,
            Some((_, writes)) => writes + 1,
            None => 1,
        };
        written.push(&s.session.id);
        let meta = &s.session;
        rows.sessions.push(vec![
            Value::from(tenant),
            Value::from(meta.id.as_str()),
            Value::from(conversation),
            Value::from(meta.kind.as_str()),
            Value::Text(serde_json::to_string(&meta.participants).expect("strings serialize")),
            Value::Int(meta.start),
            Value::Int(meta.end),
            Value::Int(meta.message_count as i64),
            Value::from(hash.as_str()),
            Value::Text(serde_json::to_string(&s.result).expect("results serialize")),
            Value::Int(now_ms()),
            Value::Int(writes),
        ]);
        for f in s.result.findings() {
            rows.findings.push(vec![
                Value::from(tenant),
                Value::from(meta.id.as_str()),
                Value::from(f.kind),
                Value::Text(f.payload.to_string()),
                Value::Text(serde_json::to_string(&f.evidence).expect("strings serialize")),
                Value::Text(f.analyser),
            ]);
        }
        let mut announced = BTreeSet::new();
        for (i, a) in s.alerts.iter().enumerate() {
            if a.kind == TIMEOUT_KIND {
                continue;
            }
            // Most commits have no live alert to adopt (files given to `huixi analyze`): the key
            // is hashed again only when there are.
            let key = (!live.is_empty()).then(|| super::ingest::live_key(a));
            match key.filter(|k| live.contains(k)) {
                Some(key) => {
                    rows.adopted.push((meta.id.clone(), key));
                    announced.insert(i);
                }
                None => rows.alerts.push(alert_values(tenant, a)),
            }
        }
        if hooked {
            let event =
                serde_json::json!({"tenant": tenant, "session": meta.id, "result": s.result});
            rows.events
                .push((tenant.to_string(), "session.analysed", event));
            // The session's high alerts not announced on arrival, in one event: a session is one
            // thing for a supervisor to look at.
            let high: Vec<&Alert> = s
                .alerts
                .iter()
                .enumerate()
                .filter(|(i, a)| {
                    a.severity == crate::sensitive::Severity::High && !announced.contains(i)
                })
                .map(|(_, a)| a)
                .collect();
            if !high.is_empty() {
                let event =
                    serde_json::json!({"tenant": tenant, "session": meta.id, "alerts": high});
                rows.events.push((tenant.to_string(), "alert.high", event));
            }
        }
        done.sessions += 1;
    }
    if !new {
        // Whatever rows the sessions written now had (a row may outlive its session when someone
        // cleared the sessions by hand), and everything of the sessions that are gone.
        let gone: Vec<&str> = out.gone.iter().map(String::as_str).collect();
        let all: Vec<&str> = written
            .iter()
            .copied()
            .chain(gone.iter().copied())
            .collect();
        let not_timeouts = Some(("kind <> ?", TIMEOUT_KIND));
        delete_in(
            tx,
            "huixi_alerts",
            "session_id",
            tenant,
            &written,
            not_timeouts,
        )
        .await?;
        delete_in(tx, "huixi_alerts", "session_id", tenant, &gone, None).await?;
        delete_in(tx, "huixi_findings", "session_id", tenant, &all, None).await?;
        delete_in(tx, "huixi_sessions", "id", tenant, &all, None).await?;
    }
    done.gone = !out.gone.is_empty();

    if out.extras != stored_extras {
        let mut known: BTreeSet<String> = BTreeSet::new();
        let mut stale: BTreeSet<String> = BTreeSet::new();
        if !new {
            // Every session the conversation has now, and had until this commit.
            let sessions: BTreeSet<&str> = out
                .sessions
                .iter()
                .map(|s| s.session.id.as_str())
                .chain(stored.keys().map(String::as_str))
                .collect();
            let sessions: Vec<&str> = sessions.into_iter().collect();
            (known, stale) = clear_extras(tx, out, &sessions).await?;
        }
        stale.extend(out.contributions.iter().map(|c| c.customer.clone()));
        extras_rows(out, stale, rows);
        if hooked {
            for a in out
                .metrics
                .timeouts
                .iter()
                .filter(|a| !known.contains(&a.msgid))
            {
                let event = serde_json::json!({"tenant": tenant, "alert": a});
                rows.events
                    .push((tenant.to_string(), "alert.timeout", event));
            }
        }
        done.extras = true;
    }
    Ok(done)
}

/// The rows of a conversation's turns, traffic, 超时未回复 and customer contributions, and the marks
/// of the customers whose profiles are now stale (those it had and those it has).
fn extras_rows(out: &ConversationOutput, stale: BTreeSet<String>, rows: &mut Rows) {
    let tenant = out.tenant.as_str();
    let conversation = out.conversation.as_str();
    let m = &out.metrics;
    rows.turns.extend(m.turns.iter().map(|t| {
        vec![
            Value::from(tenant),
            Value::from(conversation),
            Value::from(t.session.as_str()),
            Value::from(t.msgid.as_str()),
            Value::from(t.customer.as_str()),
            Value::from(t.staff.as_str()),
            Value::from(t.day.as_str()),
            Value::Int(t.asked_at),
            Value::Int(t.due_at),
            Value::OptText(t.answered_msgid.clone()),
            Value::OptInt(t.answered_at),
            Value::OptInt(t.wait_ms),
            Value::Int(i64::from(t.first_in_session)),
        ]
    }));
    rows.traffic.extend(m.traffic.iter().map(|r| {
        vec![
            Value::from(tenant),
            Value::from(conversation),
            Value::from(r.session.as_str()),
            Value::from(r.staff.as_str()),
            Value::from(r.day.as_str()),
            Value::Int(i64::from(r.sent)),
            Value::Int(i64::from(r.received)),
            Value::Int(i64::from(r.negative)),
            Value::Text(serde_json::to_string(&r.alerts).expect("maps serialize")),
        ]
    }));
    rows.timeouts
        .extend(m.timeouts.iter().map(|a| alert_values(tenant, a)));
    let mut seen_identifiers = BTreeSet::new();
    for c in &out.contributions {
        rows.contributions.push(vec![
            Value::from(tenant),
            Value::from(c.customer.as_str()),
            Value::from(c.session.as_str()),
            Value::from(conversation),
            Value::Int(c.start),
            Value::Text(serde_json::to_string(c).expect("contributions serialize")),
        ]);
        let staff = serde_json::to_string(&c.staff).expect("strings serialize");
        for i in &c.identifiers {
            // The key of a row: one message may state the same phone twice.
            let key = (&c.customer, &c.session, &i.msgid, &i.kind, &i.hash);
            if !seen_identifiers.insert(key) {
                continue;
            }
            rows.identifiers.push(vec![
                Value::from(tenant),
                Value::from(c.customer.as_str()),
                Value::from(c.session.as_str()),
                Value::from(conversation),
                Value::from(i.msgid.as_str()),
                Value::from(i.kind.as_str()),
                Value::from(i.hash.as_str()),
                Value::from(i.masked.as_str()),
                Value::Text(staff.clone()),
            ]);
        }
    }
    rows.stale.extend(
        stale
            .iter()
            .map(|c| vec![Value::from(tenant), Value::from(c.as_str())]),
    );
}

/// Removes what a conversation's last commit left beyond its sessions. Returns the questions whose
/// 超时未回复 the CRM has already heard of, and the customers the conversation had.
async fn clear_extras(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    out: &ConversationOutput,
    sessions: &[&str],
) -> Result<(BTreeSet<String>, BTreeSet<String>), StoreError> {
    let tenant = out.tenant.as_str();
    let conversation = out.conversation.as_str();
    // By the sessions' ids, never by a subquery: MariaDB runs a DELETE with a subquery as a scan of
    // the whole table, locking rows of other conversations on its way.
    let in_sessions = |n: usize| format!("session_id IN ({})", vec!["?"; n].join(", "));
    // By question, not session: a timeout that moved into a merged session is not news.
    let mut known: BTreeSet<String> = BTreeSet::new();
    for chunk in sessions.chunks(500) {
        let sql = format!(
            "SELECT msgid FROM huixi_alerts WHERE tenant = ? AND kind = ? AND {}",
            in_sessions(chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(tenant).bind(TIMEOUT_KIND);
        for id in chunk {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut **tx).await? {
            known.insert(text(&r, 0)?);
        }
    }
    let stale: BTreeSet<String> = sqlx::query(
        "SELECT DISTINCT customer FROM huixi_customer_sessions WHERE tenant = ? AND conversation = ?",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| text(r, 0))
    .collect::<Result<_, _>>()?;

    let timeouts = Some(("kind = ?", TIMEOUT_KIND));
    delete_in(tx, "huixi_alerts", "session_id", tenant, sessions, timeouts).await?;
    for table in [
        "huixi_turns",
        "huixi_traffic",
        "huixi_customer_sessions",
        "huixi_customer_identifiers",
    ] {
        delete_where(tx, table, "conversation = ?", tenant, &[conversation]).await?;
    }

    Ok((known, stale))
}

/// `DELETE FROM table WHERE tenant = ? AND <clause>`, with the clause's values bound in order.
async fn delete_where(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    clause: &str,
    tenant: &str,
    values: &[&str],
) -> Result<(), StoreError> {
    let sql = format!("DELETE FROM {table} WHERE tenant = ? AND {clause}");
    let mut q = sqlx::query(&sql).bind(tenant);
    for v in values {
        q = q.bind(*v);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}
