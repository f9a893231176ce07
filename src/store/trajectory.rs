//! Conversation metrics: turns, traffic and 超时未回复 alerts, replaced per conversation whenever it is
//! analysed, and only written when they changed (a re-run on the same archive writes nothing).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::customers::replace_contributions;
use super::sessions::{alert, ALERT_COLUMNS};
use super::webhooks::enqueue_alerts;
use super::{delete_rows, optional_text, text, Store, StoreError};
use crate::customers::Contribution;
use crate::sensitive::Alert;
use crate::trajectory::{timeout_alert, ConversationMetrics, Traffic, Turn, TIMEOUT_KIND};

const TURN_COLUMNS: &str =
    "session_id, msgid, customer, staff, day, asked_at, due_at, answered_msgid, \
     answered_at, wait_ms, first_in_session";
const TRAFFIC_COLUMNS: &str = "session_id, staff, day, sent, received, negative, alerts";

/// Which rows of the metrics tables a query reads.
#[derive(Debug, Clone, Default)]
pub struct MetricsFilter {
    pub staff: Option<String>,
    /// Local dates, inclusive, `YYYY-MM-DD`.
    pub from_day: Option<String>,
    pub to_day: Option<String>,
    pub session: Option<String>,
}

impl Store {
    /// A conversation's metrics, timeout alerts and customer contributions, replaced in one
    /// transaction (one commit) and only where they changed. Returns the customers whose
    /// contributions changed.
    pub async fn replace_conversation_extras(
        &self,
        tenant: &str,
        conversation: &str,
        metrics: &ConversationMetrics,
        contributions: &[Contribution],
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let wrote = replace_metrics(&mut tx, tenant, conversation, metrics).await?;
        let changed =
            replace_contributions(&mut tx, self.dialect, tenant, conversation, contributions)
                .await?;
        if wrote || !changed.is_empty() {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(changed)
    }

    /// Raises 超时未回复 for unanswered turns that fell due by their tenant's horizon and have no alert
    /// yet; every tenant's when `tenant` is `None`. A conversation that went quiet is not analysed
    /// again, so without this sweep the question nobody answered, the case that matters most, would
    /// never raise one. Returns the alerts raised.
    pub async fn raise_quiet_timeouts(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<Alert>, StoreError> {
        let tenants: Vec<String> = match tenant {
            Some(t) => vec![t.to_string()],
            None => sqlx::query(
                "SELECT DISTINCT tenant FROM huixi_turns WHERE answered_at IS NULL ORDER BY tenant",
            )
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| text(r, 0))
            .collect::<Result<_, _>>()?,
        };
        let mut raised = Vec::new();
        for tenant in tenants {
            let horizon = self.archive_horizon(&tenant).await?;
            let mut tx = self.pool.begin().await?;
            let alerts: Vec<Alert> = sqlx::query(
                "SELECT DISTINCT t.session_id, t.msgid, m.content FROM huixi_turns t \
                 JOIN huixi_messages m ON m.tenant = t.tenant AND m.msgid = t.msgid \
                 WHERE t.tenant = ? AND t.answered_at IS NULL AND t.due_at <= ? \
                 AND NOT EXISTS (SELECT 1 FROM huixi_alerts a WHERE a.tenant = t.tenant \
                 AND a.session_id = t.session_id AND a.msgid = t.msgid AND a.kind = ?) \
                 ORDER BY t.session_id, t.msgid",
            )
            .bind(&tenant)
            .bind(horizon)
            .bind(TIMEOUT_KIND)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| {
                Ok(timeout_alert(
                    &text(r, 0)?,
                    &text(r, 1)?,
                    None,
                    optional_text(r, 2)?.as_deref(),
                ))
            })
            .collect::<Result<_, StoreError>>()?;
            if alerts.is_empty() {
                tx.rollback().await?;
                continue;
            }
            for a in &alerts {
                super::sessions::insert_alert(&mut tx, &tenant, a).await?;
            }
            enqueue_alerts(&mut tx, &tenant, "alert.timeout", &alerts).await?;
            tx.commit().await?;
            raised.extend(alerts);
        }
        Ok(raised)
    }

    /// Turns and traffic rows matching a filter, for the per-staff-day and per-session figures.
    pub async fn metrics_rows(
        &self,
        tenant: &str,
        f: &MetricsFilter,
    ) -> Result<(Vec<Turn>, Vec<Traffic>), StoreError> {
        let mut clauses = String::new();
        let mut binds: Vec<&str> = Vec::new();
        if let Some(s) = &f.staff {
            clauses.push_str(" AND staff = ?");
            binds.push(s);
        }
        if let Some(d) = &f.from_day {
            clauses.push_str(" AND day >= ?");
            binds.push(d);
        }
        if let Some(d) = &f.to_day {
            clauses.push_str(" AND day <= ?");
            binds.push(d);
        }
        if let Some(s) = &f.session {
            clauses.push_str(" AND session_id = ?");
            binds.push(s);
        }
        let mut conn = self.pool.acquire().await?;
        let turns = select_turns(&mut conn, tenant, &clauses, &binds).await?;
        let traffic = select_traffic(&mut conn, tenant, &clauses, &binds).await?;
        Ok((turns, traffic))
    }
}

/// Replaces a conversation's metrics and timeout alerts in `tx`. Returns false, writing nothing, when
/// they are what the store already holds.
async fn replace_metrics(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tenant: &str,
    conversation: &str,
    m: &ConversationMetrics,
) -> Result<bool, StoreError> {
    let of_conversation = " AND conversation = ?";
    let turns = select_turns(tx, tenant, of_conversation, &[conversation]).await?;
    let traffic = select_traffic(tx, tenant, of_conversation, &[conversation]).await?;
    let in_conversation =
        "session_id IN (SELECT id FROM huixi_sessions WHERE tenant = ? AND conversation = ?)";
    let timeouts = sqlx::query(&format!(
        "SELECT {ALERT_COLUMNS} FROM huixi_alerts WHERE tenant = ? AND kind = ? AND {in_conversation} \
         ORDER BY session_id, msgid"
    ))
    .bind(tenant)
    .bind(TIMEOUT_KIND)
    .bind(tenant)
    .bind(conversation)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(alert)
    .collect::<Result<Vec<_>, _>>()?;

    // Sorted as the selects order them, so equal metrics compare equal.
    let mut new_turns = m.turns.clone();
    new_turns
        .sort_by(|a, b| (a.asked_at, &a.msgid, &a.staff).cmp(&(b.asked_at, &b.msgid, &b.staff)));
    let mut new_traffic = m.traffic.clone();
    new_traffic.sort_by(|a, b| (&a.session, &a.staff, &a.day).cmp(&(&b.session, &b.staff, &b.day)));
    let mut new_timeouts = m.timeouts.clone();
    new_timeouts.sort_by(|a, b| (&a.session, &a.msgid).cmp(&(&b.session, &b.msgid)));
    if turns == new_turns && traffic == new_traffic && timeouts == new_timeouts {
        return Ok(false);
    }

    let tables = ["huixi_turns", "huixi_traffic"];
    delete_rows(tx, &tables, "conversation", tenant, conversation).await?;
    sqlx::query(&format!(
        "DELETE FROM huixi_alerts WHERE tenant = ? AND kind = ? AND {in_conversation}"
    ))
    .bind(tenant)
    .bind(TIMEOUT_KIND)
    .bind(tenant)
    .bind(conversation)
    .execute(&mut **tx)
    .await?;
    for t in &new_turns {
        sqlx::query(&format!(
            "INSERT INTO huixi_turns (tenant, conversation, {TURN_COLUMNS}) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(tenant)
        .bind(conversation)
        .bind(&t.session)
        .bind(&t.msgid)
        .bind(&t.customer)
        .bind(&t.staff)
        .bind(&t.day)
        .bind(t.asked_at)
        .bind(t.due_at)
        .bind(t.answered_msgid.clone())
        .bind(t.answered_at)
        .bind(t.wait_ms)
        .bind(i64::from(t.first_in_session))
        .execute(&mut **tx)
        .await?;
    }
    for r in &new_traffic {
        sqlx::query(&format!(
            "INSERT INTO huixi_traffic (tenant, conversation, {TRAFFIC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(tenant)
        .bind(conversation)
        .bind(&r.session)
        .bind(&r.staff)
        .bind(&r.day)
        .bind(i64::from(r.sent))
        .bind(i64::from(r.received))
        .bind(i64::from(r.negative))
        .bind(serde_json::to_string(&r.alerts).expect("maps serialize"))
        .execute(&mut **tx)
        .await?;
    }
    for a in &new_timeouts {
        super::sessions::insert_alert(tx, tenant, a).await?;
    }
    // Only timeouts the CRM has not heard of yet are pushed.
    let fresh: Vec<Alert> = new_timeouts
        .iter()
        .filter(|a| !timeouts.iter().any(|o| o.msgid == a.msgid))
        .cloned()
        .collect();
    enqueue_alerts(tx, tenant, "alert.timeout", &fresh).await?;
    Ok(true)
}

/// The tenant's turns matching `clauses` (`" AND column = ?"`…, one bind each).
async fn select_turns(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    clauses: &str,
    binds: &[&str],
) -> Result<Vec<Turn>, StoreError> {
    let sql = format!(
        "SELECT {TURN_COLUMNS} FROM huixi_turns WHERE tenant = ?{clauses} ORDER BY asked_at, msgid, staff"
    );
    let mut query = sqlx::query(&sql).bind(tenant);
    for b in binds {
        query = query.bind(*b);
    }
    query.fetch_all(conn).await?.iter().map(turn).collect()
}

/// The tenant's traffic rows matching `clauses`, as [`select_turns`].
async fn select_traffic(
    conn: &mut sqlx::AnyConnection,
    tenant: &str,
    clauses: &str,
    binds: &[&str],
) -> Result<Vec<Traffic>, StoreError> {
    let sql = format!(
        "SELECT {TRAFFIC_COLUMNS} FROM huixi_traffic WHERE tenant = ?{clauses} ORDER BY session_id, staff, day"
    );
    let mut query = sqlx::query(&sql).bind(tenant);
    for b in binds {
        query = query.bind(*b);
    }
    query.fetch_all(conn).await?.iter().map(traffic).collect()
}

fn turn(r: &sqlx::any::AnyRow) -> Result<Turn, StoreError> {
    Ok(Turn {
        session: text(r, 0)?,
        msgid: text(r, 1)?,
        customer: text(r, 2)?,
        staff: text(r, 3)?,
        day: text(r, 4)?,
        asked_at: r.try_get(5)?,
        due_at: r.try_get(6)?,
        answered_msgid: optional_text(r, 7)?,
        answered_at: r.try_get(8)?,
        wait_ms: r.try_get(9)?,
        first_in_session: r.try_get::<i64, _>(10)? != 0,
    })
}

fn traffic(r: &sqlx::any::AnyRow) -> Result<Traffic, StoreError> {
    let alerts: BTreeMap<String, u32> = serde_json::from_str(&text(r, 6)?)
        .map_err(|e| StoreError::Corrupt(format!("traffic alerts: {e}")))?;
    Ok(Traffic {
        session: text(r, 0)?,
        staff: text(r, 1)?,
        day: text(r, 2)?,
        sent: r.try_get::<i64, _>(3)? as u32,
        received: r.try_get::<i64, _>(4)? as u32,
        negative: r.try_get::<i64, _>(5)? != 0,
        alerts,
    })
}
