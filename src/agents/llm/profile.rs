//! The customer-scope agent (`agents/opportunity_profile`): refines a profile folded offline, reading the
//! fold (a summary of every earlier session) and only what the customer said in their latest sessions,
//! so a long customer history costs no more than a short one. Same endpoint, budget, cache, schema
//! validation and repair as the session agents; its ids are checked against what it was shown.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Value};

use super::LlmAnalysers;
use crate::agents::definition::{AgentDef, Scope};
use crate::agents::offline::china_time;
use crate::agents::Stage;
use crate::customers::{Contribution, CustomerProfile, Fact, NextAction, StageMove};
use crate::llm::{chunk_lines, conversation_budget, count_tokens, ChatRequest};
use crate::sensitive::mask_pii;
use crate::store::UsageRow;

/// How many of the latest sessions the model reads in full; earlier ones reach it through the fold.
const LATEST_SESSIONS: usize = 2;

impl LlmAnalysers {
    /// Whether a customer-scope agent is defined (it can be removed from `--agents-dir`).
    fn profile_agent(&self) -> Option<&AgentDef> {
        self.agents
            .agents
            .iter()
            .find(|a| a.scope == Scope::Customer)
    }

    /// The profile with the model's stage, needs, objections and next action where they are supported
    /// by messages it was shown. Returns the profile unchanged, and false, when the model failed.
    pub async fn refine_profile(
        &self,
        tenant: &str,
        mut profile: CustomerProfile,
        contributions: &[Contribution],
        usage: &mut Vec<UsageRow>,
    ) -> (CustomerProfile, bool) {
        let Some(agent) = self.profile_agent() else {
            return (profile, true);
        };
        let latest: Vec<&Contribution> = contributions
            .iter()
            .rev()
            .take(LATEST_SESSIONS)
            .rev()
            .collect();
        let mut lines = vec![json!({"profile": summary(&profile)})
            .to_string()
            .replace('<', "\\u003c")];
        let mut at: BTreeMap<String, i64> = BTreeMap::new();
        for c in &latest {
            for s in &c.said {
                at.insert(s.msgid.clone(), c.start);
                let line = json!({"id": s.msgid, "role": "customer", "time": china_time(c.start),
                    "session": c.session, "text": mask_pii(&s.text)});
                lines.push(line.to_string().replace('<', "\\u003c"));
            }
        }
        // Ids the model may cite: the messages shown and the evidence inside the fold.
        let mut known: HashSet<String> = at.keys().cloned().collect();
        for c in contributions {
            known.extend(c.facts.iter().map(|f| f.msgid.clone()));
            known.extend(c.stage_evidence.iter().cloned());
            for f in &c.facts {
                at.entry(f.msgid.clone()).or_insert(f.at);
            }
        }
        let model = agent
            .model
            .clone()
            .unwrap_or_else(|| self.endpoint.config().model.clone());
        let label = format!("{}@{}", agent.name, agent.version);
        let system = match self.renderer.system(&[agent], &[], None) {
            Ok(s) => s,
            Err(e) => return failed(profile, tenant, &label, &model, e.to_string(), usage),
        };
        let fixed = count_tokens(&model, &system) + count_tokens(&model, &agent.schema.to_string());
        let budget = conversation_budget(
            agent.context_tokens,
            fixed,
            agent.max_output_tokens as usize,
        );
        // The newest lines matter most: when they do not all fit, the oldest are left out.
        let chunks = chunk_lines(
            &model,
            &lines[1..],
            budget.saturating_sub(count_tokens(&model, &lines[0])),
        );
        let mut shown = vec![lines[0].clone()];
        shown.extend(chunks.last().cloned().unwrap_or_default());
        let req = ChatRequest {
            model: model.clone(),
            temperature: agent.temperature,
            max_output_tokens: agent.max_output_tokens,
            system,
            user: crate::agents::prompt::user_message(&shown),
            schema: Some((agent.name.clone(), super::strict_subset(&agent.schema))),
        };
        let mut rows = Vec::new();
        let answer = self.ask(tenant, &label, &[agent], &req, &mut rows).await;
        for r in &mut rows {
            r.session_id = format!("customer:{}", profile.customer);
        }
        usage.extend(rows);
        let v = match answer {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(tenant, customer = %profile.customer, "profile agent failed: {e}");
                return (profile, false);
            }
        };
        let cited = |v: &Value| super::cited(v, |id| known.contains(id));
        let facts = |v: &Value, kind: &str| -> Vec<Fact> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| {
                    let msgid = f["msgid"].as_str().filter(|id| known.contains(*id))?;
                    Some(Fact {
                        kind: kind.to_string(),
                        cue: String::new(),
                        text: mask_pii(f["text"].as_str().unwrap_or_default()),
                        msgid: msgid.to_string(),
                        at: at.get(msgid).copied().unwrap_or_default(),
                    })
                })
                .collect()
        };
        let stage: Option<Stage> = serde_json::from_value(v["stage"].clone()).ok();
        let evidence = cited(&v["stage_evidence"]);
        // A stage change the model cannot support with a message it saw is not taken.
        if let (Some(stage), Some(last)) = (stage, contributions.last()) {
            if stage != profile.stage && !evidence.is_empty() {
                profile.stage_history.push(StageMove {
                    from: profile.stage,
                    to: stage,
                    label: stage.label().to_string(),
                    session: last.session.clone(),
                    at: china_time(last.start),
                    evidence,
                });
                profile.stage = stage;
                profile.stage_label = stage.label().to_string();
            }
        }
        profile.needs = facts(&v["needs"], "need");
        profile.objections = facts(&v["objections"], "objection");
        let next = &v["next_best_action"];
        if let Some(action) = next["action"].as_str().filter(|a| !a.trim().is_empty()) {
            profile.next_best_action = NextAction {
                action: mask_pii(action),
                reason: mask_pii(next["reason"].as_str().unwrap_or_default()),
                evidence: cited(&next["evidence"]),
            };
        }
        profile.analyser = format!("llm:{model}");
        (profile, true)
    }
}

/// What of the fold the model reads: everything but tags (chosen from the library afterwards) and the
/// next action (which it is asked for).
fn summary(p: &CustomerProfile) -> Value {
    json!({
        "stage": p.stage,
        "stage_history": p.stage_history,
        "needs": p.needs.iter().map(|f| json!({"text": f.text, "msgid": f.msgid})).collect::<Vec<_>>(),
        "objections": p.objections.iter().map(|f| json!({"text": f.text, "msgid": f.msgid})).collect::<Vec<_>>(),
        "budget": p.budget.iter().map(|f| json!({"text": f.text, "msgid": f.msgid})).collect::<Vec<_>>(),
        "quantity": p.quantity.iter().map(|f| json!({"text": f.text, "msgid": f.msgid})).collect::<Vec<_>>(),
        "competitors": p.competitors,
        "emotion_trend": p.emotion_trend,
        "sessions": p.sessions,
        "staff": p.staff.len(),
    })
}

fn failed(
    profile: CustomerProfile,
    tenant: &str,
    label: &str,
    model: &str,
    error: String,
    usage: &mut Vec<UsageRow>,
) -> (CustomerProfile, bool) {
    usage.push(UsageRow {
        tenant: tenant.to_string(),
        run_id: None,
        session_id: format!("customer:{}", profile.customer),
        agent: label.to_string(),
        model: model.to_string(),
        prompt_tokens: 0,
        completion_tokens: 0,
        cost: 0.0,
        cached: false,
        status: "failed".into(),
        error: Some(error),
        latency_ms: 0,
    });
    (profile, false)
}
