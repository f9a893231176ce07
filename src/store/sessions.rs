//! Sessions and everything found in them, as read back (a conversation's commit writes them: see
//! `conversations`).

use sqlx::Row;

use super::rows::Value;
use super::{text, Store, StoreError};
use crate::agents::SessionResult;
use crate::sensitive::{Alert, Severity};
use crate::trajectory::TIMEOUT_KIND;

impl Store {
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
    "session_id, msgid, kind, category, severity, word, text, start_char, end_char, evidence, occurrences";

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
        occurrences: r.try_get::<i64, _>(10)?.max(1) as usize,
    })
}

/// The insert that [`alert_values`] fill.
pub(super) const ALERT_INSERT: &str = "INSERT INTO huixi_alerts (tenant, session_id, msgid, kind, \
     category, severity, word, text, start_char, end_char, evidence, occurrences, once_key)";

/// An alert's row. A 超时未回复 carries its once-per-question key, so however many sweeps and
/// analyses raise it at the same moment, the store keeps one.
pub(super) fn alert_values(tenant: &str, a: &Alert) -> Vec<Value> {
    let once = (a.kind == TIMEOUT_KIND).then(|| format!("timeout:{}:{}", a.session, a.msgid));
    vec![
        Value::from(tenant),
        Value::from(a.session.as_str()),
        Value::from(a.msgid.as_str()),
        Value::from(a.kind.as_str()),
        Value::from(a.category.as_str()),
        Value::from(a.severity.as_str()),
        Value::from(a.word.as_str()),
        Value::from(a.text.as_str()),
        Value::Int(a.start as i64),
        Value::Int(a.end as i64),
        Value::Text(serde_json::to_string(&a.evidence).expect("strings serialize")),
        Value::Int(a.occurrences as i64),
        Value::OptText(once),
    ]
}
