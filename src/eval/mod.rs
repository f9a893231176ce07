//! `huixi eval`: runs labelled conversations through variants of the analysis (offline analysers,
//! models, prompts, temperatures) and reports how each does, side by side, with a regression gate
//! against a saved report for CI.
//!
//! `suite` loads suites and datasets, `run` produces outcomes, `score` turns them into metrics,
//! `report` compares and gates, `html` renders the file a person opens.

pub mod html;
pub mod report;
pub mod run;
pub mod score;
pub mod suite;

use report::{Report, VariantReport};
use run::{Analysers, ModelEndpoint};
use suite::{Case, Suite};

/// Runs the chosen variants (all when `only` is empty), or re-scores a recorded report.
pub async fn evaluate(
    suite: &Suite,
    cases: &[Case],
    only: &[String],
    local: &Analysers<'_>,
    endpoint: &ModelEndpoint,
    replay: Option<&Report>,
) -> anyhow::Result<Report> {
    for name in only {
        if !suite.variants.iter().any(|v| &v.name == name) {
            let known: Vec<&str> = suite.variants.iter().map(|v| v.name.as_str()).collect();
            anyhow::bail!(
                "suite {} has no variant {name:?} (variants: {})",
                suite.name,
                known.join(", ")
            );
        }
    }
    let mut variants = Vec::new();
    for v in &suite.variants {
        if !only.is_empty() && !only.contains(&v.name) {
            continue;
        }
        // A suite lists its model variants beside the offline one; without an endpoint (and unless
        // asked for by name) they are skipped, so the suite still runs offline.
        if replay.is_none()
            && v.kind == suite::VariantKind::Llm
            && endpoint.base_url.is_none()
            && only.is_empty()
        {
            eprintln!(
                "note: variant {:?} skipped: it calls a model and no --llm-base-url is set",
                v.name
            );
            continue;
        }
        let outcomes = match replay {
            Some(recorded) => {
                let Some(r) = recorded.variants.iter().find(|r| r.variant.name == v.name) else {
                    anyhow::bail!("the recorded report has no variant {:?}", v.name);
                };
                // Recorded outcomes are matched to cases by id, so an edited dataset is re-scored right.
                cases
                    .iter()
                    .map(|c| {
                        r.outcomes
                            .iter()
                            .find(|o| o.case == c.id)
                            .cloned()
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "the recorded report has no outcome for case {:?}",
                                    c.id
                                )
                            })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?
            }
            None => run::run_variant(suite, v, cases, local, endpoint).await?,
        };
        variants.push(VariantReport {
            variant: v.clone(),
            scores: score::score(&suite.agents, cases, &outcomes),
            outcomes,
        });
    }
    Ok(Report {
        suite: suite.name.clone(),
        description: suite.description.clone(),
        agents: suite.agents.clone(),
        cases: cases.len(),
        variants,
    })
}
