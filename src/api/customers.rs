//! Handlers for what spans sessions: customer profiles and their tag suggestions, 撞单, metrics per
//! staff member and day, and the tenant settings they depend on (calendar, tag library).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Tenant;
use super::doc::ErrorBody;
use super::error::ApiError;
use super::routes::utf8;
use super::AppState;
use crate::customers::duplicates::shared_identifiers;
use crate::customers::{refresh, CustomerProfile, Duplicate, TagLibrary, TagSuggestion};
use crate::store::{Consent, MetricsFilter};
use crate::trajectory::{self, Calendar, SessionMetrics, StaffDay, Turn};

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileAnswer {
    pub profile: CustomerProfile,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagsAnswer {
    pub customer: String,
    pub items: Vec<TagSuggestion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DuplicatesAnswer {
    pub items: Vec<Duplicate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StaffDays {
    pub items: Vec<StaffDay>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMetricsAnswer {
    pub metrics: SessionMetrics,
    /// Each wait of the customer for staff, with its reply.
    pub turns: Vec<Turn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TagLibraryStored {
    pub groups: usize,
    pub tags: usize,
    /// Tag suggestions made for the tenant's customers with the new library.
    pub suggestions: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarAnswer {
    pub calendar: Calendar,
}

/// A customer's profile
///
/// Folded from every session of the customer: stage and its history, needs, objections, budget,
/// competitors, emotion trend, next best action, tag suggestions and 撞单.
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers",
    params(("id" = String, Path, description = "the customer's external id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the profile", body = ProfileAnswer),
        (status = 404, description = "no profile of this customer (yet)", body = ErrorBody),
    ))]
pub async fn customer(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<ProfileAnswer>, ApiError> {
    let (profile, _) = state
        .ctx
        .store
        .profile(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("customer {id}")))?;
    Ok(Json(ProfileAnswer { profile }))
}

/// A customer's tag suggestions
///
/// As the CRM reads them: it decides what to apply.
#[utoipa::path(get, path = "/v1/customers/{id}/tags", tag = "customers",
    params(("id" = String, Path, description = "the customer's external id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the suggestions", body = TagsAnswer),
        (status = 404, description = "no profile of this customer (yet)", body = ErrorBody),
    ))]
pub async fn customer_tags(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<TagsAnswer>, ApiError> {
    if state.ctx.store.profile(&tenant, &id).await?.is_none() {
        return Err(ApiError::not_found(format!("customer {id}")));
    }
    let items = state.ctx.store.tag_suggestions(&tenant, &id).await?;
    Ok(Json(TagsAnswer {
        customer: id,
        items,
    }))
}

/// Every 撞单 of the tenant
///
/// Customers sharing a phone or another identifier, and customers served by several staff members.
#[utoipa::path(get, path = "/v1/duplicates", tag = "customers",
    security(("bearer" = [])),
    responses((status = 200, description = "the 撞单", body = DuplicatesAnswer)))]
pub async fn duplicates(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<DuplicatesAnswer>, ApiError> {
    let store = &state.ctx.store;
    let mut items = shared_identifiers(&store.shared_identifiers(&tenant).await?);
    for p in store.profiles_served_by_several(&tenant).await? {
        items.extend(
            p.duplicates
                .into_iter()
                .filter(|d| d.kind == "same_customer"),
        );
    }
    Ok(Json(DuplicatesAnswer { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsentQuery {
    /// `disagree` (who refused archiving) or `agree`; both when absent.
    state: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Consents {
    pub items: Vec<Consent>,
}

/// 拒绝存档: who refused archiving, since when, with which staff
///
/// Each customer's latest consent event per staff member, refusals first.
#[utoipa::path(get, path = "/v1/consents", tag = "customers", params(ConsentQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the consents as they stand", body = Consents),
        (status = 400, description = "a state that is neither agree nor disagree", body = ErrorBody),
    ))]
pub async fn consents(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<ConsentQuery>, QueryRejection>,
) -> Result<Json<Consents>, ApiError> {
    let Query(q) = query?;
    let wanted = match q.state.as_deref() {
        None => None,
        Some(s @ ("agree" | "disagree")) => Some(s.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state: {other:?} is neither agree nor disagree"
            )))
        }
    };
    let mut items = state.ctx.store.consents(&tenant).await?;
    if let Some(w) = wanted {
        items.retain(|c| c.state == w);
    }
    Ok(Json(Consents { items }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// One staff member's userid.
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

/// 会话轨迹 per staff member and day
#[utoipa::path(get, path = "/v1/metrics", tag = "customers", params(MetricsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "one item per staff member and day", body = StaffDays),
        (status = 400, description = "a date that does not parse", body = ErrorBody),
    ))]
pub async fn metrics(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<StaffDays>, ApiError> {
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
    Ok(Json(StaffDays { items }))
}

/// A session's reply times and traffic
#[utoipa::path(get, path = "/v1/sessions/{id}/metrics", tag = "analysis",
    params(("id" = String, Path, description = "the session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its metrics and turns", body = SessionMetricsAnswer),
        (status = 404, description = "no such session of this tenant", body = ErrorBody),
    ))]
pub async fn session_metrics(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SessionMetricsAnswer>, ApiError> {
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
    Ok(Json(SessionMetricsAnswer {
        metrics: trajectory::session_metrics(&id, &turns, &traffic, horizon),
        turns,
    }))
}

/// Replace the tenant's tag library
///
/// Tags are suggested again for every customer, from their stored contributions: no session is
/// analysed again and no model is asked.
#[utoipa::path(put, path = "/v1/tag-library", tag = "settings", request_body = TagLibrary,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "stored, and tags suggested again", body = TagLibraryStored),
        (status = 400, description = "a library that does not parse, naming the field", body = ErrorBody),
        (status = 413, description = "over 16 MiB", body = ErrorBody),
    ))]
pub async fn put_tag_library(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<TagLibraryStored>, ApiError> {
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
    Ok(Json(TagLibraryStored {
        groups: library.groups.len(),
        tags,
        suggestions: suggested,
    }))
}

/// Replace the tenant's working hours and reply threshold
///
/// For conversations analysed from now on (`POST /v1/reanalyze` with a time range applies it to
/// earlier ones).
#[utoipa::path(put, path = "/v1/calendar", tag = "settings", request_body = Calendar,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "stored", body = CalendarAnswer),
        (status = 400, description = "a calendar that does not parse, naming the field", body = ErrorBody),
        (status = 413, description = "over 256 KiB", body = ErrorBody),
    ))]
pub async fn put_calendar(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CalendarAnswer>, ApiError> {
    let body = body?;
    let text = utf8(&body)?;
    let calendar = Calendar::parse("calendar", text).map_err(ApiError::bad_request)?;
    state.ctx.store.put_calendar(&tenant, &calendar).await?;
    state.ctx.tenants.forget(&tenant).await;
    Ok(Json(CalendarAnswer { calendar }))
}

/// The tenant's working hours and reply threshold
#[utoipa::path(get, path = "/v1/calendar", tag = "settings",
    security(("bearer" = [])),
    responses((status = 200, description = "the calendar in effect", body = CalendarAnswer)))]
pub async fn calendar(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<CalendarAnswer>, ApiError> {
    let settings = state.ctx.store.tenant_settings(&tenant).await?;
    Ok(Json(CalendarAnswer {
        calendar: settings.calendar,
    }))
}
