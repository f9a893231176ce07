//! Dense vectors from an OpenAI-compatible `/embeddings` endpoint, for hybrid search next to BM25.
//! Inputs go in batches (one request per [`BATCH`] texts) through the same client and retry policy as
//! the chat endpoint; every answer is checked to hold one finite vector per input, all of one size.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::types::embeddings::{CreateEmbeddingRequestArgs, EmbeddingInput};
use async_openai::Client;

use crate::llm::{openai_client, LlmConfig};

/// Texts per request: well under the 2048 inputs OpenAI allows, and small enough that one chunk's
/// worth of text (400 tokens) times this stays under the per-request token limits of common servers.
const BATCH: usize = 64;

/// Where the embeddings come from.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub api_key: String,
    pub model: String,
    pub timeout: Duration,
    pub max_retries: u32,
}

pub struct Embedder {
    client: Client<OpenAIConfig>,
    config: EmbedConfig,
}

impl Embedder {
    pub fn new(config: EmbedConfig) -> Result<Embedder, String> {
        let mut llm = LlmConfig::new(&config.base_url, &config.model);
        llm.api_key = config.api_key.clone();
        llm.timeout = config.timeout;
        llm.max_retries = config.max_retries;
        let client = openai_client(&llm, Arc::new(AtomicU64::new(0))).map_err(|e| e.to_string())?;
        Ok(Embedder { client, config })
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// One vector per text, in order. All have the same length, which is the model's dimension.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let vectors = self.embed_batch(batch).await.map_err(|e| {
                format!(
                    "embeddings endpoint {} (model {}): {e}",
                    self.config.base_url, self.config.model
                )
            })?;
            if let (Some(first), Some(v)) = (out.first(), vectors.first()) {
                if first.len() != v.len() {
                    return Err(format!(
                        "embeddings endpoint {} (model {}) returned vectors of {} and of {} dimensions",
                        self.config.base_url,
                        self.config.model,
                        first.len(),
                        v.len()
                    ));
                }
            }
            out.extend(vectors);
        }
        Ok(out)
    }

    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, String> {
        // Servers reject an empty input string; a chunk with no text still needs a vector.
        let input: Vec<String> = batch
            .iter()
            .map(|t| {
                if t.trim().is_empty() {
                    "-".into()
                } else {
                    t.clone()
                }
            })
            .collect();
        let request = CreateEmbeddingRequestArgs::default()
            .model(self.config.model.clone())
            .input(EmbeddingInput::StringArray(input))
            .build()
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .embeddings()
            .create(request)
            .await
            .map_err(|e| e.to_string())?;
        check(batch.len(), response.data)
    }
}

/// The vectors of one answer in input order, or why the answer cannot be used.
fn check(
    inputs: usize,
    mut data: Vec<async_openai::types::embeddings::Embedding>,
) -> Result<Vec<Vec<f32>>, String> {
    if data.len() != inputs {
        return Err(format!("{} vectors for {inputs} inputs", data.len()));
    }
    data.sort_by_key(|e| e.index);
    if data.iter().enumerate().any(|(i, e)| e.index as usize != i) {
        return Err("vector indices are not 0..n".into());
    }
    let dim = data[0].embedding.len();
    if dim == 0 {
        return Err("empty vectors".into());
    }
    if let Some(e) = data.iter().find(|e| e.embedding.len() != dim) {
        return Err(format!(
            "vectors of {dim} and of {} dimensions in one answer",
            e.embedding.len()
        ));
    }
    if data
        .iter()
        .any(|e| e.embedding.iter().any(|x| !x.is_finite()))
    {
        return Err("a vector holds NaN or infinity".into());
    }
    Ok(data.into_iter().map(|e| e.embedding).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_openai::types::embeddings::Embedding;

    fn e(index: u32, v: &[f32]) -> Embedding {
        Embedding {
            index,
            object: "embedding".into(),
            embedding: v.to_vec(),
        }
    }

    #[test]
    fn answers_are_put_in_input_order_and_checked() {
        let v = check(2, vec![e(1, &[0.0, 1.0]), e(0, &[1.0, 0.0])]).unwrap();
        assert_eq!(v, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(check(3, vec![e(0, &[1.0])])
            .unwrap_err()
            .contains("1 vectors for 3"));
        assert!(check(2, vec![e(0, &[1.0]), e(1, &[1.0, 2.0])])
            .unwrap_err()
            .contains("of 1 and of 2"));
        assert!(check(1, vec![e(0, &[f32::NAN])])
            .unwrap_err()
            .contains("NaN"));
        assert!(check(2, vec![e(0, &[1.0]), e(0, &[1.0])])
            .unwrap_err()
            .contains("indices"));
    }
}
