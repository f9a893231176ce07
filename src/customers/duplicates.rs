//! 撞单: one customer served by several staff members, who may not know of each other. Two signs:
//! the same external id in one-to-one chats with different staff, and the same phone or name written by
//! different external ids (one person with two WeChat accounts, or a colleague's customer approached again).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Contribution;
use crate::archive::SessionKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Duplicate {
    /// same_customer, same_phone or same_name.
    pub kind: String,
    /// The phone or name, masked (same_phone, same_name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub customers: Vec<String>,
    pub staff: Vec<String>,
    pub sessions: Vec<String>,
    pub evidence: Vec<String>,
    /// Set when the lists above were cut to their first [`PROFILE_LIST`] entries (in a profile):
    /// how many customers the group really has. `GET /v1/duplicates` lists every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_count: Option<usize>,
}

/// Entries of each list a 撞单 keeps inside a customer's profile. A phone written by thousands of
/// customers would otherwise put the whole group in every one of their profiles: quadratic storage.
pub const PROFILE_LIST: usize = 20;

impl Duplicate {
    /// The 撞单 as a profile keeps it: each list cut to its first [`PROFILE_LIST`] entries, and the
    /// group's size when that cut anything.
    pub fn bounded(mut self) -> Duplicate {
        let cut = [&self.customers, &self.staff, &self.sessions, &self.evidence]
            .iter()
            .any(|l| l.len() > PROFILE_LIST);
        if cut {
            self.customer_count = Some(self.customers.len());
            for list in [
                &mut self.customers,
                &mut self.staff,
                &mut self.sessions,
                &mut self.evidence,
            ] {
                list.truncate(PROFILE_LIST);
            }
        }
        self
    }
}

/// A phone or name a customer wrote, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierRow {
    pub customer: String,
    pub kind: String,
    pub hash: String,
    pub masked: String,
    pub session: String,
    pub msgid: String,
    pub staff: Vec<String>,
}

/// The same external id in one-to-one chats with two staff members or more. Group chats do not count:
/// several staff serving one customer in a group is how service groups work.
pub fn same_customer(customer: &str, contributions: &[Contribution]) -> Option<Duplicate> {
    let mut ordered: Vec<&Contribution> = contributions
        .iter()
        .filter(|c| c.kind == SessionKind::Single)
        .collect();
    ordered.sort_by(|a, b| (a.start, &a.session).cmp(&(b.start, &b.session)));
    let mut first_with: BTreeMap<&str, &Contribution> = BTreeMap::new();
    for c in &ordered {
        for s in &c.staff {
            first_with.entry(s.as_str()).or_insert(c);
        }
    }
    if first_with.len() < 2 {
        return None;
    }
    let mut firsts: Vec<&Contribution> = first_with.values().copied().collect();
    firsts.sort_by_key(|c| c.start);
    firsts.dedup_by_key(|c| c.session.as_str());
    Some(Duplicate {
        customer_count: None,
        kind: "same_customer".into(),
        value: None,
        customers: vec![customer.to_string()],
        staff: first_with.keys().map(|s| s.to_string()).collect(),
        sessions: firsts.iter().map(|c| c.session.clone()).collect(),
        evidence: firsts
            .iter()
            .filter_map(|c| c.stage_evidence.first().cloned())
            .collect(),
    })
}

/// Phones and names written by two customers or more; `rows` are those of the values in question.
pub fn shared_identifiers(rows: &[IdentifierRow]) -> Vec<Duplicate> {
    let mut by_value: BTreeMap<(&str, &str), Vec<&IdentifierRow>> = BTreeMap::new();
    for r in rows {
        by_value
            .entry((r.kind.as_str(), r.hash.as_str()))
            .or_default()
            .push(r);
    }
    by_value
        .into_values()
        .filter_map(|rows| {
            let customers: BTreeSet<&str> = rows.iter().map(|r| r.customer.as_str()).collect();
            if customers.len() < 2 {
                return None;
            }
            let staff: BTreeSet<&str> = rows
                .iter()
                .flat_map(|r| r.staff.iter().map(String::as_str))
                .collect();
            let sessions: BTreeSet<&str> = rows.iter().map(|r| r.session.as_str()).collect();
            let mut evidence: Vec<String> = Vec::new();
            for r in &rows {
                if !evidence.contains(&r.msgid) {
                    evidence.push(r.msgid.clone());
                }
            }
            Some(Duplicate {
                customer_count: None,
                kind: format!("same_{}", rows[0].kind),
                value: Some(rows[0].masked.clone()),
                customers: customers.into_iter().map(String::from).collect(),
                staff: staff.into_iter().map(String::from).collect(),
                sessions: sessions.into_iter().map(String::from).collect(),
                evidence,
            })
        })
        .collect()
}
