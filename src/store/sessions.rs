//! Sessions and everything found in them. A session's findings and alerts are replaced together in one
//! transaction, so a reader never sees half of an analysis and a crash leaves the previous one whole.

use sqlx::Row;

use super::{delete_rows, text, Dialect, Store, StoreError};
use crate::agents::SessionResult;
use crate::archive::Session;
use crate::sensitive::{Alert, Severity};

/// What the store remembers of a session to decide whether it must be analysed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub id: String,
    pub input_hash: String,
}

impl Store {
    pub async fn sessions_of(
        &self,
        tenant: &str,
        conversation: &str,
    ) -> Result<Vec<StoredSession>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, input_hash FROM huixi_sessions WHERE tenant = ? AND conversation = ? ORDER BY id",
        )
        .bind(tenant)
        .bind(conversation)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredSession {
                    id: text(r, 0)?,
                    input_hash: text(r, 1)?,
                })
            })
            .collect()
    }

    /// The conversation a stored session belongs to.
    pub async fn conversation_of(
        &self,
        tenant: &str,
        session: &str,
    ) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT conversation FROM huixi_sessions WHERE tenant = ? AND id = ?")
                .bind(tenant)
                .bind(session)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| text(&r, 0)).transpose()
    }

    /// Writes a session, its findings and its alerts, replacing whatever an earlier analysis left.
    /// Returns false, writing nothing, when the store already holds this session for the same input
    /// hash: two workers that raced on one redelivered job leave one write, not two.
    pub async fn save_session(
        &self,
        tenant: &str,
        session: &Session,
        input_hash: &str,
        result: &SessionResult,
        alerts: &[Alert],
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::MySql => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let existing = sqlx::query(&format!(
            "SELECT input_hash, writes FROM huixi_sessions WHERE tenant = ? AND id = ?{lock}"
        ))
        .bind(tenant)
        .bind(&session.id)
        .fetch_optional(&mut *tx)
        .await?;
        let writes = match &existing {
            Some(row) if text(row, 0)? == input_hash => {
                tx.rollback().await?;
                return Ok(false);
            }
            Some(row) => row.try_get::<i64, _>(1)? + 1,
            None => 1,
        };
        delete_session_rows(&mut tx, tenant, &session.id).await?;
        let result_json = serde_json::to_string(result).expect("results serialize");
        sqlx::query(
            "INSERT INTO huixi_sessions (tenant, id, conversation, kind, participants, start_ms, end_ms, \
             message_count, input_hash, result, analysed_at, writes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(&session.id)
        .bind(&session.conversation)
        .bind(session.kind.as_str())
        .bind(serde_json::to_string(&session.participants).expect("strings serialize"))
        .bind(session.start)
        .bind(session.end)
        .bind(session.messages.len() as i64)
        .bind(input_hash)
        .bind(result_json)
        .bind(super::now_ms())
        .bind(writes)
        .execute(&mut *tx)
        .await?;
        for f in result.findings() {
            sqlx::query(
                "INSERT INTO huixi_findings (tenant, session_id, kind, payload, evidence, analyser) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant)
            .bind(&session.id)
            .bind(f.kind)
            .bind(f.payload.to_string())
            .bind(serde_json::to_string(&f.evidence).expect("strings serialize"))
            .bind(f.analyser)
            .execute(&mut *tx)
            .await?;
        }
        for a in alerts {
            insert_alert(&mut tx, tenant, a).await?;
        }
        super::webhooks::enqueue_events(&mut tx, tenant, &session.id, result, alerts).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes sessions that no longer exist (their messages now belong to a merged session).
    pub async fn delete_session(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        delete_session_rows(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored result and alerts of a session analysed earlier.
    pub async fn load_session(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<(SessionResult, Vec<Alert>)>, StoreError> {
        let Some(row) =
            sqlx::query("SELECT result FROM huixi_sessions WHERE tenant = ? AND id = ?")
                .bind(tenant)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let result: SessionResult = serde_json::from_str(&text(&row, 0)?)
            .map_err(|e| StoreError::Corrupt(format!("session {id}: {e}")))?;
        let rows = sqlx::query(&format!(
            "SELECT {ALERT_COLUMNS} FROM huixi_alerts WHERE tenant = ? AND session_id = ? ORDER BY id"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let alerts = rows.iter().map(alert).collect::<Result<Vec<_>, _>>()?;
        Ok(Some((result, alerts)))
    }
}

pub(super) const ALERT_COLUMNS: &str =
    "session_id, msgid, kind, category, severity, word, text, start_char, end_char, evidence";

/// An alert from a row of [`ALERT_COLUMNS`].
pub(super) fn alert(r: &sqlx::any::AnyRow) -> Result<Alert, StoreError> {
    let severity = text(r, 4)?;
    Ok(Alert {
        session: text(r, 0)?,
        msgid: text(r, 1)?,
        kind: text(r, 2)?,
        category: text(r, 3)?,
        severity: severity
            .parse::<Severity>()
            .map_err(|_| StoreError::Corrupt(format!("alert severity {severity:?}")))?,
        word: text(r, 5)?,
        text: text(r, 6)?,
        start: r.try_get::<i64, _>(7)? as usize,
        end: r.try_get::<i64, _>(8)? as usize,
        evidence: serde_json::from_str(&text(r, 9)?)
            .map_err(|e| StoreError::Corrupt(format!("alert evidence: {e}")))?,
    })
}

pub(super) async fn insert_alert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    a: &Alert,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO huixi_alerts (tenant, session_id, msgid, kind, category, severity, word, text, \
         start_char, end_char, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(tenant)
    .bind(&a.session)
    .bind(&a.msgid)
    .bind(&a.kind)
    .bind(&a.category)
    .bind(a.severity.as_str())
    .bind(&a.word)
    .bind(&a.text)
    .bind(a.start as i64)
    .bind(a.end as i64)
    .bind(serde_json::to_string(&a.evidence).expect("strings serialize"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn delete_session_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    id: &str,
) -> Result<(), StoreError> {
    delete_rows(
        tx,
        &["huixi_alerts", "huixi_findings"],
        "session_id",
        tenant,
        id,
    )
    .await?;
    delete_rows(tx, &["huixi_sessions"], "id", tenant, id).await
}
