//! The answer cache: moka in memory in front of the store's table. The key covers everything that
//! shapes an answer (agent versions, model, temperature, schema and the rendered prompt, which holds the
//! template and the masked conversation), so a hit is exactly a call that would be repeated.

use std::sync::Arc;

use super::ChatRequest;
use crate::digest::hash_parts;
use crate::store::{CachedAnswer, Store, StoreError};

#[derive(Clone)]
pub struct AnswerCache {
    memory: moka::future::Cache<String, Arc<CachedAnswer>>,
    store: Option<Store>,
}

impl AnswerCache {
    pub fn new(store: Option<Store>, capacity: u64) -> AnswerCache {
        AnswerCache {
            memory: moka::future::Cache::new(capacity),
            store,
        }
    }

    pub fn key(agents: &str, req: &ChatRequest) -> String {
        let schema = req.schema.as_ref().map(|(n, s)| format!("{n}:{s}"));
        hash_parts([
            agents,
            &req.model,
            &req.temperature.to_string(),
            &req.max_output_tokens.to_string(),
            schema.as_deref().unwrap_or(""),
            &req.system,
            &req.user,
        ])
    }

    pub async fn get(&self, key: &str) -> Result<Option<Arc<CachedAnswer>>, StoreError> {
        if let Some(hit) = self.memory.get(key).await {
            return Ok(Some(hit));
        }
        let Some(store) = &self.store else {
            return Ok(None);
        };
        match store.cached_answer(key).await? {
            Some(found) => {
                let found = Arc::new(found);
                self.memory.insert(key.to_string(), found.clone()).await;
                Ok(Some(found))
            }
            None => Ok(None),
        }
    }

    pub async fn put(
        &self,
        key: &str,
        agent: &str,
        model: &str,
        answer: CachedAnswer,
    ) -> Result<(), StoreError> {
        if let Some(store) = &self.store {
            store.put_cached_answer(key, agent, model, &answer).await?;
        }
        self.memory.insert(key.to_string(), Arc::new(answer)).await;
        Ok(())
    }
}
