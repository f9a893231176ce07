//! The tenant's configuration, for the CRM's admin UI (智能体管理 / AI分析设置 / 行业适配): settings,
//! lexicon and whitelist, agent overrides. Every PUT is checked by building the tenant with it
//! before it is stored ([`crate::tenant::change`]); workers everywhere pick it up by its version.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::auth::Tenant;
use super::doc::ErrorBody;
use super::error::ApiError;
use super::routes::utf8;
use super::AppState;
use crate::tenant::document::SettingsDocument;
use crate::tenant::Effective;

/// The settings in effect and what the tenant set itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// The configuration's version: it moves on with every change of any part of it.
    pub version: i64,
    /// Every field decided: the tenant's, the deployment's default under it.
    pub effective: Effective,
    /// What the tenant set itself (`{}` when nothing).
    #[schema(value_type = Object)]
    pub tenant: Value,
    /// What every session's input hash holds of the configuration.
    pub fingerprint: String,
}

/// An agent as it runs for the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    pub name: String,
    /// False when the tenant turned the agent off (then only `name` and `override` are given).
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The template's file under `prompts/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The Handlebars source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<String>,
    /// The JSON Schema every answer is validated against.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<Value>,
    /// Null: the endpoint's default model.
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_tokens: Option<usize>,
    /// `{"enabled", "top_k"}`: knowledge-base passages shown to the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub retrieval: Option<Value>,
    /// Prompt variables (rubric, industry, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub vars: Option<Value>,
    /// The tenant's override as stored, null when none.
    #[serde(rename = "override")]
    #[schema(value_type = Option<Object>)]
    pub overrides: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub version: i64,
    pub items: Vec<AgentView>,
}

/// The tenant's settings
///
/// The settings in effect (the tenant's, the deployment's defaults under them), what the tenant
/// itself set, and the configuration's version.
#[utoipa::path(get, path = "/v1/settings", tag = "settings",
    security(("bearer" = [])),
    responses((status = 200, description = "the settings", body = SettingsView)))]
pub async fn settings(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<SettingsView>, ApiError> {
    let t = state.ctx.tenants.fresh(&tenant).await?;
    let stored = state.ctx.store.stored_tenant(&tenant).await?;
    let own: Value = match &stored.document {
        Some(json) => serde_json::from_str(json).unwrap_or(Value::Null),
        None => json!({}),
    };
    Ok(Json(SettingsView {
        version: t.version,
        fingerprint: t.fingerprint(),
        effective: t.effective.clone(),
        tenant: own,
    }))
}

/// Replace the tenant's settings
///
/// A field left out is the deployment's default. The document is checked by building the tenant
/// with it before it is stored.
#[utoipa::path(put, path = "/v1/settings", tag = "settings", request_body = SettingsDocument,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "stored; the settings now", body = SettingsView),
        (status = 400, description = "a field that is wrong, named", body = ErrorBody),
    ))]
pub async fn put_settings(
    state: State<AppState>,
    tenant: Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SettingsView>, ApiError> {
    let body = body?;
    state.ctx.tenants.put_settings(&tenant.0, &body).await?;
    settings(state, tenant).await
}

/// The tenant's lexicon
///
/// As it was put, or the deployment's default when it uploaded none (header `x-huixi-source`:
/// `tenant` or `default`).
#[utoipa::path(get, path = "/v1/lexicon", tag = "settings",
    security(("bearer" = [])),
    responses((status = 200, description = "the lexicon file", body = String, content_type = "text/plain")))]
pub async fn lexicon(
    state: State<AppState>,
    tenant: Tenant,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 2], String), ApiError> {
    words(state, tenant, false).await
}

/// The tenant's whitelist
#[utoipa::path(get, path = "/v1/whitelist", tag = "settings",
    security(("bearer" = [])),
    responses((status = 200, description = "the whitelist file", body = String, content_type = "text/plain")))]
pub async fn whitelist(
    state: State<AppState>,
    tenant: Tenant,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 2], String), ApiError> {
    words(state, tenant, true).await
}

async fn words(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    whitelist: bool,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 2], String), ApiError> {
    let stored = state.ctx.store.stored_tenant(&tenant).await?;
    let own = stored
        .lexicon
        .map(|(l, w)| if whitelist { w } else { l })
        .filter(|t| !t.trim().is_empty());
    let (source, text) = match own {
        Some(text) => ("tenant", text),
        None => {
            let d = &state.ctx.tenants.defaults().lexicon;
            let text = if whitelist {
                d.whitelist.join("\n") + "\n"
            } else {
                d.to_lines()
            };
            ("default", text)
        }
    };
    Ok((
        StatusCode::OK,
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                axum::http::HeaderName::from_static("x-huixi-source"),
                source.to_string(),
            ),
        ],
        text,
    ))
}

/// The tenant's agents
///
/// As they run for the tenant, each with the override it stored.
#[utoipa::path(get, path = "/v1/agents", tag = "settings",
    security(("bearer" = [])),
    responses((status = 200, description = "the agents", body = AgentList)))]
pub async fn agents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<AgentList>, ApiError> {
    let t = state.ctx.tenants.fresh(&tenant).await?;
    let stored = state.ctx.store.stored_tenant(&tenant).await?;
    let names = state.ctx.tenants.defaults().agents.agent_names();
    let items: Vec<AgentView> = names
        .iter()
        .map(|name| {
            let over = stored.agents.iter().find(|(n, _)| n == name);
            agent_json(&t, name, over.map(|(_, j)| j.as_str()))
        })
        .collect();
    Ok(Json(AgentList {
        version: t.version,
        items,
    }))
}

fn agent_json(t: &crate::tenant::Tenant, name: &str, over: Option<&str>) -> AgentView {
    let overrides: Value = over
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(Value::Null);
    match t.agents.agents.iter().find(|a| a.name == name) {
        Some(a) => AgentView {
            name: a.name.clone(),
            enabled: true,
            version: Some(a.version),
            description: Some(a.description.clone()),
            prompt: Some(a.template_file.clone()),
            prompt_template: Some(a.template.clone()),
            output_schema: Some(a.schema.clone()),
            model: a.model.clone(),
            // f32 as the definition holds it, shown as written (0.2, not 0.20000000298).
            temperature: Some((f64::from(a.temperature) * 1e4).round() / 1e4),
            max_output_tokens: Some(a.max_output_tokens),
            context_tokens: Some(a.context_tokens),
            retrieval: Some(json!({"enabled": a.retrieval.enabled, "top_k": a.retrieval.top_k})),
            vars: Some(Value::Object(a.vars.clone())),
            overrides,
        },
        None => AgentView {
            name: name.to_string(),
            enabled: false,
            version: None,
            description: None,
            prompt: None,
            prompt_template: None,
            output_schema: None,
            model: None,
            temperature: None,
            max_output_tokens: None,
            context_tokens: None,
            retrieval: None,
            vars: None,
            overrides,
        },
    }
}

/// One of the tenant's agents
#[utoipa::path(get, path = "/v1/agents/{name}", tag = "settings",
    params(("name" = String, Path, description = "emotion, staff_score, keywords, …")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the agent", body = AgentView),
        (status = 404, description = "no agent of that name", body = ErrorBody),
    ))]
pub async fn agent(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    if !state
        .ctx
        .tenants
        .defaults()
        .agents
        .agent_names()
        .contains(&name)
    {
        return Err(ApiError::not_found(format!("agent {name:?}")));
    }
    let t = state.ctx.tenants.fresh(&tenant).await?;
    let stored = state.ctx.store.stored_tenant(&tenant).await?;
    let over = stored.agents.iter().find(|(n, _)| *n == name);
    Ok(Json(agent_json(&t, &name, over.map(|(_, j)| j.as_str()))))
}

/// Override a shipped agent
///
/// The fields of `agents/NAME.toml` as JSON, plus `prompt_template` and `output_schema` inline, and
/// `enabled`. Refused naming the template or schema that does not compile.
#[utoipa::path(put, path = "/v1/agents/{name}", tag = "settings", request_body = crate::agents::AgentFile,
    params(("name" = String, Path, description = "emotion, staff_score, keywords, …")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "stored; the agent now", body = AgentView),
        (status = 400, description = "a field, template or schema that is wrong, named", body = ErrorBody),
        (status = 404, description = "no agent of that name", body = ErrorBody),
        (status = 413, description = "over 16 MiB", body = ErrorBody),
    ))]
pub async fn put_agent(
    state: State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AgentView>, ApiError> {
    let body = body?;
    let text = utf8(&body)?;
    state.ctx.tenants.put_agent(&tenant.0, &name, text).await?;
    agent(state, tenant, Path(name)).await
}

/// Remove the tenant's override of an agent
///
/// The shipped agent applies again.
#[utoipa::path(delete, path = "/v1/agents/{name}", tag = "settings",
    params(("name" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no override of that agent", body = ErrorBody),
    ))]
pub async fn delete_agent(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.ctx.tenants.delete_agent(&tenant, &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("override of agent {name:?}")))
    }
}
