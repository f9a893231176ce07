//! Bringing customers' profiles up to date from the store: fold the stored contributions, add 撞单
//! and tag suggestions, let the model refine them when one is configured, and write them back. Nothing
//! is computed or written for a customer whose inputs are what the stored profile was made from.
//!
//! Customers come in groups: one read per table for the group, one transaction to write it, so a
//! batch that made thousands of profiles stale pays a few statements per group, not per customer.

use std::collections::{BTreeMap, BTreeSet};

use super::duplicates::{same_customer, shared_identifiers};
use super::{fold, CustomerProfile, TagLibrary};
use crate::agents::llm::LlmAnalysers;
use crate::agents::offline::VERSION;
use crate::digest::hash_parts;
use crate::store::{contributions_hash, ProfileWrite, Store};

/// Folds that ask the model again about a profile whose refinement failed on unchanged inputs.
const PROFILE_TRIES: u32 = 3;

/// What a refresh found.
pub struct Refreshed {
    pub customer: String,
    pub profile: CustomerProfile,
    /// Whether the stored profile changed.
    pub written: bool,
    /// Every other customer the profile's 撞单 groups hold (the profile keeps only the first of
    /// them): those to refold when this profile changed.
    pub partners: BTreeSet<String>,
}

/// Brings one customer's profile up to date; see [`refresh_many`].
pub async fn refresh(
    store: &Store,
    tenant: &str,
    customer: &str,
    library: Option<&TagLibrary>,
    llm: Option<&LlmAnalysers>,
    marks: &[i64],
) -> anyhow::Result<Option<Refreshed>> {
    let customers = [customer.to_string()];
    let mut out = refresh_many(store, tenant, &customers, library, llm, marks).await?;
    Ok(out.pop())
}

/// Brings these customers' profiles up to date, in the order given (a customer with no contribution
/// has no profile and is left out). `marks` are the stale-customer marks they answer, cleared whatever
/// the outcome: a profile that was already current needs nothing more.
pub async fn refresh_many(
    store: &Store,
    tenant: &str,
    customers: &[String],
    library: Option<&TagLibrary>,
    llm: Option<&LlmAnalysers>,
    marks: &[i64],
) -> anyhow::Result<Vec<Refreshed>> {
    let mut inputs = store.customer_inputs(tenant, customers).await?;
    // Two keys: what the profile is made from, and the tag library. A new library re-tags every
    // customer without asking the model about any profile again.
    let tags_key = hash_parts([serde_json::to_string(&library)
        .expect("libraries serialize")
        .as_str()]);
    let mut out = Vec::new();
    let mut writes = Vec::new();
    for customer in customers {
        let Some(input) = inputs.remove(customer) else {
            continue;
        };
        let contributions = input.contributions;
        let folded = contributions_hash(&contributions);
        let mut duplicates: Vec<_> = same_customer(customer, &contributions)
            .into_iter()
            .collect();
        duplicates.extend(shared_identifiers(&input.shared));
        let partners: BTreeSet<String> = duplicates
            .iter()
            .flat_map(|d| &d.customers)
            .filter(|c| *c != customer)
            .cloned()
            .collect();
        let profile_key = hash_parts([
            folded.as_str(),
            &serde_json::to_string(&duplicates).expect("duplicates serialize"),
            VERSION,
            llm.map_or("offline", |l| l.fingerprint()),
        ]);
        let input_hash = format!("{profile_key}.{tags_key}");
        // A refinement that failed on these very inputs is tried again on a bounded number of folds,
        // then the profile is left as it is (the offline fold) until its inputs change.
        let tries = input
            .stored
            .as_ref()
            .and_then(|(_, hash)| crate::digest::failed_tries(hash, &input_hash))
            .unwrap_or(0);
        if tries >= PROFILE_TRIES {
            if let Some((profile, _)) = input.stored {
                out.push(Refreshed {
                    customer: customer.clone(),
                    profile,
                    written: false,
                    partners,
                });
                continue;
            }
        }
        let stored = input
            .stored
            .filter(|(_, hash)| hash.starts_with(&profile_key));
        let (mut profile, write_hash) = match stored {
            Some((profile, hash)) if hash == input_hash => {
                out.push(Refreshed {
                    customer: customer.clone(),
                    profile,
                    written: false,
                    partners,
                });
                continue;
            }
            // Only the library changed: re-tag the stored profile, with no fold and no model call.
            Some((profile, _)) => (profile, input_hash),
            None => {
                let bounded = duplicates.into_iter().map(|d| d.bounded()).collect();
                let profile = fold(customer, &contributions, bounded);
                match llm {
                    None => (profile, input_hash),
                    Some(llm) => {
                        let mut usage = Vec::new();
                        let (refined, ok) = llm
                            .refine_profile(tenant, profile, &contributions, &mut usage)
                            .await;
                        store.record_usage(&usage).await?;
                        // A failed refinement is stored under a hash no input matches, so the next
                        // analysis of the customer tries again.
                        let hash = if ok {
                            input_hash
                        } else {
                            format!("retry{}:{input_hash}", tries + 1)
                        };
                        (refined, hash)
                    }
                }
            }
        };
        profile.tags = library
            .map(|l| l.suggest(&profile, &contributions))
            .unwrap_or_default();
        writes.push(ProfileWrite {
            profile: profile.clone(),
            folded,
            input_hash: write_hash,
        });
        out.push(Refreshed {
            customer: customer.clone(),
            profile,
            written: false,
            partners,
        });
    }
    // Not written when newer contributions were committed meanwhile: their own fold writes.
    let written = store.save_profiles(tenant, &writes, marks).await?;
    let written: BTreeMap<&str, bool> = writes
        .iter()
        .zip(written)
        .map(|(w, ok)| (w.profile.customer.as_str(), ok))
        .collect();
    for r in &mut out {
        r.written = written.get(r.customer.as_str()).copied().unwrap_or(false);
    }
    Ok(out)
}
