//! The tenant's configuration, for the CRM's admin UI (智能体管理 / AI分析设置 / 行业适配): settings,
//! lexicon and whitelist, agent overrides. Every PUT is checked by building the tenant with it
//! before it is stored ([`crate::tenant::change`]); workers everywhere pick it up by its version.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::error::ApiError;
use super::routes::utf8;
use super::AppState;

/// GET /v1/settings: the settings in effect (the tenant's, the deployment's defaults under them),
/// what the tenant itself set, and the configuration's version.
pub async fn settings(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Value>, ApiError> {
    let t = state.ctx.tenants.fresh(&tenant).await?;
    let stored = state.ctx.store.stored_tenant(&tenant).await?;
    let own: Value = match &stored.document {
        Some(json) => serde_json::from_str(json).unwrap_or(Value::Null),
        None => json!({}),
    };
    Ok(Json(json!({
        "version": t.version,
        "effective": t.effective,
        "tenant": own,
        "fingerprint": t.fingerprint(),
    })))
}

/// PUT /v1/settings: `{"competitors": [{"name", "aliases": []}], "redpacket_threshold_yuan",
/// "transfer_threshold_yuan", "idle_gap_minutes"}`; a field left out is the deployment's default.
pub async fn put_settings(
    state: State<AppState>,
    tenant: Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    state.ctx.tenants.put_settings(&tenant.0, &body).await?;
    settings(state, tenant).await
}

/// GET /v1/lexicon and GET /v1/whitelist: the tenant's upload as it was put, or the deployment's
/// default (`"source": "default"`) when it uploaded none.
pub async fn lexicon(
    state: State<AppState>,
    tenant: Tenant,
) -> Result<(StatusCode, [(axum::http::HeaderName, String); 2], String), ApiError> {
    words(state, tenant, false).await
}

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

/// GET /v1/agents: the tenant's agents as they run, and which fields it overrides.
pub async fn agents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Value>, ApiError> {
    let t = state.ctx.tenants.fresh(&tenant).await?;
    let stored = state.ctx.store.stored_tenant(&tenant).await?;
    let names = state.ctx.tenants.defaults().agents.agent_names();
    let items: Vec<Value> = names
        .iter()
        .map(|name| {
            let over = stored.agents.iter().find(|(n, _)| n == name);
            agent_json(&t, name, over.map(|(_, j)| j.as_str()))
        })
        .collect();
    Ok(Json(json!({"version": t.version, "items": items})))
}

fn agent_json(t: &crate::tenant::Tenant, name: &str, over: Option<&str>) -> Value {
    let over: Value = over
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or(Value::Null);
    match t.agents.agents.iter().find(|a| a.name == name) {
        Some(a) => json!({
            "name": a.name,
            "enabled": true,
            "version": a.version,
            "description": a.description,
            "prompt": a.template_file,
            "prompt_template": a.template,
            "output_schema": a.schema,
            "model": a.model,
            // f32 as the definition holds it, shown as written (0.2, not 0.20000000298).
            "temperature": (f64::from(a.temperature) * 1e4).round() / 1e4,
            "max_output_tokens": a.max_output_tokens,
            "context_tokens": a.context_tokens,
            "retrieval": {"enabled": a.retrieval.enabled, "top_k": a.retrieval.top_k},
            "vars": a.vars,
            "override": over,
        }),
        None => json!({"name": name, "enabled": false, "override": over}),
    }
}

/// GET /v1/agents/{name}
pub async fn agent(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
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

/// PUT /v1/agents/{name}: an override of the shipped agent, with the fields of `agents/NAME.toml` as
/// JSON (plus `prompt_template` and `output_schema` inline, and `enabled`). Refused with 400 naming
/// the template or schema that does not compile.
pub async fn put_agent(
    state: State<AppState>,
    tenant: Tenant,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    let text = utf8(&body)?;
    state.ctx.tenants.put_agent(&tenant.0, &name, text).await?;
    agent(state, tenant, Path(name)).await
}

/// DELETE /v1/agents/{name}: the shipped agent applies again.
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
