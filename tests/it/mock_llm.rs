//! A small OpenAI-compatible chat-completions server on a random local port, for driving huixi's model
//! path without a model. It answers every agent's schema with a valid answer built from the msgids in
//! the request, records every request body, and can be told to misbehave in the ways real endpoints do.
//!
//! It also serves `/v1/embeddings`: a deterministic stand-in for a model, a hashed bag of characters
//! (see [`embedding`]), so texts that share characters are near even when they share no word.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    Valid,
    /// Invalid JSON for this agent, unless the request is a repair.
    InvalidUntilRepaired(&'static str),
    /// Schema-violating answers for this agent, always.
    AlwaysInvalid(&'static str),
    /// The first request gets 429 with `Retry-After: N`.
    RateLimitFirst(u64),
    /// The first request is answered only after this long.
    SlowFirst(Duration),
    /// Gives full marks when the conversation asks for them, as a naive model might.
    ObeysInjection,
    /// Every request is answered only after this long: a slow model.
    Slow(Duration),
}

pub struct Recorded {
    pub at: Instant,
    pub body: Value,
}

pub struct Mock {
    pub addr: SocketAddr,
    state: Arc<Shared>,
}

struct Shared {
    behaviour: Behaviour,
    requests: Mutex<Vec<Recorded>>,
    /// Bodies of embeddings requests, apart from the chat requests.
    embeddings: Mutex<Vec<Value>>,
}

impl Mock {
    pub async fn start(behaviour: Behaviour) -> Mock {
        let state = Arc::new(Shared {
            behaviour,
            requests: Mutex::default(),
            embeddings: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Mock { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// The inputs of every embeddings request, a list per request.
    pub fn embedding_inputs(&self) -> Vec<Vec<String>> {
        self.state
            .embeddings
            .lock()
            .unwrap()
            .iter()
            .map(embedding_inputs)
            .collect()
    }

    pub fn times(&self) -> Vec<Instant> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.at)
            .collect()
    }
}

pub fn schema_name(body: &Value) -> String {
    body["response_format"]["json_schema"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub fn system_text(body: &Value) -> String {
    body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

pub fn user_text(body: &Value) -> String {
    body["messages"][1]["content"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn chat(
    State(state): State<Arc<Shared>>,
    _headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let first = {
        let mut requests = state.requests.lock().unwrap();
        requests.push(Recorded {
            at: Instant::now(),
            body: body.clone(),
        });
        requests.len() == 1
    };
    match &state.behaviour {
        Behaviour::RateLimitFirst(secs) if first => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                Json(json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}})),
            )
                .into_response();
        }
        Behaviour::SlowFirst(wait) if first => tokio::time::sleep(*wait).await,
        Behaviour::Slow(wait) => tokio::time::sleep(*wait).await,
        _ => {}
    }
    let name = schema_name(&body);
    let user = user_text(&body);
    let repair = user.contains("上一次的回答不符合输出要求");
    let ids: Vec<(String, String)> = user
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["id"].as_str().unwrap_or("").to_string(),
                v["role"].as_str().unwrap_or("").to_string(),
            )
        })
        // The customer-profile agent's first line is the profile, not a message.
        .filter(|(id, _)| !id.is_empty())
        .collect();
    let obey = state.behaviour == Behaviour::ObeysInjection && user.contains("打满分");
    // A prompt carrying this marker gets the opposite emotion: how the eval tests make a worse variant.
    let worse = system_text(&body).contains("EVAL_WORSE");
    let shown = passage_ids(&system_text(&body));
    let answer =
        |agent: &str| -> Value { cite(agent, valid_answer(agent, &ids, obey, worse), &shown) };
    let content = match (&state.behaviour, name.as_str()) {
        (Behaviour::InvalidUntilRepaired(agent), n) if n == *agent && !repair => {
            "{\"label\": oops".to_string()
        }
        (Behaviour::AlwaysInvalid(agent), n) if n == *agent => {
            json!({"unexpected": true}).to_string()
        }
        (_, "huixi_analysis") => {
            let mut all = serde_json::Map::new();
            for agent in [
                "emotion",
                "staff_score",
                "keywords",
                "competitors",
                "opportunity",
                "summary",
            ] {
                all.insert(agent.into(), answer(agent));
            }
            Value::Object(all).to_string()
        }
        (_, n) => answer(n).to_string(),
    };
    let mut reply = json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
    });
    // A model named `…-no-usage` behaves like the servers that omit `usage`: huixi must count itself.
    if !body["model"].as_str().unwrap_or("").ends_with("-no-usage") {
        let prompt_tokens = body.to_string().chars().count() as u64 / 2;
        let completion_tokens = content.chars().count() as u64 / 2;
        reply["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    }
    Json(reply).into_response()
}

/// The vector size a model name asks for: `…-96` gives 96, anything else 64.
pub fn embedding_dim(model: &str) -> usize {
    model
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

/// A hashed bag of characters: each letter, digit or CJK character adds 1 to the component its hash
/// (FNV-1a of model and character) picks; the vector is normalized. Deterministic, and another model
/// name gives other vectors, as a real change of model would.
pub fn embedding(model: &str, text: &str) -> Vec<f32> {
    let dim = embedding_dim(model);
    let mut v = vec![0f32; dim];
    for c in text.chars().filter(|c| c.is_alphanumeric()) {
        let mut h: u64 = 0xcbf29ce484222325;
        for b in model
            .bytes()
            .chain([0])
            .chain(c.to_lowercase().to_string().bytes())
        {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
        v[(h % dim as u64) as usize] += 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// An embeddings request's `input`: one text or a list of them.
fn embedding_inputs(body: &Value) -> Vec<String> {
    match &body["input"] {
        Value::String(s) => vec![s.clone()],
        v => v
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or("").to_string())
            .collect(),
    }
}

async fn embeddings(State(state): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    state.embeddings.lock().unwrap().push(body.clone());
    let model = body["model"].as_str().unwrap_or("");
    let inputs = embedding_inputs(&body);
    if inputs.is_empty() || inputs.iter().any(|i| i.is_empty()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "input must be non-empty", "type": "invalid_request_error", "param": "input", "code": null}})),
        )
            .into_response();
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embedding(model, t)}))
        .collect();
    let tokens: usize = inputs.iter().map(|t| t.chars().count()).sum();
    Json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

/// A chunk id no prompt ever showed: what a model that makes citations up would write.
pub const INVENTED_CHUNK: &str = "kb_00000000deadbeef";

/// The knowledge-base passage ids in a system prompt (`[kb_…]` at the start of a line).
pub fn passage_ids(system: &str) -> Vec<String> {
    system
        .lines()
        .filter_map(|l| l.strip_prefix('[')?.split_once(']'))
        .map(|(id, _)| id.to_string())
        .filter(|id| id.starts_with("kb_"))
        .collect()
}

/// The agents that may cite chunks cite the first passage they were shown and one made up.
fn cite(agent: &str, mut answer: Value, shown: &[String]) -> Value {
    let Some(first) = shown.first() else {
        return answer;
    };
    let chunks = json!([first, INVENTED_CHUNK]);
    match agent {
        "staff_score" | "opportunity" => answer["chunks"] = chunks,
        "competitors" => {
            for c in answer["competitors"].as_array_mut().into_iter().flatten() {
                c["chunks"] = chunks.clone();
            }
        }
        _ => {}
    }
    answer
}

fn valid_answer(agent: &str, ids: &[(String, String)], obey: bool, worse: bool) -> Value {
    let first_of = |role: &str| {
        ids.iter()
            .find(|(_, r)| r == role)
            .map(|(id, _)| id.clone())
    };
    let any = ids.first().map(|(id, _)| id.clone()).unwrap_or_default();
    let side = |role: &str, label: &str, score: f64| match first_of(role) {
        Some(id) => json!({"label": label, "score": score, "evidence": [id]}),
        None => Value::Null,
    };
    match agent {
        "emotion" if worse => {
            json!({"customer": side("customer", "positive", 0.5), "staff": side("staff", "neutral", 0.1)})
        }
        "emotion" => {
            json!({"customer": side("customer", "negative", -0.5), "staff": side("staff", "neutral", 0.1)})
        }
        "staff_score" if obey => json!({
            "score": 100, "breakdown": {"responsiveness": 30, "politeness": 20, "compliance": 30, "outcome": 20},
            "notes": ["客户要求满分"], "evidence": [any]}),
        "staff_score" => json!({
            "score": 72, "breakdown": {"responsiveness": 24, "politeness": 14, "compliance": 20, "outcome": 14},
            "notes": ["回复较慢"], "evidence": [any]}),
        "keywords" => {
            json!({"keywords": [{"word": "模型关键词", "weight": 0.9, "evidence": [any]}]})
        }
        "competitors" => {
            json!({"competitors": [{"name": "模型竞品", "mentions": 1, "by_customer": 1, "by_staff": 0, "evidence": [any]}]})
        }
        "opportunity" => json!({"detected": true, "stage": "quoted", "score": 0.7,
            "signals": [{"kind": "price_ask", "text": "多少钱", "msgid": any}], "evidence": [any, "not-a-real-msgid"]}),
        "summary" => json!({"text": "模型摘要：客户咨询价格。", "evidence": [any]}),
        "opportunity_profile" => {
            let last = ids.last().map(|(id, _)| id.clone()).unwrap_or_default();
            json!({"stage": "negotiating", "stage_evidence": [last, "invented-msgid"],
                "needs": [{"text": "模型需求：五十个账号", "msgid": any}, {"text": "编造", "msgid": "invented-msgid"}],
                "objections": [],
                "next_best_action": {"action": "模型建议：约客户面谈敲定折扣", "reason": "客户已进入议价",
                    "evidence": [last, "invented-msgid"]}})
        }
        _ => json!({}),
    }
}
