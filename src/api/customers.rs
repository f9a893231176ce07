//! Handlers for what spans sessions: customer profiles and their tag suggestions, 撞单, metrics per
//! staff member and day, and the tenant settings they depend on (calendar, tag library).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Tenant;
use super::error::ApiError;
use super::routes::utf8;
use super::AppState;
use crate::customers::duplicates::shared_identifiers;
use crate::customers::{refresh, TagLibrary};
use crate::store::MetricsFilter;
use crate::trajectory::{self, Calendar};

/// GET /v1/customers/{id}: the profile, with the tag suggestions written back for it.
pub async fn customer(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (profile, _) = state
        .ctx
        .store
        .profile(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("customer {id}")))?;
    Ok(Json(json!({"profile": profile})))
}

/// GET /v1/customers/{id}/tags: the suggestions as the CRM reads them (it decides what to apply).
pub async fn customer_tags(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.ctx.store.profile(&tenant, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("customer {id}")));
    }
    let items = state.ctx.store.tag_suggestions(&tenant, &id).await?;
    Ok(Json(json!({"customer": id, "items": items})))
}

/// GET /v1/duplicates: every 撞单 of the tenant.
pub async fn duplicates(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Value>, ApiError> {
    let store = &state.ctx.store;
    let mut items = shared_identifiers(&store.shared_identifiers(&tenant).await?);
    for p in store.profiles_served_by_several(&tenant).await? {
        items.extend(
            p.duplicates
                .into_iter()
                .filter(|d| d.kind == "same_customer"),
        );
    }
    Ok(Json(json!({"items": items})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    staff: Option<String>,
    /// Local dates, inclusive.
    from: Option<String>,
    to: Option<String>,
}

fn day(field: &str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    v.as_ref()
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map(|d| d.to_string())
                .map_err(|_| {
                    ApiError::bad_request(format!("{field}: {d:?} is not a date like 2026-11-25"))
                })
        })
        .transpose()
}

/// GET /v1/metrics?staff=&from=&to=: 会话轨迹 per staff member per day.
pub async fn metrics(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    let filter = MetricsFilter {
        staff: q.staff.clone(),
        from_day: day("from", &q.from)?,
        to_day: day("to", &q.to)?,
        session: None,
    };
    let store = &state.ctx.store;
    let (turns, traffic) = store.metrics_rows(&tenant, &filter).await?;
    let horizon = store.archive_horizon(&tenant).await?;
    let items = trajectory::staff_days(&turns, &traffic, horizon);
    Ok(Json(json!({"items": items})))
}

/// GET /v1/sessions/{id}/metrics
pub async fn session_metrics(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = &state.ctx.store;
    if store.conversation_of(&tenant, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("session {id}")));
    }
    let filter = MetricsFilter {
        session: Some(id.clone()),
        ..MetricsFilter::default()
    };
    let (turns, traffic) = store.metrics_rows(&tenant, &filter).await?;
    let horizon = store.archive_horizon(&tenant).await?;
    Ok(Json(json!({
        "metrics": trajectory::session_metrics(&id, &turns, &traffic, horizon),
        "turns": turns,
    })))
}

/// PUT /v1/tag-library: replaces the tenant's tag library and re-suggests tags for every customer
/// (from their stored contributions: no session is analysed again and no model is asked).
pub async fn put_tag_library(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    let text = utf8(&body)?;
    let library = TagLibrary::parse("tag library", text).map_err(ApiError::bad_request)?;
    let store = &state.ctx.store;
    store.put_tag_library(&tenant, &library).await?;
    let config = state.ctx.tenants.fresh(&tenant).await?;
    let mut suggested = 0;
    for customer in store.customers(&tenant).await? {
        let r = refresh(
            store,
            &tenant,
            &customer,
            Some(&library),
            config.llm.as_ref(),
            &[],
        )
        .await
        .map_err(|e| {
            tracing::error!(%tenant, %customer, "re-tagging: {e:#}");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                format!("the library is stored, re-tagging stopped at customer {customer}"),
            )
        })?;
        suggested += r.map_or(0, |r| r.profile.tags.len());
    }
    let tags: usize = library.groups.iter().map(|g| g.tags.len()).sum();
    Ok(Json(json!({
        "groups": library.groups.len(),
        "tags": tags,
        "suggestions": suggested,
    })))
}

/// PUT /v1/calendar: the tenant's working hours and reply threshold, for conversations analysed from
/// now on (POST /v1/reanalyze with a time range applies it to earlier ones).
pub async fn put_calendar(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body?;
    let text = utf8(&body)?;
    let calendar = Calendar::parse("calendar", text).map_err(ApiError::bad_request)?;
    state.ctx.store.put_calendar(&tenant, &calendar).await?;
    state.ctx.tenants.forget(&tenant).await;
    Ok(Json(json!({"calendar": calendar})))
}

/// GET /v1/calendar
pub async fn calendar(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<Value>, ApiError> {
    let settings = state.ctx.store.tenant_settings(&tenant).await?;
    Ok(Json(json!({"calendar": settings.calendar})))
}
