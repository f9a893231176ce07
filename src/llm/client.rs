//! One OpenAI-compatible endpoint: async-openai's client with huixi's retry policy underneath, a circuit
//! breaker around it, and two concurrency limits in front (the endpoint's, and each tenant's share of it,
//! so one tenant's re-analysis backlog cannot take every slot).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, ResponseFormat,
    ResponseFormatJsonSchema,
};
use async_openai::Client;
use tokio::sync::Semaphore;

use super::circuit::{Circuit, Permit};
use super::retry::RetryPolicy;

/// How huixi reaches a model. Every field has a flag and a `HUIXI_LLM_*` variable.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8000/v1` (vLLM), a DeepSeek/Qwen endpoint.
    pub base_url: String,
    pub api_key: String,
    /// Default model for agents that do not name one.
    pub model: String,
    pub timeout: Duration,
    pub max_retries: u32,
    /// Requests in flight to this endpoint at once.
    pub concurrency: usize,
    /// Requests in flight for one tenant at once.
    pub tenant_concurrency: usize,
    /// Whether to ask for `response_format: json_schema` (most OpenAI-compatible servers accept it;
    /// turn it off for one that rejects the field — answers are validated either way).
    pub json_schema: bool,
}

impl LlmConfig {
    pub fn new(base_url: &str, model: &str) -> LlmConfig {
        LlmConfig {
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: String::new(),
            model: model.to_string(),
            timeout: Duration::from_secs(60),
            max_retries: 4,
            concurrency: 8,
            tenant_concurrency: 4,
            json_schema: true,
        }
    }
}

/// A request as the agents see it: system instructions, user content, and the output schema.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub temperature: f32,
    pub max_output_tokens: u32,
    pub system: String,
    pub user: String,
    /// Schema name and JSON Schema of the expected answer.
    pub schema: Option<(String, serde_json::Value)>,
}

#[derive(Debug, Clone)]
pub struct ChatAnswer {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("model endpoint {0} is failing; circuit open, not calling it for now")]
    CircuitOpen(String),
    #[error("model request failed: {0}")]
    Request(String),
    #[error("model answered with no content")]
    Empty,
}

pub struct Endpoint {
    config: LlmConfig,
    client: Client<OpenAIConfig>,
    global: Arc<Semaphore>,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
    circuit: Circuit,
    requests: AtomicU64,
    retries: Arc<AtomicU64>,
}

/// An async-openai client for `config`'s endpoint with huixi's retry policy underneath (429 with
/// `Retry-After`, 5xx and timeouts retried with backoff); `retries` counts the retries. Shared by the
/// chat endpoint and the knowledge base's embeddings.
pub fn openai_client(
    config: &LlmConfig,
    retries: Arc<AtomicU64>,
) -> Result<Client<OpenAIConfig>, LlmError> {
    let http = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| LlmError::Request(e.to_string()))?;
    let service = tower::ServiceBuilder::new()
        .retry(RetryPolicy::new(
            config.max_retries,
            Duration::from_millis(250),
            Duration::from_secs(20),
            retries,
        ))
        .service(ReqwestService::new(http));
    Ok(Client::with_config(
        OpenAIConfig::new()
            .with_api_base(config.base_url.clone())
            .with_api_key(config.api_key.clone()),
    )
    .with_http_service(service))
}

impl Endpoint {
    pub fn new(config: LlmConfig) -> Result<Endpoint, LlmError> {
        let retries = Arc::new(AtomicU64::new(0));
        let client = openai_client(&config, retries.clone())?;
        Ok(Endpoint {
            global: Arc::new(Semaphore::new(config.concurrency.max(1))),
            tenants: Mutex::default(),
            circuit: Circuit::new(5, Duration::from_secs(30)),
            requests: AtomicU64::new(0),
            retries,
            client,
            config,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Requests sent (first tries), and retries of them, since start.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
        )
    }

    fn tenant_slots(&self, tenant: &str) -> Arc<Semaphore> {
        let mut map = self.tenants.lock().expect("tenant slots lock");
        map.entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.tenant_concurrency.max(1))))
            .clone()
    }

    pub async fn chat(&self, tenant: &str, req: &ChatRequest) -> Result<ChatAnswer, LlmError> {
        // Tenant first: a tenant over its share waits without holding an endpoint slot.
        let tenant_slots = self.tenant_slots(tenant);
        let _tenant = tenant_slots
            .acquire()
            .await
            .expect("semaphore never closed");
        let _global = self.global.acquire().await.expect("semaphore never closed");
        let permit = self
            .circuit
            .permit()
            .ok_or_else(|| LlmError::CircuitOpen(self.config.base_url.clone()))?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.send(req).await;
        self.circuit.record(result.is_ok());
        if permit == Permit::Trial {
            tracing::info!(
                ok = result.is_ok(),
                "circuit trial call to the model endpoint"
            );
        }
        result.map(|mut a| {
            a.latency = started.elapsed();
            a
        })
    }

    async fn send(&self, req: &ChatRequest) -> Result<ChatAnswer, LlmError> {
        let err = |e: async_openai::error::OpenAIError| LlmError::Request(e.to_string());
        let messages: Vec<ChatCompletionRequestMessage> = vec![
            ChatCompletionRequestSystemMessage::from(req.system.as_str()).into(),
            ChatCompletionRequestUserMessage::from(req.user.as_str()).into(),
        ];
        let mut args = CreateChatCompletionRequestArgs::default();
        args.model(req.model.clone())
            .messages(messages)
            .temperature(req.temperature)
            .max_completion_tokens(req.max_output_tokens);
        if let (Some((name, schema)), true) = (&req.schema, self.config.json_schema) {
            args.response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: name.clone(),
                    schema: schema.clone(),
                    strict: Some(true),
                },
            });
        }
        let request = args.build().map_err(err)?;
        let response = self.client.chat().create(request).await.map_err(err)?;
        let content = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or(LlmError::Empty)?;
        // Some OpenAI-compatible servers omit `usage`; count with tiktoken then, so the cost ledger
        // never records a paid call as free.
        let (prompt_tokens, completion_tokens) = match response.usage {
            Some(u) => (u.prompt_tokens as u64, u.completion_tokens as u64),
            None => (
                (super::budget::count(&req.model, &req.system)
                    + super::budget::count(&req.model, &req.user)) as u64,
                super::budget::count(&req.model, &content) as u64,
            ),
        };
        Ok(ChatAnswer {
            content,
            prompt_tokens,
            completion_tokens,
            latency: Duration::ZERO,
        })
    }
}
