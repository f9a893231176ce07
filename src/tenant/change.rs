//! Changes to a tenant's configuration, as the API and `huixi tenant` make them: each is checked by
//! building the tenant with it before anything is stored, so the store never holds a configuration
//! that does not build, and a worker never meets one.

use crate::sensitive::{Lexicon, LineError};
use crate::store::StoredTenant;

use super::{SettingsDocument, Tenant, TenantError, Tenants};

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The change is wrong, and says where: the caller's fault (400).
    #[error("{0}")]
    Invalid(String),
    #[error("no agent {0:?}")]
    NoAgent(String),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Tenants {
    /// The stored configuration with one change applied, built: an error if it does not build.
    async fn candidate(
        &self,
        tenant: &str,
        change: impl FnOnce(&mut StoredTenant),
    ) -> Result<Tenant, ChangeError> {
        let mut stored = self.store().stored_tenant(tenant).await?;
        change(&mut stored);
        let built = self.build(tenant, &stored).map_err(|e| match e {
            TenantError::Invalid { message, .. } => ChangeError::Invalid(message),
            other => ChangeError::Tenant(other),
        })?;
        crate::agents::check_templates(&built.agents).map_err(ChangeError::Invalid)?;
        Ok(built)
    }

    /// Replaces the settings document (`PUT /v1/settings`).
    pub async fn put_settings(&self, tenant: &str, body: &[u8]) -> Result<(), ChangeError> {
        let doc = SettingsDocument::parse(body).map_err(|e| ChangeError::Invalid(e.to_string()))?;
        let json = serde_json::to_string(&doc).expect("documents serialize");
        self.candidate(tenant, |s| s.document = Some(json.clone()))
            .await?;
        self.store().put_settings_document(tenant, &json).await?;
        self.forget(tenant).await;
        Ok(())
    }

    /// Replaces the lexicon or the whitelist (`PUT /v1/lexicon`, `/v1/whitelist`), in the file formats.
    /// Lines that do not load are skipped and returned with their line numbers; a lexicon with no
    /// valid entry is refused. Returns the entries accepted and the lines skipped.
    pub async fn put_words(
        &self,
        tenant: &str,
        whitelist: bool,
        text: &str,
    ) -> Result<(usize, Vec<LineError>), ChangeError> {
        let source = if whitelist { "whitelist" } else { "lexicon" };
        let (count, errors) = if whitelist {
            let (words, errors) = Lexicon::parse_whitelist(source, text);
            (words.len(), errors)
        } else {
            let (lex, errors) = Lexicon::parse(source, text);
            if lex.entries.is_empty() {
                let detail: Vec<String> = errors.iter().take(20).map(|e| e.to_string()).collect();
                return Err(ChangeError::Invalid(format!(
                    "the lexicon has no valid entry: {}",
                    detail.join("; ")
                )));
            }
            (lex.entries.len(), errors)
        };
        let stored = self.store().stored_tenant(tenant).await?;
        let (mut lexicon, mut white) = stored.lexicon.unwrap_or_default();
        if whitelist {
            white = text.to_string();
        } else {
            lexicon = text.to_string();
        }
        self.store()
            .put_tenant_lexicon(tenant, &lexicon, &white)
            .await?;
        self.forget(tenant).await;
        Ok((count, errors))
    }

    /// An agent override (`PUT /v1/agents/{name}`): the fields of `agents/NAME.toml`, as JSON.
    pub async fn put_agent(&self, tenant: &str, name: &str, body: &str) -> Result<(), ChangeError> {
        if !self
            .defaults()
            .agents
            .agent_names()
            .iter()
            .any(|n| n == name)
        {
            return Err(ChangeError::NoAgent(name.to_string()));
        }
        let value: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| ChangeError::Invalid(format!("(body): not JSON: {e}")))?;
        if !value.is_object() {
            return Err(ChangeError::Invalid(
                "(body): must be a JSON object with the fields of an agent file".into(),
            ));
        }
        if let Some(n) = value.get("name") {
            if n.as_str() != Some(name) {
                return Err(ChangeError::Invalid(format!(
                    "field `name`: must be {name:?}, the agent's name in the path"
                )));
            }
        }
        let json = value.to_string();
        self.candidate(tenant, |s| {
            s.agents.retain(|(n, _)| n != name);
            s.agents.push((name.to_string(), json.clone()));
        })
        .await?;
        self.store().put_tenant_agent(tenant, name, &json).await?;
        self.forget(tenant).await;
        Ok(())
    }

    /// Removes an override: the shipped agent applies again. False when there was none.
    pub async fn delete_agent(&self, tenant: &str, name: &str) -> Result<bool, ChangeError> {
        let gone = self.store().delete_tenant_agent(tenant, name).await?;
        self.forget(tenant).await;
        Ok(gone)
    }
}
