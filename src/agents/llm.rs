//! The model backend: every agent answered by an OpenAI-compatible endpoint, one call per agent or one
//! combined call for all, with answers validated against each agent's JSON Schema, one repair round-trip
//! for an invalid answer, then a recorded failure — never a silent default.
//!
//! Deterministic facts stay deterministic: response times come from the message timestamps, and the
//! compliance penalties of the sensitive engine cap the staff score, so no text in a chat (and no model
//! mistake) can talk a staff member past what the rules caught.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::definition::{AgentDef, AgentSet, Scope};
use super::merge::merge;
use super::prompt::{conversation_lines, user_message, Passage, Renderer, TemplateError};
use super::{
    AgentFailure, CompetitorMention, Emotion, EmotionLabel, EmotionPair, Keyword, Opportunity,
    SessionResult, Signal, StaffScore, Stage, Summary,
};
use crate::archive::{Role, Session};
use crate::llm::{
    chunk_lines, conversation_budget, count_tokens, AnswerCache, ChatRequest, Endpoint,
};
use crate::sensitive::mask_pii;
use crate::store::{CachedAnswer, UsageRow};

/// Price per million tokens, in whatever currency the operator bills in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Prices {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

pub struct LlmAnalysers {
    endpoint: Arc<Endpoint>,
    agents: AgentSet,
    renderer: Renderer,
    validators: BTreeMap<String, jsonschema::Validator>,
    combined: bool,
    cache: AnswerCache,
    prices: Prices,
    /// Sessions the offline analysers read at least this surely keep that reading, unasked.
    triage: Option<f64>,
    fingerprint: String,
}

impl LlmAnalysers {
    /// Requests sent to the endpoint and retries of them, since start.
    pub fn traffic(&self) -> (u64, u64) {
        self.endpoint.counters()
    }
}

mod profile;

/// The name the combined call's schema goes by.
const COMBINED: &str = "huixi_analysis";

impl LlmAnalysers {
    pub fn new(
        endpoint: Arc<Endpoint>,
        agents: AgentSet,
        combined: bool,
        cache: AnswerCache,
        prices: Prices,
    ) -> Result<LlmAnalysers, TemplateError> {
        let renderer = Renderer::new(&agents)?;
        let validators = agents
            .agents
            .iter()
            .map(|a| {
                let v = jsonschema::validator_for(&a.schema).expect("checked when loaded");
                (a.name.clone(), v)
            })
            .collect();
        let fingerprint = format!(
            "llm:{}:{}:{}",
            endpoint.config().model,
            if combined { "combined" } else { "separate" },
            agents.fingerprint()
        );
        Ok(LlmAnalysers {
            endpoint,
            agents,
            renderer,
            validators,
            combined,
            cache,
            prices,
            triage: None,
            fingerprint,
        })
    }

    /// Triage: a session whose offline reading is at least `confidence` sure is not sent to the model
    /// (its offline reading stands); the model's tokens go to the sessions the offline analysers were
    /// unsure of. The threshold is part of the fingerprint, so changing it re-reads what it changes.
    pub fn with_triage(mut self, confidence: Option<f64>) -> LlmAnalysers {
        if let Some(c) = confidence {
            self.fingerprint = format!("{}:triage{c}", self.fingerprint);
        }
        self.triage = confidence;
        self
    }

    /// Whether triage keeps this offline reading rather than asking the model.
    pub fn keeps_offline(&self, offline: &SessionResult) -> bool {
        self.triage.is_some_and(|t| offline.confidence() >= t)
    }

    /// Prompt tokens the session's calls would take (instructions and conversation, counted as for a
    /// server that reports no usage), without calling: what triage saves when it keeps a reading.
    pub fn prompt_tokens(&self, session: &Session) -> u64 {
        let user = user_message(&conversation_lines(&session.messages));
        self.groups()
            .iter()
            .map(|g| {
                let model = self.group_model(g);
                let system = self.renderer.system(g, &[], None).unwrap_or_default();
                (count_tokens(&model, &system) + count_tokens(&model, &user)) as u64
            })
            .sum()
    }

    /// The calls a session takes: one per session agent, or one for all of them when combined.
    fn groups(&self) -> Vec<Vec<&AgentDef>> {
        let session_agents = self
            .agents
            .agents
            .iter()
            .filter(|a| a.scope == Scope::Session);
        if self.combined {
            vec![session_agents.collect()]
        } else {
            session_agents.map(|a| vec![a]).collect()
        }
    }

    /// The model a call goes to: a lone agent's own, else the endpoint's.
    fn group_model(&self, group: &[&AgentDef]) -> String {
        match group {
            [one] => one.model.clone(),
            _ => None,
        }
        .unwrap_or_else(|| self.endpoint.config().model.clone())
    }

    /// Part of every session's input hash: a new prompt, schema, model or mode means a new analysis.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Analyses a session; `offline` supplies the facts computed from timestamps and rules.
    pub async fn analyse(
        &self,
        tenant: &str,
        session: &Session,
        offline: &SessionResult,
        passages: &[Passage],
    ) -> (SessionResult, Vec<UsageRow>) {
        let lines = conversation_lines(&session.messages);
        let groups = self.groups();
        let runs = groups
            .iter()
            .map(|g| self.run_group(tenant, g, &lines, passages));
        let outcomes = futures::future::join_all(runs).await;
        let mut answers: BTreeMap<String, Result<Value, String>> = BTreeMap::new();
        let mut usage = Vec::new();
        for (group, (outcome, rows)) in groups.iter().zip(outcomes) {
            usage.extend(rows);
            match outcome {
                Ok(values) => answers.extend(values.into_iter().map(|(k, v)| (k, Ok(v)))),
                Err(e) => {
                    for a in group {
                        answers.insert(a.name.clone(), Err(e.clone()));
                    }
                }
            }
        }
        for row in &mut usage {
            row.session_id = session.id.clone();
        }
        // What each agent was shown: the passages of the call it was in.
        let shown: BTreeMap<String, HashSet<String>> = groups
            .iter()
            .flat_map(|g| {
                let ids: HashSet<String> = passages[..passages.len().min(top_k(g))]
                    .iter()
                    .map(|p| p.id.clone())
                    .collect();
                g.iter().map(move |a| (a.name.clone(), ids.clone()))
            })
            .collect();
        let mut result = self.assemble(session, offline, answers, &shown);
        // Exactly the passages some agent was shown (each sees at most its own top_k).
        let all = top_k(&self.agents.agents.iter().collect::<Vec<_>>());
        result.knowledge = passages.iter().take(all).map(|p| p.id.clone()).collect();
        (result, usage)
    }

    /// One call unit (an agent, or all agents combined) over every chunk of the conversation.
    async fn run_group(
        &self,
        tenant: &str,
        group: &[&AgentDef],
        lines: &[String],
        passages: &[Passage],
    ) -> (Result<BTreeMap<String, Value>, String>, Vec<UsageRow>) {
        let mut usage = Vec::new();
        let result = self
            .run_group_inner(tenant, group, lines, passages, &mut usage)
            .await;
        (result, usage)
    }

    async fn run_group_inner(
        &self,
        tenant: &str,
        group: &[&AgentDef],
        lines: &[String],
        passages: &[Passage],
        usage: &mut Vec<UsageRow>,
    ) -> Result<BTreeMap<String, Value>, String> {
        let single = group.len() == 1;
        let model = self.group_model(group);
        let temperature = group.iter().map(|a| a.temperature).fold(f32::MAX, f32::min);
        let max_output: u32 = group.iter().map(|a| a.max_output_tokens).sum();
        let context = group
            .iter()
            .map(|a| a.context_tokens)
            .min()
            .unwrap_or(32_000);
        let (schema_name, schema) = if single {
            (group[0].name.clone(), group[0].schema.clone())
        } else {
            (COMBINED.to_string(), combined_schema(group))
        };
        let label = group
            .iter()
            .map(|a| format!("{}@{}", a.name, a.version))
            .collect::<Vec<_>>()
            .join("+");
        let passages = &passages[..passages.len().min(top_k(group))];
        let full_system = self
            .renderer
            .system(group, passages, None)
            .map_err(|e| e.to_string())?;
        let fixed = count_tokens(&model, &full_system) + count_tokens(&model, &schema.to_string());
        let budget = conversation_budget(context, fixed, max_output as usize);
        if budget == 0 {
            return Err(format!(
                "prompt and answer ({fixed} + {max_output} tokens) leave no room for the conversation in a {context}-token context"
            ));
        }
        let chunks = chunk_lines(&model, lines, budget);
        let mut per_chunk: Vec<Value> = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let system = if chunks.len() > 1 {
                self.renderer
                    .system(group, passages, Some((i, chunks.len())))
                    .map_err(|e| e.to_string())?
            } else {
                full_system.clone()
            };
            let req = ChatRequest {
                model: model.clone(),
                temperature,
                max_output_tokens: max_output,
                system,
                user: user_message(chunk),
                schema: Some((schema_name.clone(), strict_subset(&schema))),
            };
            per_chunk.push(self.ask(tenant, &label, group, &req, usage).await?);
        }
        let mut out = BTreeMap::new();
        for a in group {
            let answers: Vec<Value> = per_chunk
                .iter()
                .map(|v| {
                    if single {
                        v.clone()
                    } else {
                        v[&a.name].clone()
                    }
                })
                .collect();
            out.insert(a.name.clone(), merge(&a.name, answers));
        }
        Ok(out)
    }

    /// One request: from the cache, or from the endpoint with one repair round-trip.
    async fn ask(
        &self,
        tenant: &str,
        label: &str,
        group: &[&AgentDef],
        req: &ChatRequest,
        usage: &mut Vec<UsageRow>,
    ) -> Result<Value, String> {
        let key = AnswerCache::key(label, req);
        let row = |prompt, completion, cached, status: &str, error: Option<String>, ms| UsageRow {
            tenant: tenant.to_string(),
            run_id: None,
            session_id: String::new(),
            agent: label.to_string(),
            model: req.model.clone(),
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost: if cached {
                0.0
            } else {
                self.cost(prompt, completion)
            },
            cached,
            status: status.to_string(),
            error,
            latency_ms: ms,
        };
        match self.cache.get(&key).await {
            Ok(Some(hit)) => {
                if let Ok(v) = self.validate(group, &hit.content) {
                    usage.push(row(
                        hit.prompt_tokens,
                        hit.completion_tokens,
                        true,
                        "ok",
                        None,
                        0,
                    ));
                    return Ok(v);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("answer cache unavailable: {e}"),
        }
        let first = match self.endpoint.chat(tenant, req).await {
            Ok(a) => a,
            Err(e) => {
                usage.push(row(0, 0, false, "failed", Some(e.to_string()), 0));
                return Err(e.to_string());
            }
        };
        let mut prompt = first.prompt_tokens;
        let mut completion = first.completion_tokens;
        let mut latency = first.latency.as_millis() as u64;
        let (value, content, status) = match self.validate(group, &first.content) {
            Ok(v) => (v, first.content, "ok"),
            Err(problem) => {
                let repair = ChatRequest {
                    user: format!(
                        "{}\n\n你上一次的回答不符合输出要求：{problem}\n上一次的回答：\n{}\n请只输出修正后的 JSON 对象。",
                        req.user,
                        first.content.chars().take(4000).collect::<String>()
                    ),
                    ..req.clone()
                };
                let second = match self.endpoint.chat(tenant, &repair).await {
                    Ok(a) => a,
                    Err(e) => {
                        usage.push(row(
                            prompt,
                            completion,
                            false,
                            "failed",
                            Some(e.to_string()),
                            latency,
                        ));
                        return Err(e.to_string());
                    }
                };
                prompt += second.prompt_tokens;
                completion += second.completion_tokens;
                latency += second.latency.as_millis() as u64;
                match self.validate(group, &second.content) {
                    Ok(v) => (v, second.content, "repaired"),
                    Err(again) => {
                        let error = format!("invalid answer after one repair: {again}");
                        usage.push(row(
                            prompt,
                            completion,
                            false,
                            "failed",
                            Some(error.clone()),
                            latency,
                        ));
                        return Err(error);
                    }
                }
            }
        };
        usage.push(row(prompt, completion, false, status, None, latency));
        let stored = CachedAnswer {
            content,
            prompt_tokens: prompt,
            completion_tokens: completion,
        };
        if let Err(e) = self.cache.put(&key, label, &req.model, stored).await {
            tracing::warn!("could not cache a model answer: {e}");
        }
        Ok(value)
    }

    fn cost(&self, prompt: u64, completion: u64) -> f64 {
        (prompt as f64 * self.prices.input_per_million
            + completion as f64 * self.prices.output_per_million)
            / 1_000_000.0
    }

    /// Parses an answer (tolerating a Markdown code fence around it) and checks it against the schema.
    fn validate(&self, group: &[&AgentDef], content: &str) -> Result<Value, String> {
        let trimmed = strip_fence(content);
        let value: Value =
            serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON ({e})"))?;
        for a in group {
            let part = if group.len() == 1 {
                &value
            } else {
                value
                    .get(&a.name)
                    .ok_or_else(|| format!("missing the `{}` field", a.name))?
            };
            let errors: Vec<String> = self.validators[&a.name]
                .iter_errors(part)
                .take(3)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            if !errors.is_empty() {
                return Err(format!("{}: {}", a.name, errors.join("; ")));
            }
        }
        Ok(value)
    }

    /// The typed result from the agents' answers. `shown` holds the knowledge-base chunks each agent
    /// was shown, the only ones its findings may cite.
    fn assemble(
        &self,
        session: &Session,
        offline: &SessionResult,
        mut answers: BTreeMap<String, Result<Value, String>>,
        shown: &BTreeMap<String, HashSet<String>>,
    ) -> SessionResult {
        let known: HashSet<&str> = session.messages.iter().map(|m| m.msgid.as_str()).collect();
        // Like msgids: a chunk id the agent was not shown is dropped, not trusted.
        let chunks = |agent: &str, v: &Value| -> Vec<String> {
            let Some(shown) = shown.get(agent) else {
                return Vec::new();
            };
            let mut seen = HashSet::new();
            cited(v, |id| shown.contains(id) && seen.insert(id.to_string()))
        };
        // A model may cite an id that is not in the session; such a citation is dropped, not trusted.
        let ids = |v: &Value| cited(v, |id| known.contains(id));
        let mut failures = Vec::new();
        let mut take = |name: &str| -> Option<Value> {
            match answers.remove(name) {
                Some(Ok(v)) => Some(v),
                Some(Err(error)) => {
                    failures.push(AgentFailure {
                        agent: name.to_string(),
                        error,
                    });
                    None
                }
                None => None,
            }
        };
        let side_count = |role: Role| {
            session
                .messages
                .iter()
                .filter(|m| m.role() == role && m.text.is_some())
                .count()
        };
        let emotion_side = |v: &Value, role: Role| -> Option<Emotion> {
            let label = match v["label"].as_str()? {
                "positive" => EmotionLabel::Positive,
                "negative" => EmotionLabel::Negative,
                _ => EmotionLabel::Neutral,
            };
            Some(Emotion {
                label,
                score: v["score"].as_f64()?,
                messages: side_count(role),
                negative_messages: v["negative_messages"].as_u64().unwrap_or(0) as usize,
                confidence: None,
                evidence: ids(&v["evidence"]),
            })
        };
        let emotion = take("emotion")
            .map(|v| EmotionPair {
                customer: emotion_side(&v["customer"], Role::Customer),
                staff: emotion_side(&v["staff"], Role::Staff),
            })
            .unwrap_or_default();

        let staff_score = take("staff_score").and_then(|v| {
            let rules = offline.staff_score.as_ref()?;
            let f = |k: &str| v["breakdown"][k].as_f64().unwrap_or(0.0);
            // The rules' compliance deductions are a ceiling the model cannot lift.
            let cap = 100.0 - (30.0 - rules.breakdown.compliance);
            let mut notes: Vec<String> = v["notes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(mask_pii)
                .collect();
            let model_score = v["score"].as_f64().unwrap_or(0.0);
            if model_score > cap {
                notes.push(format!(
                    "合规规则扣分后最高{cap}分（模型给出{model_score}分）"
                ));
            }
            let mut evidence = ids(&v["evidence"]);
            for id in &rules.evidence {
                if !evidence.contains(id) {
                    evidence.push(id.clone());
                }
            }
            Some(StaffScore {
                confidence: None,
                score: model_score.min(cap),
                staff: rules.staff.clone(),
                breakdown: super::ScoreBreakdown {
                    responsiveness: f("responsiveness"),
                    politeness: f("politeness"),
                    compliance: f("compliance").min(rules.breakdown.compliance),
                    outcome: f("outcome"),
                },
                first_response_secs: rules.first_response_secs,
                median_response_secs: rules.median_response_secs,
                unanswered: rules.unanswered,
                notes,
                evidence,
                chunks: chunks("staff_score", &v["chunks"]),
            })
        });

        let keywords = take("keywords")
            .map(|v| {
                v["keywords"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| Keyword {
                        confidence: None,
                        word: mask_pii(k["word"].as_str().unwrap_or_default()),
                        weight: k["weight"].as_f64().unwrap_or(0.0),
                        evidence: ids(&k["evidence"]),
                    })
                    .collect()
            })
            .unwrap_or_default();

        let competitors = take("competitors")
            .map(|v| {
                v["competitors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| CompetitorMention {
                        confidence: None,
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        mentions: c["mentions"].as_u64().unwrap_or(0) as usize,
                        by_customer: c["by_customer"].as_u64().unwrap_or(0) as usize,
                        by_staff: c["by_staff"].as_u64().unwrap_or(0) as usize,
                        evidence: ids(&c["evidence"]),
                        chunks: chunks("competitors", &c["chunks"]),
                    })
                    .collect()
            })
            .unwrap_or_default();

        let opportunity = take("opportunity").map(|v| {
            let stage: Stage = serde_json::from_value(v["stage"].clone()).unwrap_or(Stage::None);
            Opportunity {
                detected: v["detected"].as_bool().unwrap_or(false),
                stage,
                stage_label: stage.label().to_string(),
                score: v["score"].as_f64().unwrap_or(0.0),
                signals: v["signals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["msgid"].as_str().is_some_and(|id| known.contains(id)))
                    .map(|s| Signal {
                        kind: s["kind"].as_str().unwrap_or_default().to_string(),
                        text: mask_pii(s["text"].as_str().unwrap_or_default()),
                        msgid: s["msgid"].as_str().unwrap_or_default().to_string(),
                    })
                    .collect(),
                evidence: ids(&v["evidence"]),
                moves: Vec::new(),
                confidence: None,
                chunks: chunks("opportunity", &v["chunks"]),
            }
        });

        let summary = take("summary").map(|v| Summary {
            text: mask_pii(v["text"].as_str().unwrap_or_default()),
            evidence: ids(&v["evidence"]),
        });

        let mut extra = BTreeMap::new();
        for a in &self.agents.agents {
            if !super::definition::BUILTIN.contains(&a.name.as_str()) {
                if let Some(v) = take(&a.name) {
                    extra.insert(a.name.clone(), v);
                }
            }
        }

        SessionResult {
            session: offline.session.clone(),
            kind: offline.kind,
            participants: offline.participants.clone(),
            start: offline.start.clone(),
            end: offline.end.clone(),
            emotion,
            staff_score,
            keywords,
            competitors,
            opportunity,
            summary,
            analyser: format!("llm:{}", self.endpoint.config().model),
            failures,
            extra,
            knowledge: Vec::new(),
            // Read from the rule hits, which the model does not change.
            side_deal: offline.side_deal.clone(),
        }
    }
}

/// The ids in a model's JSON array that `keep` accepts, in the model's order: a citation of something
/// the model was not shown is dropped, not trusted.
fn cited(v: &Value, mut keep: impl FnMut(&str) -> bool) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|id| keep(id))
        .map(str::to_string)
        .collect()
}

/// How many knowledge-base passages a call shows: only agents that declare retrieval see any, and no
/// more than the most any of them asks for.
fn top_k(group: &[&AgentDef]) -> usize {
    group
        .iter()
        .filter(|a| a.retrieval.enabled)
        .map(|a| a.retrieval.top_k)
        .max()
        .unwrap_or(0)
}

/// The schema of a combined call: one field per agent, each holding that agent's own schema.
fn combined_schema(group: &[&AgentDef]) -> Value {
    let properties: serde_json::Map<String, Value> = group
        .iter()
        .map(|a| (a.name.clone(), a.schema.clone()))
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": group.iter().map(|a| a.name.clone()).collect::<Vec<_>>(),
        "properties": properties,
    })
}

/// The schema sent to the endpoint: structure, with the validation keywords OpenAI's strict mode
/// rejects moved into the field's `description` in words ("at least 1"), so that a model obeying
/// the schema it is sent also meets the one huixi checks the answer against (an answer that does
/// not still gets the repair round). Strict mode also wants every property required: an optional
/// one (a finding's `chunks`) is asked for always, and may be left empty.
fn strict_subset(schema: &Value) -> Value {
    const DROP: &[&str] = &[
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
    ];
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !DROP.contains(&k.as_str()))
                .map(|(k, v)| match (k.as_str(), v) {
                    // Property names are names, not keywords: a field called `format` stays.
                    ("properties", Value::Object(props)) => {
                        let props = props
                            .iter()
                            .map(|(name, s)| (name.clone(), strict_subset(s)))
                            .collect();
                        (k.clone(), Value::Object(props))
                    }
                    _ => (k.clone(), strict_subset(v)),
                })
                .collect();
            let said: Vec<String> = DROP
                .iter()
                .filter_map(|k| map.get(*k).map(|v| constraint_in_words(k, v)))
                .collect();
            if !said.is_empty() {
                let before = map.get("description").and_then(Value::as_str).unwrap_or("");
                let sep = if before.is_empty() { "" } else { " " };
                out.insert(
                    "description".into(),
                    Value::String(format!("{before}{sep}({})", said.join("; "))),
                );
            }
            if let (Some(Value::Object(props)), Some(_)) =
                (map.get("properties"), map.get("required"))
            {
                out.insert(
                    "required".into(),
                    props.keys().map(|k| Value::String(k.clone())).collect(),
                );
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(strict_subset).collect()),
        other => other.clone(),
    }
}

/// A validation keyword as a model reads it.
fn constraint_in_words(keyword: &str, value: &Value) -> String {
    let v = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match keyword {
        "minimum" => format!("at least {v}"),
        "maximum" => format!("at most {v}"),
        "exclusiveMinimum" => format!("more than {v}"),
        "exclusiveMaximum" => format!("less than {v}"),
        "multipleOf" => format!("a multiple of {v}"),
        "minLength" => format!("at least {v} characters"),
        "maxLength" => format!("at most {v} characters"),
        "pattern" => format!("matching the regular expression {v}"),
        "format" => format!("in {v} format"),
        "minItems" => format!("at least {v} items"),
        "maxItems" => format!("at most {v} items"),
        other => format!("{other} {v}"),
    }
}

fn strip_fence(content: &str) -> &str {
    let t = content.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .unwrap_or(t);
    t.strip_suffix("```").unwrap_or(t).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_subset_keeps_structure_and_drops_bounds() {
        let s = json!({"type": "object", "properties": {"score": {"type": "number", "minimum": 0, "maximum": 100}},
                       "required": ["score"], "additionalProperties": false});
        let t = strict_subset(&s);
        assert_eq!(
            t["properties"]["score"],
            json!({"type": "number", "description": "(at least 0; at most 100)"})
        );
        // A bound the validator enforces reaches the model in words, beside the field's own text.
        let mentions = json!({"type": "integer", "minimum": 1, "description": "times named"});
        assert_eq!(
            strict_subset(&mentions),
            json!({"type": "integer", "description": "times named (at least 1)"})
        );
        assert_eq!(t["required"], json!(["score"]));
        let named = json!({"type": "object", "properties": {"format": {"type": "string"}},
                           "required": ["format"], "additionalProperties": false});
        assert_eq!(
            strict_subset(&named)["properties"]["format"],
            json!({"type": "string"})
        );
        let optional = json!({"type": "object", "properties": {"a": {"type": "string"}, "chunks": {"type": "array"}},
                              "required": ["a"], "additionalProperties": false});
        assert_eq!(strict_subset(&optional)["required"], json!(["a", "chunks"]));
    }

    #[test]
    fn a_fenced_answer_is_unwrapped() {
        assert_eq!(strip_fence("```json\n{\"a\":1}\n```"), "{\"a\":1}");
        assert_eq!(strip_fence(" {\"a\":1} "), "{\"a\":1}");
    }
}
