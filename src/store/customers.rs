//! Customers: per-session contributions, the identifiers customers wrote, folded profiles and tag
//! suggestions. Contributions are replaced per conversation; a profile is written only when what it was
//! folded from changed, in a transaction that checks nobody folded newer contributions meanwhile.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use super::rows::{delete_in, insert_rows, select_in, Value};
use super::{now_ms, optional_text, text, Dialect, Store, StoreError};
use crate::customers::duplicates::IdentifierRow;
use crate::customers::{Contribution, CustomerProfile, TagSuggestion};
use crate::digest::hash_parts;

impl Store {
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

    /// Every row of the tenant's phones and names written by more than one customer (the 撞单 list;
    /// a profile reads its own customers' rows through [`Store::customer_inputs`]).
    pub async fn shared_identifiers(&self, tenant: &str) -> Result<Vec<IdentifierRow>, StoreError> {
        sqlx::query(
            "SELECT customer, kind, value_hash, masked, session_id, msgid, staff \
             FROM huixi_customer_identifiers WHERE tenant = ? AND value_hash IN \
             (SELECT value_hash FROM huixi_customer_identifiers WHERE tenant = ? \
             GROUP BY value_hash HAVING COUNT(DISTINCT customer) > 1) \
             ORDER BY value_hash, customer, session_id, msgid",
        )
        .bind(tenant)
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(identifier_row)
        .collect()
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
        // The marks are a queue: often empty, so statistics would send the planner to a scan that
        // a long backlog then pays for. The index is named.
        let hint = match self.dialect {
            Dialect::Sqlite => "INDEXED BY huixi_stale_customers_by_tenant",
            Dialect::MySql => "FORCE INDEX (huixi_stale_customers_by_tenant)",
        };
        let of_tenant = format!(
            "SELECT id, tenant, customer FROM huixi_stale_customers {hint} WHERE tenant = ? \
             ORDER BY tenant, id LIMIT ?"
        );
        let rows = match tenant {
            Some(t) => sqlx::query(&of_tenant).bind(t).bind(limit),
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

    /// What refreshing these customers' profiles reads: each one's contributions (oldest session
    /// first), the identifier rows of the phones and names they wrote (every customer's who wrote
    /// them), and the stored profile with its hash. A statement per table for the group.
    pub async fn customer_inputs(
        &self,
        tenant: &str,
        customers: &[String],
    ) -> Result<BTreeMap<String, CustomerInput>, StoreError> {
        let keys: Vec<&str> = customers.iter().map(String::as_str).collect();
        let mut conn = self.pool.acquire().await?;
        let mut out: BTreeMap<String, CustomerInput> = BTreeMap::new();
        let rows = select_in(
            &mut conn,
            "SELECT customer, contribution FROM huixi_customer_sessions",
            "customer",
            tenant,
            &keys,
            " ORDER BY customer, start_ms, session_id",
        )
        .await?;
        for r in &rows {
            let customer = text(r, 0)?;
            let c = contribution(r, 1, &customer)?;
            out.entry(customer).or_default().contributions.push(c);
        }
        // The values these customers wrote, then every row of those values.
        let mut values_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in select_in(
            &mut conn,
            "SELECT DISTINCT customer, value_hash FROM huixi_customer_identifiers",
            "customer",
            tenant,
            &keys,
            "",
        )
        .await?
        {
            values_of
                .entry(text(&r, 0)?)
                .or_default()
                .push(text(&r, 1)?);
        }
        let values: BTreeSet<&str> = values_of.values().flatten().map(String::as_str).collect();
        let values: Vec<&str> = values.into_iter().collect();
        let mut by_value: BTreeMap<String, Vec<IdentifierRow>> = BTreeMap::new();
        for r in select_in(
            &mut conn,
            "SELECT customer, kind, value_hash, masked, session_id, msgid, staff \
             FROM huixi_customer_identifiers",
            "value_hash",
            tenant,
            &values,
            " ORDER BY value_hash, customer, session_id, msgid",
        )
        .await?
        {
            let row = identifier_row(&r)?;
            by_value.entry(row.hash.clone()).or_default().push(row);
        }
        for (customer, values) in values_of {
            if let Some(input) = out.get_mut(&customer) {
                for v in values {
                    input
                        .shared
                        .extend(by_value.get(&v).into_iter().flatten().cloned());
                }
                input.shared.sort_by(|a, b| {
                    (&a.hash, &a.customer, &a.session, &a.msgid).cmp(&(
                        &b.hash,
                        &b.customer,
                        &b.session,
                        &b.msgid,
                    ))
                });
            }
        }
        for r in select_in(
            &mut conn,
            "SELECT customer, profile, input_hash FROM huixi_customers",
            "customer",
            tenant,
            &keys,
            "",
        )
        .await?
        {
            let customer = text(&r, 0)?;
            let profile = serde_json::from_str(&text(&r, 1)?)
                .map_err(|e| StoreError::Corrupt(format!("profile of {customer}: {e}")))?;
            if let Some(input) = out.get_mut(&customer) {
                input.stored = Some((profile, text(&r, 2)?));
            }
        }
        Ok(out)
    }

    /// Writes profiles and their tag suggestions, each only if the customer's contributions are still
    /// the ones it was folded from, and clears the marks they answer; one transaction. Returns, per
    /// profile, whether it was written.
    ///
    /// The customers' rows are locked first, in key order, by an upsert that creates a row when
    /// missing (rolled back unless its profile is written), so folds of one customer queue on one
    /// row, and the contributions read under that lock are the newest committed: a fold that saw
    /// fewer never overwrites one that saw more.
    pub async fn save_profiles(
        &self,
        tenant: &str,
        writes: &[ProfileWrite],
        marks: &[i64],
    ) -> Result<Vec<bool>, StoreError> {
        if writes.is_empty() {
            self.clear_stale(marks).await?;
            return Ok(Vec::new());
        }
        let mut order: Vec<&ProfileWrite> = writes.iter().collect();
        order.sort_by(|a, b| a.profile.customer.cmp(&b.profile.customer));
        let keys: Vec<&str> = order.iter().map(|w| w.profile.customer.as_str()).collect();
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) \
                 VALUES __ ON CONFLICT (tenant, customer) DO UPDATE SET \
                 updated_at = huixi_customers.updated_at"
            }
            Dialect::MySql => {
                "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) \
                 VALUES __ ON DUPLICATE KEY UPDATE updated_at = updated_at"
            }
        };
        let rows = keys
            .iter()
            .map(|k| {
                vec![
                    Value::from(tenant),
                    Value::from(*k),
                    Value::from(""),
                    Value::from(""),
                    Value::Int(0),
                ]
            })
            .collect();
        insert_rows(&mut tx, lock, rows).await?;
        let mut now: BTreeMap<String, Vec<Contribution>> = BTreeMap::new();
        for r in select_in(
            &mut tx,
            "SELECT customer, contribution FROM huixi_customer_sessions",
            "customer",
            tenant,
            &keys,
            " ORDER BY customer, start_ms, session_id",
        )
        .await?
        {
            let customer = text(&r, 0)?;
            let c = contribution(&r, 1, &customer)?;
            now.entry(customer).or_default().push(c);
        }
        let mut stored: BTreeMap<String, String> = BTreeMap::new();
        let sql = "SELECT customer, input_hash FROM huixi_customers";
        for r in select_in(&mut tx, sql, "customer", tenant, &keys, "").await? {
            stored.insert(text(&r, 0)?, text(&r, 1)?);
        }
        let none = Vec::new();
        // Newer contributions committed since the fold read them bring the customer back with
        // their marks, and that fold writes; or the profile is already this one.
        let write: Vec<&&ProfileWrite> = order
            .iter()
            .filter(|w| {
                let c = w.profile.customer.as_str();
                contributions_hash(now.get(c).unwrap_or(&none)) == w.folded
                    && stored.get(c).map(String::as_str) != Some(w.input_hash.as_str())
            })
            .collect();
        let upsert = match self.dialect {
            Dialect::Sqlite => {
                "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) \
                 VALUES __ ON CONFLICT (tenant, customer) DO UPDATE SET profile = excluded.profile, \
                 input_hash = excluded.input_hash, updated_at = excluded.updated_at"
            }
            Dialect::MySql => {
                "INSERT INTO huixi_customers (tenant, customer, profile, input_hash, updated_at) \
                 VALUES __ ON DUPLICATE KEY UPDATE profile = VALUES(profile), \
                 input_hash = VALUES(input_hash), updated_at = VALUES(updated_at)"
            }
        };
        let at = now_ms();
        let profiles = write
            .iter()
            .map(|w| {
                vec![
                    Value::from(tenant),
                    Value::from(w.profile.customer.as_str()),
                    Value::Text(serde_json::to_string(&w.profile).expect("profiles serialize")),
                    Value::from(w.input_hash.as_str()),
                    Value::Int(at),
                ]
            })
            .collect();
        insert_rows(&mut tx, upsert, profiles).await?;
        let written: Vec<&str> = write.iter().map(|w| w.profile.customer.as_str()).collect();
        delete_in(
            &mut tx,
            "huixi_tag_suggestions",
            "customer",
            tenant,
            &written,
            None,
        )
        .await?;
        let tags = write
            .iter()
            .flat_map(|w| {
                w.profile.tags.iter().map(|t| {
                    vec![
                        Value::from(tenant),
                        Value::from(w.profile.customer.as_str()),
                        Value::from(t.group.as_str()),
                        Value::from(t.tag.as_str()),
                        Value::OptText(t.tag_id.clone()),
                        Value::Real(t.confidence),
                        Value::from(t.reason.as_str()),
                        Value::Text(serde_json::to_string(&t.evidence).expect("strings serialize")),
                        Value::Int(at),
                    ]
                })
            })
            .collect();
        insert_rows(
            &mut tx,
            "INSERT INTO huixi_tag_suggestions (tenant, customer, tag_group, tag, tag_id, confidence, \
             reason, evidence, updated_at)",
            tags,
        )
        .await?;
        if super::webhooks::hooked(&mut tx, tenant).await? {
            let events = write
                .iter()
                .map(|w| {
                    let payload = serde_json::json!({"tenant": tenant, "customer": w.profile});
                    ("customer.updated", payload)
                })
                .collect();
            super::webhooks::insert_events(&mut tx, tenant, events).await?;
        }
        clear_marks(&mut tx, marks).await?;
        // Rows created only to be locked are rolled back with the transaction when nothing is
        // written; written ones replace them.
        if write.is_empty() {
            tx.rollback().await?;
            self.clear_stale(marks).await?;
        } else {
            // A row created only to be locked, whose profile is not written this time, would be
            // left empty: remove it (a committed row always has its hash).
            let empty: Vec<&str> = keys
                .iter()
                .copied()
                .filter(|k| !written.contains(k))
                .filter(|k| stored.get(*k).is_some_and(String::is_empty))
                .collect();
            delete_in(&mut tx, "huixi_customers", "customer", tenant, &empty, None).await?;
            tx.commit().await?;
        }
        let written: BTreeSet<&str> = written.into_iter().collect();
        Ok(writes
            .iter()
            .map(|w| written.contains(w.profile.customer.as_str()))
            .collect())
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

/// What [`Store::customer_inputs`] reads for one customer.
#[derive(Debug, Default)]
pub struct CustomerInput {
    pub contributions: Vec<Contribution>,
    pub shared: Vec<IdentifierRow>,
    pub stored: Option<(CustomerProfile, String)>,
}

/// A profile to write, with the hash of the contributions it was folded from and its input hash.
#[derive(Debug, Clone)]
pub struct ProfileWrite {
    pub profile: CustomerProfile,
    pub folded: String,
    pub input_hash: String,
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

/// An identifier row of `customer, kind, value_hash, masked, session_id, msgid, staff`.
fn identifier_row(r: &sqlx::any::AnyRow) -> Result<IdentifierRow, StoreError> {
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
}

/// What a profile is folded from, as a hash: the contributions in their stored order.
pub fn contributions_hash(contributions: &[Contribution]) -> String {
    let json: Vec<String> = contributions
        .iter()
        .map(|c| serde_json::to_string(c).expect("contributions serialize"))
        .collect();
    hash_parts(json.iter().map(String::as_str))
}

fn contribution(
    r: &sqlx::any::AnyRow,
    column: usize,
    customer: &str,
) -> Result<Contribution, StoreError> {
    serde_json::from_str(&text(r, column)?)
        .map_err(|e| StoreError::Corrupt(format!("contribution of {customer}: {e}")))
}
