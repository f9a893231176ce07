//! Talking to an OpenAI-compatible model endpoint: the client with retries, circuit breaker and
//! concurrency limits, token budgets, and the answer cache. Agents decide what to ask; this module makes
//! asking safe to do at scale.

mod budget;
mod cache;
mod circuit;
mod client;
mod retry;

pub use budget::{chunk_lines, conversation_budget, count as count_tokens};
pub use cache::AnswerCache;
pub use client::{openai_client, ChatRequest, Endpoint, LlmConfig};
