//! Conversation metrics as read back (turns, traffic), and the sweep that raises 超时未回复 for
//! questions left in conversations that went quiet. A conversation's commit writes them.

use std::collections::BTreeMap;

use sqlx::Row;

use super::rows::insert_rows;
use super::sessions::{alert_values, ALERT_INSERT};
use super::webhooks::{hooked, insert_events};
use super::{optional_text, text, Store, StoreError};
use crate::sensitive::Alert;
use crate::trajectory::{timeout_alert, Traffic, Turn};

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
            let due: Vec<Alert> = sqlx::query(
                "SELECT DISTINCT t.session_id, t.msgid, m.content FROM huixi_turns t \
                 JOIN huixi_messages m ON m.tenant = t.tenant AND m.msgid = t.msgid \
                 WHERE t.tenant = ? AND t.answered_at IS NULL AND t.due_at <= ? \
                 AND NOT EXISTS (SELECT 1 FROM huixi_alerts a WHERE a.tenant = t.tenant \
                 AND a.once_key = CONCAT_KEY) ORDER BY t.session_id, t.msgid"
                    .replace(
                        "CONCAT_KEY",
                        self.dialect.timeout_key("t.session_id", "t.msgid").as_str(),
                    )
                    .as_str(),
            )
            .bind(&tenant)
            .bind(horizon)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(timeout_alert(
                    &text(r, 0)?,
                    &text(r, 1)?,
                    None,
                    optional_text(r, 2)?
                        .map(|c| self.open_message(&c))
                        .transpose()?
                        .as_deref(),
                ))
            })
            .collect::<Result<_, StoreError>>()?;
            // One alert a transaction, inserted under its once-per-question key: a sweep running
            // beside this one, or the conversation's own analysis, may raise the same alert at the
            // same moment, and the key keeps one row and one webhook event, with no lock held
            // across two rows.
            for a in due {
                let mut tx = self.pool.begin().await?;
                let inserted = insert_rows(
                    &mut tx,
                    &ALERT_INSERT.replacen("INSERT", self.dialect.insert_ignore(), 1),
                    vec![alert_values(&tenant, &a)],
                )
                .await?;
                if inserted == 0 {
                    tx.rollback().await?;
                    continue;
                }
                if hooked(&mut tx, &tenant).await? {
                    let event = serde_json::json!({"tenant": tenant, "alert": a});
                    insert_events(&mut tx, &tenant, vec![("alert.timeout", event)]).await?;
                }
                tx.commit().await?;
                raised.push(a);
            }
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
