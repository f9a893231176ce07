//! Runs a suite's cases through one variant and records what came out, so a report can be scored and
//! rendered again later without calling the model (`--replay`).

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::suite::{Case, Suite, Variant, VariantKind};
use crate::agents::llm::{LlmAnalysers, Prices};
use crate::agents::offline::OfflineAnalysers;
use crate::agents::{AgentSet, SessionResult, Sources};
use crate::llm::{AnswerCache, Endpoint, LlmConfig};
use crate::sensitive::{Alert, Engine, RiskRules};

/// What one case produced under one variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub case: String,
    pub result: SessionResult,
    pub alerts: Vec<Alert>,
    pub latency_ms: f64,
    pub prompt_tokens: u64,
    /// Prompt tokens triage saved: the case kept its offline reading (0 when it was asked).
    pub triaged_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    /// Every agent under test gave a schema-valid answer.
    pub schema_valid: bool,
}

/// The model endpoint LLM variants use.
#[derive(Debug, Clone, Default)]
pub struct ModelEndpoint {
    pub base_url: Option<String>,
    pub api_key: String,
    pub model: String,
    pub concurrency: usize,
    pub prices: (f64, f64),
}

pub struct Analysers<'a> {
    pub offline: &'a OfflineAnalysers,
    pub engine: &'a Engine,
}

pub async fn run_variant(
    suite: &Suite,
    variant: &Variant,
    cases: &[Case],
    local: &Analysers<'_>,
    endpoint: &ModelEndpoint,
) -> anyhow::Result<Vec<Outcome>> {
    let llm = match variant.kind {
        VariantKind::Offline => None,
        VariantKind::Llm => Some(Arc::new(llm_for(suite, variant, endpoint)?)),
    };
    let runs = cases.iter().map(|case| {
        let llm = llm.clone();
        async move {
            let started = Instant::now();
            // The same reading of a session as `analyze` and the workers make.
            let (offline, alerts) = crate::analysis::read_session(
                local.engine,
                &RiskRules::default(),
                local.offline,
                &case.session,
            );
            let (result, usage, saved) = match &llm {
                Some(l) if l.keeps_offline(&offline) => {
                    (offline, Vec::new(), l.prompt_tokens(&case.session))
                }
                Some(l) => {
                    let (r, u) = l.analyse("eval", &case.session, &offline, &[]).await;
                    (r, u, 0)
                }
                None => (offline, Vec::new(), 0),
            };
            Outcome {
                case: case.id.clone(),
                schema_valid: result.failures.is_empty(),
                result,
                alerts,
                latency_ms: started.elapsed().as_secs_f64() * 1e3,
                prompt_tokens: usage.iter().map(|u| u.prompt_tokens).sum(),
                triaged_tokens: saved,
                completion_tokens: usage.iter().map(|u| u.completion_tokens).sum(),
                cost: usage.iter().map(|u| u.cost).sum(),
            }
        }
    });
    // In order, several at once: the endpoint's own limits decide how many calls are in flight.
    Ok(futures::stream::iter(runs)
        .buffered(endpoint.concurrency.max(1))
        .collect()
        .await)
}

fn llm_for(
    suite: &Suite,
    variant: &Variant,
    endpoint: &ModelEndpoint,
) -> anyhow::Result<LlmAnalysers> {
    let Some(base_url) = &endpoint.base_url else {
        anyhow::bail!(
            "variant {:?} calls a model: give --llm-base-url (or pick variants with --variant)",
            variant.name
        );
    };
    let model = variant
        .model
        .clone()
        .unwrap_or_else(|| endpoint.model.clone());
    let mut config = LlmConfig::new(base_url, &model);
    config.api_key = endpoint.api_key.clone();
    config.concurrency = endpoint.concurrency.max(1);
    config.tenant_concurrency = endpoint.concurrency.max(1);
    let sources = Sources {
        agents_dir: variant.agents_dir.as_ref().map(|p| suite.resolve(p)),
        prompts_dir: variant.prompts_dir.as_ref().map(|p| suite.resolve(p)),
    };
    let mut agents = AgentSet::load(&sources, "eval")?;
    // `alerts` is the sensitive engine, never a model: it is scored, not asked.
    let asked: Vec<&String> = suite.agents.iter().filter(|a| *a != "alerts").collect();
    for wanted in &asked {
        if !agents.agents.iter().any(|a| &a.name == *wanted) {
            anyhow::bail!("suite {}: no agent {wanted:?}", suite.name);
        }
    }
    agents.agents.retain(|a| asked.contains(&&a.name));
    for a in &mut agents.agents {
        if variant.model.is_some() {
            a.model = None;
        }
        if let Some(t) = variant.temperature {
            a.temperature = t;
        }
    }
    let prices = Prices {
        input_per_million: endpoint.prices.0,
        output_per_million: endpoint.prices.1,
    };
    Ok(LlmAnalysers::new(
        Arc::new(Endpoint::new(config)?),
        agents,
        variant.combined,
        // Memory only: an eval measures the model, so one run never reuses another run's answers.
        AnswerCache::new(None, 10_000),
        prices,
    )?
    .with_triage(variant.triage))
}
