//! The handlers. Each takes its tenant from the token ([`Tenant`]) and passes it to every store query,
//! so another tenant's session, alert or job is simply not found.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{new_token, Admin, Tenant};
use super::error::ApiError;
use super::AppState;
use crate::queue::{Job, Lane};
use crate::store::SessionFilter;

const MAX_PAGE: i64 = 500;

/// A time given as epoch milliseconds or RFC 3339 text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Time {
    Millis(i64),
    Text(String),
}

impl Time {
    fn millis(&self, field: &str) -> Result<i64, ApiError> {
        match self {
            Time::Millis(ms) => Ok(*ms),
            // Query strings carry numbers as text.
            Time::Text(t) if t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty() => t
                .parse()
                .map_err(|e| ApiError::bad_request(format!("{field}: {e}"))),
            Time::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| {
                    ApiError::bad_request(format!("{field}: {t:?} is not an RFC 3339 time: {e}"))
                }),
        }
    }
}

/// Which sessions: by id, customer, staff member, time range; any combination.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    session: Option<String>,
    customer: Option<String>,
    staff: Option<String>,
    from: Option<Time>,
    to: Option<Time>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

impl Selection {
    fn filter(&self) -> Result<SessionFilter, ApiError> {
        Ok(SessionFilter {
            session: self.session.clone(),
            participants: self.customer.iter().chain(&self.staff).cloned().collect(),
            from_ms: self.from.as_ref().map(|t| t.millis("from")).transpose()?,
            to_ms: self.to.as_ref().map(|t| t.millis("to")).transpose()?,
        })
    }

    fn page(&self) -> Result<(i64, i64), ApiError> {
        let limit = self.limit.unwrap_or(50);
        let offset = self.offset.unwrap_or(0);
        if !(1..=MAX_PAGE).contains(&limit) || offset < 0 {
            return Err(ApiError::bad_request(format!(
                "limit must be 1..={MAX_PAGE} and offset not negative"
            )));
        }
        Ok((limit, offset))
    }
}

/// An uploaded body as text.
pub(super) fn utf8(body: &Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not UTF-8: {e}")))
}

/// POST /v1/reanalyze: queue the selected sessions' conversations on the on-demand lane.
pub async fn reanalyze(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Json<Selection>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(sel) = body?;
    if sel.session.is_none()
        && sel.customer.is_none()
        && sel.staff.is_none()
        && sel.from.is_none()
        && sel.to.is_none()
    {
        return Err(ApiError::bad_request(
            "say which sessions: session, customer, staff, from and/or to",
        ));
    }
    let filter = sel.filter()?;
    let conversations = state
        .ctx
        .store
        .conversations_matching(&tenant, &filter)
        .await?;
    if conversations.is_empty() {
        // Sessions exist once the batch has analysed them; until then there is nothing to redo.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no analysed session matches the selection",
        ));
    }
    let query = format!("{filter:?}");
    let id = state
        .ctx
        .store
        .create_request(&tenant, &query, &conversations)
        .await?;
    let jobs: Vec<Job> = conversations
        .iter()
        .map(|c| Job {
            tenant: tenant.clone(),
            conversation: c.clone(),
            lane: Lane::OnDemand,
            request: Some(id),
        })
        .collect();
    let confirmed = state.queue.publish(&jobs).await?;
    if confirmed < jobs.len() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the queue confirmed {confirmed} of {} jobs of request {id}",
                jobs.len()
            ),
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"job": id, "conversations": jobs.len()})),
    ))
}

/// GET /v1/jobs/{id}
pub async fn job(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let status = state
        .ctx
        .store
        .request_status(&tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(
        serde_json::to_value(status).expect("status serializes"),
    ))
}

/// GET /v1/sessions?customer=&staff=&from=&to=&limit=&offset=
pub async fn sessions(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<Selection>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(sel) = query?;
    let (limit, offset) = sel.page()?;
    let items = state
        .ctx
        .store
        .session_results(&tenant, &sel.filter()?, limit, offset)
        .await?;
    let next = (items.len() as i64 == limit).then_some(offset + limit);
    Ok(Json(
        json!({"items": items, "limit": limit, "offset": offset, "next_offset": next}),
    ))
}

/// GET /v1/sessions/{id}: the result with its alerts.
pub async fn session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (result, alerts) = state
        .ctx
        .store
        .load_session(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id}")))?;
    Ok(Json(json!({"result": result, "alerts": alerts})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertQuery {
    session: Option<String>,
    severity: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// GET /v1/alerts?session=&severity=&limit=&offset=
pub async fn alerts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    // `HIGH` and `高` are the stored `high`.
    let severity = q
        .severity
        .as_deref()
        .map(|s| {
            s.parse::<crate::sensitive::Severity>()
                .map_err(|e| ApiError::bad_request(format!("severity: {e}")))
        })
        .transpose()?;
    let sel = Selection {
        limit: q.limit,
        offset: q.offset,
        ..Selection::default()
    };
    let (limit, offset) = sel.page()?;
    let items = state
        .ctx
        .store
        .alerts(
            &tenant,
            q.session.as_deref(),
            severity.map(|s| s.as_str()),
            limit,
            offset,
        )
        .await?;
    let next = (items.len() as i64 == limit).then_some(offset + limit);
    Ok(Json(
        json!({"items": items, "limit": limit, "offset": offset, "next_offset": next}),
    ))
}

/// PUT /v1/lexicon and PUT /v1/whitelist: the tenant's files, in the file formats of the CLI. Every
/// worker scans with the new automaton within a few seconds (the tenant's version moved on); bad lines
/// are reported and skipped.
pub async fn put_lexicon(
    state: State<AppState>,
    tenant: Tenant,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    upload(state, tenant, body?, false).await
}

pub async fn put_whitelist(
    state: State<AppState>,
    tenant: Tenant,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    upload(state, tenant, body?, true).await
}

async fn upload(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
    whitelist: bool,
) -> Result<Json<Value>, ApiError> {
    let text = utf8(&body)?;
    let (count, errors) = state
        .ctx
        .tenants
        .put_words(&tenant, whitelist, text)
        .await?;
    let skipped: Vec<Value> = errors
        .iter()
        .map(|e| json!({"line": e.line, "error": e.message}))
        .collect();
    Ok(Json(json!({"accepted": count, "skipped": skipped})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    tenant: String,
    #[serde(default)]
    label: String,
}

/// POST /admin/tokens: a token for a tenant. The token is shown once; only its hash is kept.
pub async fn create_token(
    State(state): State<AppState>,
    _: Admin,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(t) = body?;
    let tenant = t.tenant.trim();
    // Characters, as the store's column counts them: 24 Chinese characters are 72 bytes.
    if tenant.is_empty() || tenant.chars().count() > 64 {
        return Err(ApiError::bad_request("tenant must be 1 to 64 characters"));
    }
    let token = new_token();
    let id = state
        .ctx
        .store
        .create_token(tenant, &token, false, &t.label)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "tenant": tenant, "token": token})),
    ))
}

/// DELETE /admin/tokens/{id}
pub async fn revoke_token(
    State(state): State<AppState>,
    _: Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    match state.ctx.store.revoke_token_keeping_an_admin(id).await? {
        Some(true) => Ok(StatusCode::NO_CONTENT),
        Some(false) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "token {id} is the last active admin token: create another admin token first \
                 (huixi token create --admin), or revoke it from the command line"
            ),
        )),
        None => Err(ApiError::not_found(format!("active token {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    url: String,
    /// Where high-severity alerts go instead (the 主管 channel); `url` when absent.
    #[serde(default)]
    high_url: Option<String>,
    secret: String,
}

/// PUT /admin/tenants/{tenant}/webhook: where a tenant's finished sessions and alerts are POSTed.
pub async fn put_webhook(
    State(state): State<AppState>,
    _: Admin,
    Path(tenant): Path<String>,
    body: Result<Json<Webhook>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(w) = body?;
    for url in std::iter::once(&w.url).chain(&w.high_url) {
        crate::webhook::guard::check_url(url, state.allow_private_webhooks)
            .map_err(ApiError::bad_request)?;
    }
    if w.secret.len() < 16 {
        return Err(ApiError::bad_request(
            "secret must be at least 16 characters",
        ));
    }
    state
        .ctx
        .store
        .set_webhook(&tenant, &w.url, w.high_url.as_deref(), &w.secret)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct Limit {
    #[serde(default)]
    limit: Option<usize>,
}

/// GET /admin/tenants/{tenant}/webhook/dead: events given up on after every try, with their last
/// error.
pub async fn dead_events(
    State(state): State<AppState>,
    _: Admin,
    Path(tenant): Path<String>,
    q: Result<Query<Limit>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = state
        .ctx
        .store
        .dead_events(&tenant, crate::webhook::MAX_ATTEMPTS, limit)
        .await?;
    Ok(Json(json!({"events": events})))
}

/// POST /admin/tenants/{tenant}/webhook/dead/redeliver: every dead event back in the outbox, with a
/// fresh count of tries (once the receiver is fixed).
pub async fn redeliver_dead(
    State(state): State<AppState>,
    _: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let n = state
        .ctx
        .store
        .redeliver_dead(&tenant, crate::webhook::MAX_ATTEMPTS)
        .await?;
    crate::webhook::wake();
    Ok(Json(json!({"redelivered": n})))
}

pub async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// GET /readyz: the store answers and the queue answers.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.ctx.store.ping().await.map_err(|e| e.to_string());
    let queue = state.queue.depth().await.map_err(|e| e.to_string());
    let ok = store.is_ok() && queue.is_ok();
    let body = json!({
        "store": store.err().unwrap_or_else(|| "ok".into()),
        "queue": match &queue { Ok((waiting, dead)) => json!({"waiting": waiting, "dead": dead}), Err(e) => json!(e) },
        "model": if state.ctx.tenants.models().is_some() { "configured" } else { "offline analysers" },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

pub async fn fallback() -> ApiError {
    ApiError::not_found("route")
}
