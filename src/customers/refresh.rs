//! Bringing one customer's profile up to date from the store: fold the stored contributions, add 撞单
//! and tag suggestions, let the model refine it when one is configured, and write it back. Nothing is
//! computed or written when the inputs are what the stored profile was made from.

use super::duplicates::{same_customer, shared_identifiers};
use super::{fold, CustomerProfile, TagLibrary};
use crate::agents::llm::LlmAnalysers;
use crate::agents::offline::VERSION;
use crate::digest::hash_parts;
use crate::store::{contributions_hash, Store};

/// What a refresh found.
pub struct Refreshed {
    pub profile: CustomerProfile,
    /// Whether the stored profile changed.
    pub written: bool,
}

/// Brings the customer's profile up to date. `marks` are the stale-customer marks it answers, cleared
/// whatever the outcome: a profile that was already current needs nothing more.
pub async fn refresh(
    store: &Store,
    tenant: &str,
    customer: &str,
    library: Option<&TagLibrary>,
    llm: Option<&LlmAnalysers>,
    marks: &[i64],
) -> anyhow::Result<Option<Refreshed>> {
    let contributions = store.contributions_of(tenant, customer).await?;
    if contributions.is_empty() {
        store.clear_stale(marks).await?;
        return Ok(None);
    }
    let folded = contributions_hash(&contributions);
    let mut duplicates: Vec<_> = same_customer(customer, &contributions)
        .into_iter()
        .collect();
    duplicates.extend(shared_identifiers(
        &store.shared_identifiers(tenant, Some(customer)).await?,
    ));
    // Two keys: what the profile is made from, and the tag library. A new library re-tags every
    // customer without asking the model about any profile again.
    let profile_key = hash_parts([
        folded.as_str(),
        &serde_json::to_string(&duplicates).expect("duplicates serialize"),
        VERSION,
        llm.map_or("offline", |l| l.fingerprint()),
    ]);
    let tags_key = hash_parts([serde_json::to_string(&library)
        .expect("libraries serialize")
        .as_str()]);
    let input_hash = format!("{profile_key}.{tags_key}");
    let stored = store
        .profile(tenant, customer)
        .await?
        .filter(|(_, hash)| hash.starts_with(&profile_key));
    let (mut profile, write_hash) = match stored {
        Some((profile, hash)) if hash == input_hash => {
            store.clear_stale(marks).await?;
            return Ok(Some(Refreshed {
                profile,
                written: false,
            }));
        }
        // Only the library changed: re-tag the stored profile, with no fold and no model call.
        Some((profile, _)) => (profile, input_hash),
        None => {
            let profile = fold(customer, &contributions, duplicates);
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
                        format!("retry:{input_hash}")
                    };
                    (refined, hash)
                }
            }
        }
    };
    profile.tags = library
        .map(|l| l.suggest(&profile, &contributions))
        .unwrap_or_default();
    // Not written when newer contributions were committed meanwhile: their own fold writes.
    let written = store
        .save_profile(tenant, &profile, &folded, &write_hash, marks)
        .await?;
    Ok(Some(Refreshed { profile, written }))
}
