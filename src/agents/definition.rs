//! Agent definitions as data: `agents/NAME.toml` names the prompt template (in `prompts/`), the output
//! schema, model, temperature, token budget and retrieval of each agent. The shipped ones are embedded;
//! `--agents-dir`/`--prompts-dir` point at edited copies, and `<agents-dir>/tenants/<tenant>/NAME.toml`
//! overrides any field (and merges `vars`) for one tenant, all without a rebuild.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The agents huixi ships, in the order results are reported.
pub const BUILTIN: &[&str] = &[
    "emotion",
    "staff_score",
    "keywords",
    "competitors",
    "opportunity",
    "summary",
    "opportunity_profile",
];

const EMBEDDED: &[(&str, &str)] = &[
    (
        "agents/emotion.toml",
        include_str!("../../agents/emotion.toml"),
    ),
    (
        "agents/emotion.schema.json",
        include_str!("../../agents/emotion.schema.json"),
    ),
    (
        "agents/staff_score.toml",
        include_str!("../../agents/staff_score.toml"),
    ),
    (
        "agents/staff_score.schema.json",
        include_str!("../../agents/staff_score.schema.json"),
    ),
    (
        "agents/keywords.toml",
        include_str!("../../agents/keywords.toml"),
    ),
    (
        "agents/keywords.schema.json",
        include_str!("../../agents/keywords.schema.json"),
    ),
    (
        "agents/competitors.toml",
        include_str!("../../agents/competitors.toml"),
    ),
    (
        "agents/competitors.schema.json",
        include_str!("../../agents/competitors.schema.json"),
    ),
    (
        "agents/opportunity.toml",
        include_str!("../../agents/opportunity.toml"),
    ),
    (
        "agents/opportunity.schema.json",
        include_str!("../../agents/opportunity.schema.json"),
    ),
    (
        "agents/summary.toml",
        include_str!("../../agents/summary.toml"),
    ),
    (
        "agents/summary.schema.json",
        include_str!("../../agents/summary.schema.json"),
    ),
    (
        "agents/opportunity_profile.toml",
        include_str!("../../agents/opportunity_profile.toml"),
    ),
    (
        "agents/opportunity_profile.schema.json",
        include_str!("../../agents/opportunity_profile.schema.json"),
    ),
    (
        "prompts/opportunity_profile.hbs",
        include_str!("../../prompts/opportunity_profile.hbs"),
    ),
    (
        "prompts/system.hbs",
        include_str!("../../prompts/system.hbs"),
    ),
    (
        "prompts/emotion.hbs",
        include_str!("../../prompts/emotion.hbs"),
    ),
    (
        "prompts/staff_score.hbs",
        include_str!("../../prompts/staff_score.hbs"),
    ),
    (
        "prompts/keywords.hbs",
        include_str!("../../prompts/keywords.hbs"),
    ),
    (
        "prompts/competitors.hbs",
        include_str!("../../prompts/competitors.hbs"),
    ),
    (
        "prompts/opportunity.hbs",
        include_str!("../../prompts/opportunity.hbs"),
    ),
    (
        "prompts/summary.hbs",
        include_str!("../../prompts/summary.hbs"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
}

fn invalid(file: &str, message: impl Into<String>) -> DefinitionError {
    DefinitionError::Invalid {
        file: file.to_string(),
        message: message.into(),
    }
}

/// What an agent file says; every field but `name` may be left to a default or the tenant. Also the
/// body of a tenant's override (`PUT /v1/agents/{name}`), where every field may be left out.
#[derive(Debug, Clone, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AgentOverride)]
pub struct AgentFile {
    name: Option<String>,
    version: Option<u32>,
    description: Option<String>,
    prompt: Option<String>,
    schema: Option<String>,
    model: Option<String>,
    temperature: Option<f32>,
    max_output_tokens: Option<u32>,
    context_tokens: Option<usize>,
    retrieval: Option<Retrieval>,
    scope: Option<Scope>,
    #[serde(default)]
    #[schema(value_type = Object)]
    vars: BTreeMap<String, toml::Value>,
    /// `false`: the agent is not asked (its part of the result is the offline reading).
    enabled: Option<bool>,
    /// The instructions template itself, instead of a file under `prompts/`: how a tenant's prompt
    /// arrives through the API, where there is no file to name.
    prompt_template: Option<String>,
    /// The output schema itself, instead of a file under `agents/`.
    #[schema(value_type = Option<Object>)]
    output_schema: Option<serde_json::Value>,
}

/// What an agent reads: one session (the default), or one customer across their sessions.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    #[default]
    Session,
    Customer,
}

#[derive(Debug, Clone, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retrieval {
    pub enabled: bool,
    pub top_k: usize,
}

#[derive(Debug, Clone)]
pub struct AgentDef {
    pub name: String,
    pub version: u32,
    pub description: String,
    /// The instructions template's source (`prompts/<prompt>`).
    pub template: String,
    pub template_file: String,
    /// The full JSON Schema: every answer is validated against it.
    pub schema: serde_json::Value,
    /// `None`: the endpoint's default model.
    pub model: Option<String>,
    pub temperature: f32,
    pub max_output_tokens: u32,
    pub context_tokens: usize,
    pub retrieval: Retrieval,
    pub scope: Scope,
    /// Prompt variables (tenant rubric, industry, …), as JSON for the template.
    pub vars: serde_json::Map<String, serde_json::Value>,
}

/// Where definition files come from: a directory on disk, else what is embedded.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub agents_dir: Option<PathBuf>,
    pub prompts_dir: Option<PathBuf>,
}

impl Sources {
    /// Reads `agents/NAME` or `prompts/NAME` from the directory, falling back to the embedded copy.
    fn read(&self, kind: &str, name: &str) -> Result<(String, String), DefinitionError> {
        let dir = match kind {
            "agents" => &self.agents_dir,
            _ => &self.prompts_dir,
        };
        if let Some(dir) = dir {
            let path = dir.join(name);
            if path.exists() {
                let label = path.display().to_string();
                return std::fs::read_to_string(&path)
                    .map(|text| (label.clone(), text))
                    .map_err(|source| DefinitionError::Io {
                        file: label,
                        source,
                    });
            }
        }
        let key = format!("{kind}/{name}");
        EMBEDDED
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(k, text)| (k.to_string(), text.to_string()))
            .ok_or_else(|| invalid(&key, "no such file (not on disk, not shipped)"))
    }

    pub fn agent_names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
        if let Some(dir) = &self.agents_dir {
            if let Ok(entries) = std::fs::read_dir(dir) {
                let mut extra: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().to_string();
                        name.strip_suffix(".toml").map(str::to_string)
                    })
                    .filter(|n| !names.contains(n))
                    .collect();
                extra.sort();
                names.extend(extra);
            }
        }
        names
    }
}

/// Every agent of one tenant, plus the system frame they share.
#[derive(Debug, Clone)]
pub struct AgentSet {
    pub agents: Vec<AgentDef>,
    pub frame: String,
    fingerprint: String,
}

impl AgentSet {
    pub fn load(sources: &Sources, tenant: &str) -> Result<AgentSet, DefinitionError> {
        AgentSet::load_for(sources, tenant, &[])
    }

    /// The tenant's agents: the shipped (or `--agents-dir`) definitions, the tenant's override files,
    /// then `overrides` (agent name, JSON with the fields of `agents/NAME.toml`) as the tenant stored
    /// them, each field of an override replacing the one under it.
    pub fn load_for(
        sources: &Sources,
        tenant: &str,
        overrides: &[(String, String)],
    ) -> Result<AgentSet, DefinitionError> {
        let names = sources.agent_names();
        let mut stored = BTreeMap::new();
        for (name, json) in overrides {
            let label = format!("override of agent {name}");
            if !names.contains(name) {
                return Err(invalid(&label, format!("no agent {name:?} to override")));
            }
            let over = parse_override(&label, json)?;
            stored.insert(name.as_str(), (label, json, over));
        }
        let mut hash = Sha256::new();
        let (_, frame) = sources.read("prompts", "system.hbs")?;
        hash.update(frame.as_bytes());
        let mut agents = Vec::new();
        for name in names {
            let (file, text) = sources.read("agents", &format!("{name}.toml"))?;
            let mut def: AgentFile =
                toml::from_str(&text).map_err(|e| invalid(&file, e.to_string()))?;
            hash.update(text.as_bytes());
            if let Some(dir) = &sources.agents_dir {
                let path = dir
                    .join("tenants")
                    .join(tenant)
                    .join(format!("{name}.toml"));
                if path.exists() {
                    let label = path.display().to_string();
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| DefinitionError::Io {
                            file: label.clone(),
                            source,
                        })?;
                    let over: AgentFile =
                        toml::from_str(&text).map_err(|e| invalid(&label, e.to_string()))?;
                    hash.update(text.as_bytes());
                    def = merge(def, over);
                }
            }
            let mut file = file;
            if let Some((label, json, over)) = stored.remove(name.as_str()) {
                hash.update(json.as_bytes());
                def = merge(def, over.clone());
                file = label.clone();
            }
            if def.enabled == Some(false) {
                continue;
            }
            let agent = resolve(sources, &file, &name, def, &mut hash)?;
            agents.push(agent);
        }
        let fingerprint = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(AgentSet {
            agents,
            frame,
            fingerprint,
        })
    }

    /// Changes whenever any definition, schema or template in effect for the tenant changes.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&AgentDef> {
        self.agents.iter().find(|a| a.name == name)
    }
}

fn merge(base: AgentFile, over: AgentFile) -> AgentFile {
    let (names_prompt, names_schema) = (over.prompt.is_some(), over.schema.is_some());
    let mut vars = base.vars;
    vars.extend(over.vars);
    AgentFile {
        name: base.name,
        version: over.version.or(base.version),
        description: over.description.or(base.description),
        prompt: over.prompt.or(base.prompt),
        schema: over.schema.or(base.schema),
        model: over.model.or(base.model),
        temperature: over.temperature.or(base.temperature),
        max_output_tokens: over.max_output_tokens.or(base.max_output_tokens),
        context_tokens: over.context_tokens.or(base.context_tokens),
        retrieval: over.retrieval.or(base.retrieval),
        scope: over.scope.or(base.scope),
        vars,
        enabled: over.enabled.or(base.enabled),
        // An inline template or schema replaces the file it overrides, and a named file the inline one.
        prompt_template: if names_prompt {
            over.prompt_template
        } else {
            over.prompt_template.or(base.prompt_template)
        },
        output_schema: if names_schema {
            over.output_schema
        } else {
            over.output_schema.or(base.output_schema)
        },
    }
}

/// An override as stored or uploaded: the fields of an agent file, as JSON. Its `name`, when given,
/// must be the agent's.
fn parse_override(label: &str, json: &str) -> Result<AgentFile, DefinitionError> {
    serde_json::from_str(json).map_err(|e| invalid(label, e.to_string()))
}

fn resolve(
    sources: &Sources,
    file: &str,
    name: &str,
    def: AgentFile,
    hash: &mut Sha256,
) -> Result<AgentDef, DefinitionError> {
    if def.name.as_deref() != Some(name) {
        return Err(invalid(
            file,
            format!("field `name` must be {name:?}, the file's name"),
        ));
    }
    let need = |field: &str, v: Option<String>| {
        v.ok_or_else(|| invalid(file, format!("missing field `{field}`")))
    };
    let (template_file, template) = match def.prompt_template {
        Some(t) => (format!("{file}: field `prompt_template`"), t),
        None => sources.read("prompts", &need("prompt", def.prompt)?)?,
    };
    let (schema_file, schema_text) = match def.output_schema {
        Some(s) => (format!("{file}: field `output_schema`"), s.to_string()),
        None => sources.read("agents", &need("schema", def.schema)?)?,
    };
    hash.update(template.as_bytes());
    hash.update(schema_text.as_bytes());
    let schema: serde_json::Value = serde_json::from_str(&schema_text)
        .map_err(|e| invalid(&schema_file, format!("not JSON: {e}")))?;
    jsonschema::validator_for(&schema)
        .map_err(|e| invalid(&schema_file, format!("not a valid JSON Schema: {e}")))?;
    let temperature = def.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(invalid(file, "field `temperature` must be between 0 and 2"));
    }
    let vars = serde_json::to_value(&def.vars)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    Ok(AgentDef {
        name: name.to_string(),
        version: def.version.unwrap_or(1),
        description: def.description.unwrap_or_default(),
        template,
        template_file,
        schema,
        model: def.model.filter(|m| !m.is_empty()),
        temperature,
        max_output_tokens: def.max_output_tokens.unwrap_or(800),
        context_tokens: def.context_tokens.unwrap_or(32_000),
        retrieval: def.retrieval.unwrap_or(Retrieval {
            enabled: false,
            top_k: 0,
        }),
        scope: def.scope.unwrap_or_default(),
        vars,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_agents_load_with_valid_schemas() {
        let set = AgentSet::load(&Sources::default(), "t").unwrap();
        let names: Vec<&str> = set.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, BUILTIN);
        assert!(set.get("staff_score").unwrap().vars.contains_key("rubric"));
    }

    #[test]
    fn tenant_override_changes_fields_and_merges_vars_without_touching_others() {
        let dir = tempfile::tempdir().unwrap();
        let tenant = dir.path().join("tenants/acme");
        std::fs::create_dir_all(&tenant).unwrap();
        std::fs::write(
            tenant.join("staff_score.toml"),
            "temperature = 0.3\n[vars]\nrubric = \"只看响应速度\"\nindustry = \"教育\"\n",
        )
        .unwrap();
        let sources = Sources {
            agents_dir: Some(dir.path().to_path_buf()),
            prompts_dir: None,
        };
        let acme = AgentSet::load(&sources, "acme").unwrap();
        let other = AgentSet::load(&sources, "other").unwrap();
        let s = acme.get("staff_score").unwrap();
        assert_eq!(s.temperature, 0.3);
        assert_eq!(s.vars["rubric"], "只看响应速度");
        assert_eq!(s.vars["industry"], "教育");
        assert_eq!(other.get("staff_score").unwrap().temperature, 0.0);
        assert_ne!(acme.fingerprint(), other.fingerprint());
    }

    #[test]
    fn a_bad_agent_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("emotion.toml"),
            "name = \"emotion\"\nprompt = \"emotion.hbs\"\nschema = \"emotion.schema.json\"\ntemprature = 0.5\n",
        )
        .unwrap();
        let err = AgentSet::load(
            &Sources {
                agents_dir: Some(dir.path().to_path_buf()),
                prompts_dir: None,
            },
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("emotion.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("temprature"), "{err}");
    }
}
