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

use super::rows::{insert_rows, Value};
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
}

impl Store {
    /// Everything one conversation's analysis reads, on one connection.
    pub async fn load_conversation(
        &self,
        tenant: &str,
        conversation: &str,
    ) -> Result<StoredConversation, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let messages = sqlx::query(
            "SELECT msgid, raw FROM huixi_messages WHERE tenant = ? AND conversation = ? \
             ORDER BY msgtime, msgid",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let msgid = text(r, 0)?;
            Message::parse(&text(r, 1)?)
                .map_err(|e| StoreError::Corrupt(format!("message {msgid}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
        let mut sessions: BTreeMap<String, StoredSession> = sqlx::query(
            "SELECT id, input_hash, result FROM huixi_sessions WHERE tenant = ? AND conversation = ? \
             ORDER BY id",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                text(r, 0)?,
                StoredSession {
                    input_hash: text(r, 1)?,
                    result: text(r, 2)?,
                    alerts: Vec::new(),
                },
            ))
        })
        .collect::<Result<_, StoreError>>()?;
        if !sessions.is_empty() {
            let alerts = sqlx::query(&format!(
                "SELECT {ALERT_COLUMNS} FROM huixi_alerts WHERE tenant = ? AND session_id IN \
                 (SELECT id FROM huixi_sessions WHERE tenant = ? AND conversation = ?) \
                 ORDER BY session_id, id"
            ))
            .bind(tenant)
            .bind(tenant)
            .bind(conversation)
            .fetch_all(&mut *conn)
            .await?;
            for r in &alerts {
                let a = alert(r)?;
                if let Some(s) = sessions.get_mut(&a.session) {
                    s.alerts.push(a);
                }
            }
        }
        let extras = sqlx::query(
            "SELECT extras FROM huixi_conversations WHERE tenant = ? AND conversation = ?",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| text(&r, 0))
        .transpose()?;
        let horizon = sqlx::query("SELECT MAX(msgtime) FROM huixi_messages WHERE tenant = ?")
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await?
            .try_get::<Option<i64>, _>(0)?
            .unwrap_or(0);
        Ok(StoredConversation {
            messages,
            sessions,
            extras,
            horizon,
        })
    }

    /// Writes what one conversation's analysis produced, in one transaction; nothing at all when it
    /// is what the store holds. A commit racing another of the same conversation (a redelivered job)
    /// waits for it, then writes only what still differs.
    pub async fn commit_conversation(
        &self,
        out: &ConversationOutput,
    ) -> Result<Committed, StoreError> {
        let mut done = Committed::default();
        let to_write = out.sessions.iter().filter(|s| s.write.is_some()).count();
        if to_write == 0 && out.gone.is_empty() && !out.extras_changed {
            return Ok(done);
        }
        let tenant = out.tenant.as_str();
        let conversation = out.conversation.as_str();
        let mut tx = self.pool.begin().await?;
        // The conversation's row first: it is the lock that orders commits of this conversation.
        let upsert = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO huixi_conversations (tenant, conversation, extras, analysed_at) \
                 VALUES (?, ?, '', ?) ON CONFLICT (tenant, conversation) DO UPDATE SET \
                 analysed_at = huixi_conversations.analysed_at"
            }
            Dialect::MySql => {
                "INSERT INTO huixi_conversations (tenant, conversation, extras, analysed_at) \
                 VALUES (?, ?, '', ?) ON DUPLICATE KEY UPDATE analysed_at = analysed_at"
            }
        };
        sqlx::query(upsert)
            .bind(tenant)
            .bind(conversation)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        let stored_extras = text(
            &sqlx::query(
                "SELECT extras FROM huixi_conversations WHERE tenant = ? AND conversation = ?",
            )
            .bind(tenant)
            .bind(conversation)
            .fetch_one(&mut *tx)
            .await?,
            0,
        )?;
        let stored: BTreeMap<String, (String, i64)> = sqlx::query(
            "SELECT id, input_hash, writes FROM huixi_sessions WHERE tenant = ? AND conversation = ? \
             ORDER BY id",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((text(r, 0)?, (text(r, 1)?, r.try_get::<i64, _>(2)?))))
        .collect::<Result<_, StoreError>>()?;
        let hooked = super::webhooks::hooked(&mut tx, tenant).await?;
        let mut events: Vec<(&'static str, serde_json::Value)> = Vec::new();

        // Sessions whose input changed: replaced with their findings and alerts (the conversation's
        // 超时未回复 are the metrics' to replace).
        let mut session_rows = Vec::new();
        let mut finding_rows = Vec::new();
        let mut alert_rows = Vec::new();
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
            session_rows.push(vec![
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
                finding_rows.push(vec![
                    Value::from(tenant),
                    Value::from(meta.id.as_str()),
                    Value::from(f.kind),
                    Value::Text(f.payload.to_string()),
                    Value::Text(serde_json::to_string(&f.evidence).expect("strings serialize")),
                    Value::Text(f.analyser),
                ]);
            }
            for a in s.alerts.iter().filter(|a| a.kind != TIMEOUT_KIND) {
                alert_rows.push(alert_values(tenant, a));
            }
            if hooked {
                events.push((
                    "session.analysed",
                    serde_json::json!({"tenant": tenant, "session": meta.id, "result": s.result}),
                ));
                for a in s
                    .alerts
                    .iter()
                    .filter(|a| a.severity == crate::sensitive::Severity::High)
                {
                    events.push((
                        "alert.high",
                        serde_json::json!({"tenant": tenant, "alert": a}),
                    ));
                }
            }
            done.sessions += 1;
        }
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
            &mut tx,
            "huixi_alerts",
            "session_id",
            tenant,
            &written,
            not_timeouts,
        )
        .await?;
        delete_in(&mut tx, "huixi_alerts", "session_id", tenant, &gone, None).await?;
        delete_in(&mut tx, "huixi_findings", "session_id", tenant, &all, None).await?;
        delete_in(&mut tx, "huixi_sessions", "id", tenant, &all, None).await?;
        insert_rows(
            &mut tx,
            "INSERT INTO huixi_sessions (tenant, id, conversation, kind, participants, start_ms, \
             end_ms, message_count, input_hash, result, analysed_at, writes)",
            session_rows,
        )
        .await?;
        insert_rows(
            &mut tx,
            "INSERT INTO huixi_findings (tenant, session_id, kind, payload, evidence, analyser)",
            finding_rows,
        )
        .await?;
        insert_rows(&mut tx, ALERT_INSERT, alert_rows).await?;

        if out.extras != stored_extras {
            // Every session the conversation has now, and had until this commit.
            let sessions: BTreeSet<&str> = out
                .sessions
                .iter()
                .map(|s| s.session.id.as_str())
                .chain(stored.keys().map(String::as_str))
                .collect();
            let sessions: Vec<&str> = sessions.into_iter().collect();
            let fresh = replace_extras(&mut tx, self.dialect, out, &sessions).await?;
            if hooked {
                events.extend(fresh.iter().map(|a| {
                    (
                        "alert.timeout",
                        serde_json::json!({"tenant": tenant, "alert": a}),
                    )
                }));
            }
            sqlx::query(
                "UPDATE huixi_conversations SET extras = ? WHERE tenant = ? AND conversation = ?",
            )
            .bind(&out.extras)
            .bind(tenant)
            .bind(conversation)
            .execute(&mut *tx)
            .await?;
            done.extras = true;
        }
        if done.sessions == 0 && !done.extras && out.gone.is_empty() {
            tx.rollback().await?;
            return Ok(done);
        }
        sqlx::query(
            "UPDATE huixi_conversations SET analysed_at = ? WHERE tenant = ? AND conversation = ?",
        )
        .bind(now_ms())
        .bind(tenant)
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
        super::webhooks::insert_events(&mut tx, tenant, events).await?;
        tx.commit().await?;
        Ok(done)
    }
}

/// Replaces the conversation's turns, traffic, 超时未回复 and customer contributions, and marks the
/// customers whose profiles are now stale (those it had and those it has). Returns the timeouts the
/// CRM has not heard of.
async fn replace_extras(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    out: &ConversationOutput,
    sessions: &[&str],
) -> Result<Vec<Alert>, StoreError> {
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
    let mut stale: BTreeSet<String> = sqlx::query(
        "SELECT DISTINCT customer FROM huixi_customer_sessions WHERE tenant = ? AND conversation = ?",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| text(r, 0))
    .collect::<Result<_, _>>()?;
    stale.extend(out.contributions.iter().map(|c| c.customer.clone()));

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

    let m = &out.metrics;
    let turns = m
        .turns
        .iter()
        .map(|t| {
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
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO huixi_turns (tenant, conversation, session_id, msgid, customer, staff, day, \
         asked_at, due_at, answered_msgid, answered_at, wait_ms, first_in_session)",
        turns,
    )
    .await?;
    let traffic = m
        .traffic
        .iter()
        .map(|r| {
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
        })
        .collect();
    insert_rows(
        tx,
        "INSERT INTO huixi_traffic (tenant, conversation, session_id, staff, day, sent, received, \
         negative, alerts)",
        traffic,
    )
    .await?;
    // Keyed once per question: a sweep that raised one meanwhile keeps its row, and this insert
    // skips it.
    let timeouts = m.timeouts.iter().map(|a| alert_values(tenant, a)).collect();
    insert_rows(
        tx,
        &ALERT_INSERT.replacen("INSERT", dialect.insert_ignore(), 1),
        timeouts,
    )
    .await?;
    let mut contributions = Vec::new();
    let mut identifiers = Vec::new();
    let mut seen_identifiers = BTreeSet::new();
    for c in &out.contributions {
        contributions.push(vec![
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
            identifiers.push(vec![
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
    insert_rows(
        tx,
        "INSERT INTO huixi_customer_sessions (tenant, customer, session_id, conversation, start_ms, \
         contribution)",
        contributions,
    )
    .await?;
    insert_rows(
        tx,
        "INSERT INTO huixi_customer_identifiers (tenant, customer, session_id, conversation, msgid, \
         kind, value_hash, masked, staff)",
        identifiers,
    )
    .await?;
    let marks = stale
        .iter()
        .map(|c| vec![Value::from(tenant), Value::from(c.as_str())])
        .collect();
    insert_rows(
        tx,
        "INSERT INTO huixi_stale_customers (tenant, customer)",
        marks,
    )
    .await?;
    Ok(m.timeouts
        .iter()
        .filter(|a| !known.contains(&a.msgid))
        .cloned()
        .collect())
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

/// `DELETE FROM table WHERE tenant = ? AND column IN (…) [AND clause]`, a few hundred values a
/// statement: each bounded by the index on (tenant, column), with no subquery for MariaDB to turn into
/// a scan.
async fn delete_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    column: &str,
    tenant: &str,
    values: &[&str],
    and: Option<(&str, &str)>,
) -> Result<(), StoreError> {
    for chunk in values.chunks(500) {
        let mut sql = format!(
            "DELETE FROM {table} WHERE tenant = ? AND {column} IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        if let Some((clause, _)) = and {
            sql.push_str(" AND ");
            sql.push_str(clause);
        }
        let mut q = sqlx::query(&sql).bind(tenant);
        for v in chunk {
            q = q.bind(*v);
        }
        if let Some((_, value)) = and {
            q = q.bind(value);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
