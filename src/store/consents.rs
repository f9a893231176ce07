//! 拒绝存档: the consent events WeCom archives (`agree`, `disagree`) read back as each customer's
//! latest word per staff member. They are messages like any other, kept from every path that brings
//! messages in; the list reads them by type, through their own index.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{text, Store, StoreError};
use crate::archive::{Event, Message, Role};

/// A customer's consent to archiving their chats with one staff member, as it stands.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Consent {
    pub customer: String,
    /// The staff member the consent was given to or refused; empty when the event named none.
    pub staff: String,
    /// `agree` or `disagree`.
    pub state: String,
    /// Since when (epoch ms): the time of the event that said so.
    pub since: i64,
    /// That event.
    pub msgid: String,
    /// How often the customer changed their mind with this staff member, that event included.
    pub events: usize,
}

impl Store {
    /// Every customer's latest consent per staff member, refusals first, then by time.
    pub async fn consents(&self, tenant: &str) -> Result<Vec<Consent>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        // Ordered here, not by the query: an ORDER BY msgtime would lead the planner to the
        // tenant's time index, every message of the tenant, instead of the index by type. The types
        // are literals, not parameters: SQLite's index by type holds only these two (a partial
        // index), and its planner uses it only for a query that names them.
        let mut rows = Vec::new();
        for r in sqlx::query(
            "SELECT msgid, raw, msgtime FROM huixi_messages \
             WHERE tenant = ? AND msgtype IN ('agree', 'disagree')",
        )
        .bind(tenant)
        .fetch_all(&mut *conn)
        .await?
        {
            let time: i64 = r.try_get(2)?;
            rows.push((time, text(&r, 0)?, text(&r, 1)?));
        }
        rows.sort();
        let mut latest: BTreeMap<(String, String), Consent> = BTreeMap::new();
        for (_, msgid, raw) in rows {
            let m = Message::parse(&self.open_message(&raw)?)
                .map_err(|e| StoreError::Corrupt(format!("message {msgid}: {e}")))?;
            let Event::Consent {
                agree,
                userid,
                time,
            } = &m.event
            else {
                continue;
            };
            let customer = if userid.is_empty() {
                m.from.clone()
            } else {
                userid.clone()
            };
            let staff: Vec<&String> = std::iter::once(&m.from)
                .chain(&m.tolist)
                .filter(|p| Role::of(p) == Role::Staff)
                .collect();
            let staff = if staff.is_empty() {
                vec![String::new()]
            } else {
                staff.into_iter().cloned().collect()
            };
            // The event's own time when it gives one; the message's otherwise.
            let since = if *time > 0 { *time } else { m.msgtime };
            for s in staff {
                let entry = latest
                    .entry((customer.clone(), s.clone()))
                    .or_insert_with(|| Consent {
                        customer: customer.clone(),
                        staff: s,
                        state: String::new(),
                        since,
                        msgid: String::new(),
                        events: 0,
                    });
                entry.events += 1;
                if since >= entry.since || entry.msgid.is_empty() {
                    entry.state = if *agree { "agree" } else { "disagree" }.into();
                    entry.since = since;
                    entry.msgid = m.msgid.clone();
                }
            }
        }
        let mut out: Vec<Consent> = latest.into_values().collect();
        out.sort_by(|a, b| {
            (a.state != "disagree", a.since, &a.customer).cmp(&(
                b.state != "disagree",
                b.since,
                &b.customer,
            ))
        });
        Ok(out)
    }
}
