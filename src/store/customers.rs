//! Customers: per-session contributions, the identifiers customers wrote, folded profiles and tag
//! suggestions. Contributions are replaced per conversation; a profile is written only when what it was
//! folded from changed, in a transaction that checks nobody folded newer contributions meanwhile.

use std::collections::BTreeMap;

use sqlx::Row;

use super::rows::{insert_rows, Value};
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

    /// Up to `limit` customers whose profiles a commit made stale, oldest first, with the marks that
    /// say so; every tenant's when `tenant` is `None`. A customer with fifty conversations in a batch
    /// comes back once, with fifty marks.
    pub async fn stale_customers(
        &self,
        tenant: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StaleCustomer>, StoreError> {
        let rows = match tenant {
            Some(t) => sqlx::query(
                "SELECT id, tenant, customer FROM huixi_stale_customers WHERE tenant = ? ORDER BY id LIMIT ?",
            )
            .bind(t)
            .bind(limit),
            None => sqlx::query(
                "SELECT id, tenant, customer FROM huixi_stale_customers ORDER BY id LIMIT ?",
            )
            .bind(limit),
        }
        .fetch_all(&self.pool)
        .await?;
        let mut by_customer: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
        for r in &rows {
            by_customer
                .entry((text(r, 1)?, text(r, 2)?))
                .or_default()
                .push(r.try_get(0)?);
        }
        Ok(by_customer
            .into_iter()
            .map(|((tenant, customer), marks)| StaleCustomer {
                tenant,
                customer,
                marks,
            })
            .collect())
    }

    /// Marks customers' profiles stale (their 撞单 changed with another customer's profile).
    pub async fn mark_stale<'a>(
        &self,
        tenant: &str,
        customers: impl Iterator<Item = &'a str>,
    ) -> Result<(), StoreError> {
        let rows: Vec<Vec<Value>> = customers
            .map(|c| vec![Value::from(tenant), Value::from(c)])
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        insert_rows(
            &mut tx,
            "INSERT INTO huixi_stale_customers (tenant, customer)",
            rows,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The customer's profile is up to date for these marks: they are removed (marks added since
    /// stay, and bring the customer back).
    pub async fn clear_stale(&self, marks: &[i64]) -> Result<(), StoreError> {
        if marks.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        clear_marks(&mut tx, marks).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes a profile and its tag suggestions, if the customer's contributions are still the ones it
    /// was folded from (`folded`: [`contributions_hash`] of them), and clears the marks it answers.
    /// Returns whether it wrote.
    ///
    /// The customer's row is locked first, by an upsert that creates it when missing (rolled back
    /// unless the profile is written), so folds of one customer queue on one row, and the
    /// contributions read under that lock are the newest committed: a fold that saw fewer never
    /// overwrites one that saw more.
    pub async fn save_profile(
        &self,
        tenant: &str,
        profile: &CustomerProfile,
        folded: &str,
        input_hash: &str,
        marks: &[i64],
    ) -> Result<bool, StoreError> {
        let customer = profile.customer.as_str();
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) \
                 VALUES (?, ?, '', '', 0) ON CONFLICT (tenant, customer) DO UPDATE SET \
                 updated_at = huixi_customers.updated_at"
            }
            Dialect::MySql => {
                "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) \
                 VALUES (?, ?, '', '', 0) ON DUPLICATE KEY UPDATE updated_at = updated_at"
            }
        };
        sqlx::query(lock)
            .bind(tenant)
            .bind(customer)
            .execute(&mut *tx)
            .await?;
        let now: Vec<Contribution> = sqlx::query(
            "SELECT contribution FROM huixi_customer_sessions WHERE tenant = ? AND customer = ? \
             ORDER BY start_ms, session_id",
        )
        .bind(tenant)
        .bind(customer)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| contribution(r, customer))
        .collect::<Result<_, _>>()?;
        let stored = text(
            &sqlx::query(
                "SELECT input_hash FROM huixi_customers WHERE tenant = ? AND customer = ?",
            )
            .bind(tenant)
            .bind(customer)
            .fetch_one(&mut *tx)
            .await?,
            0,
        )?;
        // Newer contributions were committed since the fold read them: their marks bring the
        // customer back, and that fold writes. Or the profile is already this one.
        if contributions_hash(&now) != folded || stored == input_hash {
            tx.rollback().await?;
            return self.clear_stale(marks).await.map(|()| false);
        }
        let json = serde_json::to_string(profile).expect("profiles serialize");
        sqlx::query(
            "UPDATE huixi_customers SET profile = ?, input_hash = ?, updated_at = ? \
             WHERE tenant = ? AND customer = ?",
        )
        .bind(&json)
        .bind(input_hash)
        .bind(now_ms())
        .bind(tenant)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
        delete_rows(
            &mut tx,
            &["huixi_tag_suggestions"],
            "customer",
            tenant,
            customer,
        )
        .await?;
        let tags = profile
            .tags
            .iter()
            .map(|t| {
                vec![
                    Value::from(tenant),
                    Value::from(customer),
                    Value::from(t.group.as_str()),
                    Value::from(t.tag.as_str()),
                    Value::OptText(t.tag_id.clone()),
                    Value::Real(t.confidence),
                    Value::from(t.reason.as_str()),
                    Value::Text(serde_json::to_string(&t.evidence).expect("strings serialize")),
                    Value::Int(now_ms()),
                ]
            })
            .collect();
        insert_rows(
            &mut tx,
            "INSERT INTO huixi_tag_suggestions (tenant, customer, tag_group, tag, tag_id, confidence, \
             reason, evidence, updated_at)",
            tags,
        )
        .await?;
        enqueue_event(
            &mut tx,
            tenant,
            "customer.updated",
            serde_json::json!({"tenant": tenant, "customer": profile}),
        )
        .await?;
        clear_marks(&mut tx, marks).await?;
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

/// A customer whose profile is stale, and the marks that say so.
#[derive(Debug, Clone)]
pub struct StaleCustomer {
    pub tenant: String,
    pub customer: String,
    pub marks: Vec<i64>,
}

async fn clear_marks(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    marks: &[i64],
) -> Result<(), StoreError> {
    for chunk in marks.chunks(500) {
        let sql = format!(
            "DELETE FROM huixi_stale_customers WHERE id IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
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
