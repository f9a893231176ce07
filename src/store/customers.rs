//! Customers: per-session contributions, the identifiers customers wrote, folded profiles and tag
//! suggestions. Contributions are replaced per conversation; a profile is written only when what it was
//! folded from changed, in a transaction that checks nobody folded newer contributions meanwhile.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::webhooks::enqueue_event;
use super::{delete_rows, now_ms, optional_text, text, Dialect, Store, StoreError};
use crate::customers::duplicates::IdentifierRow;
use crate::customers::{Contribution, CustomerProfile, TagSuggestion};
use crate::digest::hash_parts;

impl Store {
    /// Every contribution of a customer, oldest session first.
    pub async fn contributions_of(
        &self,
        tenant: &str,
        customer: &str,
    ) -> Result<Vec<Contribution>, StoreError> {
        sqlx::query(
            "SELECT contribution FROM huixi_customer_sessions WHERE tenant = ? AND customer = ? \
             ORDER BY start_ms, session_id",
        )
        .bind(tenant)
        .bind(customer)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| contribution(r, customer))
        .collect()
    }

    /// Every customer of the tenant with a profile.
    pub async fn customers(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        sqlx::query("SELECT customer FROM huixi_customers WHERE tenant = ? ORDER BY customer")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| text(r, 0))
            .collect()
    }

    /// Every row of the phones and names written by more than one customer: of those `customer`
    /// wrote, or all of the tenant's. For one customer the query reads only the rows of their own
    /// values (by index), which keeps a batch linear in its customers.
    pub async fn shared_identifiers(
        &self,
        tenant: &str,
        customer: Option<&str>,
    ) -> Result<Vec<IdentifierRow>, StoreError> {
        let values = match customer {
            Some(_) => "SELECT value_hash FROM huixi_customer_identifiers WHERE tenant = ? AND customer = ?",
            None => "SELECT value_hash FROM huixi_customer_identifiers WHERE tenant = ? \
                     GROUP BY value_hash HAVING COUNT(DISTINCT customer) > 1",
        };
        let sql = format!(
            "SELECT customer, kind, value_hash, masked, session_id, msgid, staff FROM huixi_customer_identifiers \
             WHERE tenant = ? AND value_hash IN ({values}) ORDER BY value_hash, customer, session_id, msgid"
        );
        let mut q = sqlx::query(&sql).bind(tenant).bind(tenant);
        if let Some(c) = customer {
            q = q.bind(c);
        }
        let rows = q
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(IdentifierRow {
                    customer: text(r, 0)?,
                    kind: text(r, 1)?,
                    hash: text(r, 2)?,
                    masked: text(r, 3)?,
                    session: text(r, 4)?,
                    msgid: text(r, 5)?,
                    staff: serde_json::from_str(&text(r, 6)?)
                        .map_err(|e| StoreError::Corrupt(format!("identifier staff: {e}")))?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(rows)
    }

    /// Profiles whose 撞单 include a customer served by several staff members. The profile JSON is
    /// huixi's own serialization, so a text match finds them without parsing every profile.
    pub async fn profiles_served_by_several(
        &self,
        tenant: &str,
    ) -> Result<Vec<CustomerProfile>, StoreError> {
        sqlx::query(
            "SELECT profile FROM huixi_customers WHERE tenant = ? AND profile LIKE ? ORDER BY customer",
        )
        .bind(tenant)
        .bind("%\"kind\":\"same_customer\"%")
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            serde_json::from_str(&text(r, 0)?)
                .map_err(|e| StoreError::Corrupt(format!("profile: {e}")))
        })
        .collect()
    }

    /// A stored profile and the hash of what it was folded from.
    pub async fn profile(
        &self,
        tenant: &str,
        customer: &str,
    ) -> Result<Option<(CustomerProfile, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT profile, input_hash FROM huixi_customers WHERE tenant = ? AND customer = ?",
        )
        .bind(tenant)
        .bind(customer)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let profile = serde_json::from_str(&text(&r, 0)?)
                .map_err(|e| StoreError::Corrupt(format!("profile of {customer}: {e}")))?;
            Ok((profile, text(&r, 1)?))
        })
        .transpose()
    }

    /// Writes a profile and its tag suggestions, if the customer's contributions are still the ones it
    /// was folded from (`folded`: [`contributions_hash`] of them). Returns whether it wrote.
    pub async fn save_profile(
        &self,
        tenant: &str,
        profile: &CustomerProfile,
        folded: &str,
        input_hash: &str,
    ) -> Result<bool, StoreError> {
        let customer = profile.customer.as_str();
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::MySql => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let now: Vec<Contribution> = sqlx::query(&format!(
            "SELECT contribution FROM huixi_customer_sessions WHERE tenant = ? AND customer = ? \
             ORDER BY start_ms, session_id{lock}"
        ))
        .bind(tenant)
        .bind(customer)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| contribution(r, customer))
        .collect::<Result<_, _>>()?;
        if contributions_hash(&now) != folded {
            // Another worker stored newer contributions; its fold, which sees them, writes instead.
            tx.rollback().await?;
            return Ok(false);
        }
        let stored = sqlx::query(&format!(
            "SELECT input_hash FROM huixi_customers WHERE tenant = ? AND customer = ?{lock}"
        ))
        .bind(tenant)
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = &stored {
            if text(row, 0)? == input_hash {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        let json = serde_json::to_string(profile).expect("profiles serialize");
        let tables = ["huixi_customers", "huixi_tag_suggestions"];
        delete_rows(&mut tx, &tables, "customer", tenant, customer).await?;
        sqlx::query(
            "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(customer)
        .bind(&json)
        .bind(input_hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        for t in &profile.tags {
            sqlx::query(
                "INSERT INTO huixi_tag_suggestions (tenant, customer, tag_group, tag, tag_id, confidence, \
                 reason, evidence, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(tenant)
            .bind(customer)
            .bind(&t.group)
            .bind(&t.tag)
            .bind(t.tag_id.clone())
            .bind(t.confidence)
            .bind(&t.reason)
            .bind(serde_json::to_string(&t.evidence).expect("strings serialize"))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        enqueue_event(
            &mut tx,
            tenant,
            "customer.updated",
            serde_json::json!({"tenant": tenant, "customer": profile}),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The tag suggestions written back for a customer, most confident first.
    pub async fn tag_suggestions(
        &self,
        tenant: &str,
        customer: &str,
    ) -> Result<Vec<TagSuggestion>, StoreError> {
        sqlx::query(
            "SELECT tag_group, tag, tag_id, confidence, reason, evidence FROM huixi_tag_suggestions \
             WHERE tenant = ? AND customer = ? ORDER BY confidence DESC, tag_group, tag",
        )
        .bind(tenant)
        .bind(customer)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(TagSuggestion {
                group: text(r, 0)?,
                tag: text(r, 1)?,
                tag_id: optional_text(r, 2)?,
                confidence: r.try_get(3)?,
                reason: text(r, 4)?,
                evidence: serde_json::from_str(&text(r, 5)?)
                    .map_err(|e| StoreError::Corrupt(format!("tag evidence: {e}")))?,
            })
        })
        .collect()
    }
}

/// Replaces the contributions (and the identifiers they carry) of one conversation's sessions in
/// `tx`. Returns the customers whose contributions changed; nothing is written when none did.
pub(super) async fn replace_contributions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    dialect: Dialect,
    tenant: &str,
    conversation: &str,
    contributions: &[Contribution],
) -> Result<BTreeSet<String>, StoreError> {
    let stored: BTreeMap<(String, String), String> = sqlx::query(
        "SELECT customer, session_id, contribution FROM huixi_customer_sessions \
         WHERE tenant = ? AND conversation = ?",
    )
    .bind(tenant)
    .bind(conversation)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok(((text(r, 0)?, text(r, 1)?), text(r, 2)?)))
    .collect::<Result<_, StoreError>>()?;
    let new: BTreeMap<(String, String), String> = contributions
        .iter()
        .map(|c| {
            (
                (c.customer.clone(), c.session.clone()),
                serde_json::to_string(c).expect("contributions serialize"),
            )
        })
        .collect();
    let changed: BTreeSet<String> = stored
        .keys()
        .chain(new.keys())
        .filter(|key| stored.get(*key) != new.get(*key))
        .map(|(customer, _)| customer.clone())
        .collect();
    if changed.is_empty() {
        return Ok(changed);
    }
    let tables = ["huixi_customer_sessions", "huixi_customer_identifiers"];
    delete_rows(tx, &tables, "conversation", tenant, conversation).await?;
    for c in contributions {
        sqlx::query(
            "INSERT INTO huixi_customer_sessions (tenant, customer, session_id, conversation, start_ms, \
             contribution) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(&c.customer)
        .bind(&c.session)
        .bind(conversation)
        .bind(c.start)
        .bind(&new[&(c.customer.clone(), c.session.clone())])
        .execute(&mut **tx)
        .await?;
        for i in &c.identifiers {
            sqlx::query(&format!(
                "{} INTO huixi_customer_identifiers (tenant, customer, session_id, conversation, msgid, kind, \
                 value_hash, masked, staff) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                dialect.insert_ignore()
            ))
            .bind(tenant)
            .bind(&c.customer)
            .bind(&c.session)
            .bind(conversation)
            .bind(&i.msgid)
            .bind(&i.kind)
            .bind(&i.hash)
            .bind(&i.masked)
            .bind(serde_json::to_string(&c.staff).expect("strings serialize"))
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(changed)
}

/// What a profile is folded from, as a hash: the contributions in their stored order.
pub fn contributions_hash(contributions: &[Contribution]) -> String {
    let json: Vec<String> = contributions
        .iter()
        .map(|c| serde_json::to_string(c).expect("contributions serialize"))
        .collect();
    hash_parts(json.iter().map(String::as_str))
}

fn contribution(r: &sqlx::any::AnyRow, customer: &str) -> Result<Contribution, StoreError> {
    serde_json::from_str(&text(r, 0)?)
        .map_err(|e| StoreError::Corrupt(format!("contribution of {customer}: {e}")))
}
