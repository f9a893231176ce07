//! The handlers. Each takes its tenant from the token ([`Tenant`]) and passes it to every store query,
//! so another tenant's session, alert or job is simply not found.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::auth::{new_token, Admin, Tenant};
use super::doc::ErrorBody;
use super::error::ApiError;
use super::AppState;
use crate::agents::SessionResult;
use crate::queue::{Job, Lane};
use crate::sensitive::Alert;
use crate::store::{RequestStatus, SessionFilter};

const MAX_PAGE: i64 = 500;

/// A time given as epoch milliseconds or RFC 3339 text.
#[derive(Debug, Deserialize, ToSchema)]
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
#[derive(Debug, Deserialize, Default, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Selection {
    /// A session id.
    session: Option<String>,
    /// A customer's external id (wm…/wo…): sessions they took part in.
    customer: Option<String>,
    /// A staff member's userid.
    staff: Option<String>,
    /// Sessions ending at or after: epoch milliseconds or RFC 3339.
    #[param(value_type = Option<String>)]
    from: Option<Time>,
    /// Sessions starting at or before: epoch milliseconds or RFC 3339.
    #[param(value_type = Option<String>)]
    to: Option<Time>,
    /// Page size, 1 to 500 (50).
    #[serde(default)]
    limit: Option<i64>,
    /// Items to skip (0).
    #[serde(default)]
    offset: Option<i64>,
}

/// A re-analysis request, queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// Its id, for `GET /v1/jobs/{id}`.
    pub job: i64,
    /// Conversations queued on the on-demand lane.
    pub conversations: usize,
}

/// A page of items, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub limit: i64,
    pub offset: i64,
    /// The offset of the next page; null on the last.
    pub next_offset: Option<i64>,
}

impl<T> Page<T> {
    fn of(items: Vec<T>, limit: i64, offset: i64) -> Page<T> {
        let next_offset = (items.len() as i64 == limit).then_some(offset + limit);
        Page {
            items,
            limit,
            offset,
            next_offset,
        }
    }
}

/// A session's result and every alert it raised.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionWithAlerts {
    pub result: SessionResult,
    pub alerts: Vec<Alert>,
}

/// A line of an upload that was skipped, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedLine {
    pub line: usize,
    pub error: String,
}

/// What an upload of words kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct WordsAccepted {
    /// Entries kept.
    pub accepted: usize,
    pub skipped: Vec<SkippedLine>,
}

/// A token, shown this once: only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub tenant: String,
    pub token: String,
}

/// Events given up on.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadEvents {
    /// Each with its id, tenant, topic, attempts, last error and payload.
    pub events: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivered {
    /// Events put back in the outbox.
    pub redelivered: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`: the process answers.
    pub status: String,
}

/// Whether the process can do its work.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok`, or why the store does not answer.
    pub store: String,
    /// `{"waiting", "dead"}` job counts, or why the queue does not answer.
    pub queue: Value,
    /// `configured` or `offline analysers`.
    pub model: String,
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

/// Re-analyse sessions now
///
/// Queues the conversations of the selected sessions on the on-demand lane, ahead of the batch
/// backlog. Only analysed sessions can be selected.
#[utoipa::path(post, path = "/v1/reanalyze", tag = "analysis", request_body = Selection,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "queued", body = Queued),
        (status = 400, description = "no selection, or a field that does not parse", body = ErrorBody),
        (status = 404, description = "no analysed session matches", body = ErrorBody),
        (status = 413, description = "body over 256 KiB", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
    ))]
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
        Json(Queued {
            job: id,
            conversations: jobs.len(),
        }),
    ))
}

/// A re-analysis request's progress
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "analysis",
    params(("id" = i64, Path, description = "the job id `POST /v1/reanalyze` answered")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its progress", body = RequestStatus),
        (status = 400, description = "an id that is not a number", body = ErrorBody),
        (status = 404, description = "no such job of this tenant", body = ErrorBody),
    ))]
pub async fn job(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<i64>,
) -> Result<Json<RequestStatus>, ApiError> {
    let status = state
        .ctx
        .store
        .request_status(&tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id}")))?;
    Ok(Json(status))
}

/// Session results
#[utoipa::path(get, path = "/v1/sessions", tag = "analysis", params(Selection),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "a page of results", body = Page<SessionResult>),
        (status = 400, description = "a parameter that does not parse", body = ErrorBody),
    ))]
pub async fn sessions(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<Selection>, QueryRejection>,
) -> Result<Json<Page<SessionResult>>, ApiError> {
    let Query(sel) = query?;
    let (limit, offset) = sel.page()?;
    let items = state
        .ctx
        .store
        .session_results(&tenant, &sel.filter()?, limit, offset)
        .await?;
    Ok(Json(Page::of(items, limit, offset)))
}

/// One session's result, with its alerts
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "analysis",
    params(("id" = String, Path, description = "the session id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the result and its alerts", body = SessionWithAlerts),
        (status = 404, description = "no such session of this tenant", body = ErrorBody),
    ))]
pub async fn session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SessionWithAlerts>, ApiError> {
    let (result, alerts) = state
        .ctx
        .store
        .load_session(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id}")))?;
    Ok(Json(SessionWithAlerts { result, alerts }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// Alerts of one session.
    session: Option<String>,
    /// `low`, `medium` or `high` (any case, or 低/中/高).
    severity: Option<String>,
    /// Page size, 1 to 500 (50).
    limit: Option<i64>,
    offset: Option<i64>,
}

/// Alerts
#[utoipa::path(get, path = "/v1/alerts", tag = "analysis", params(AlertQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "a page of alerts", body = Page<Alert>),
        (status = 400, description = "a parameter that does not parse", body = ErrorBody),
    ))]
pub async fn alerts(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<Page<Alert>>, ApiError> {
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
    Ok(Json(Page::of(items, limit, offset)))
}

/// Replace the tenant's sensitive-word lexicon
///
/// The file format of the CLI (`word,category,severity[,pinyin]`). Every worker scans with the new
/// automaton within a few seconds (the tenant's version moved on); bad lines are reported and
/// skipped.
#[utoipa::path(put, path = "/v1/lexicon", tag = "settings",
    request_body(content = String, content_type = "text/plain"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "what was kept", body = WordsAccepted),
        (status = 400, description = "not UTF-8", body = ErrorBody),
        (status = 413, description = "over 16 MiB", body = ErrorBody),
    ))]
pub async fn put_lexicon(
    state: State<AppState>,
    tenant: Tenant,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<WordsAccepted>, ApiError> {
    upload(state, tenant, body?, false).await
}

/// Replace the tenant's whitelist
///
/// One benign phrase a line; a whitelisted span suppresses every hit inside it.
#[utoipa::path(put, path = "/v1/whitelist", tag = "settings",
    request_body(content = String, content_type = "text/plain"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "what was kept", body = WordsAccepted),
        (status = 400, description = "not UTF-8", body = ErrorBody),
        (status = 413, description = "over 16 MiB", body = ErrorBody),
    ))]
pub async fn put_whitelist(
    state: State<AppState>,
    tenant: Tenant,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<WordsAccepted>, ApiError> {
    upload(state, tenant, body?, true).await
}

async fn upload(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Bytes,
    whitelist: bool,
) -> Result<Json<WordsAccepted>, ApiError> {
    let text = utf8(&body)?;
    let (count, errors) = state
        .ctx
        .tenants
        .put_words(&tenant, whitelist, text)
        .await?;
    let skipped = errors
        .iter()
        .map(|e| SkippedLine {
            line: e.line,
            error: e.message.clone(),
        })
        .collect();
    Ok(Json(WordsAccepted {
        accepted: count,
        skipped,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// 1 to 64 characters.
    tenant: String,
    /// Who the token is for, as a reminder.
    #[serde(default)]
    label: String,
}

/// Create a tenant token
///
/// The token is shown once; only its hash is kept.
#[utoipa::path(post, path = "/admin/tokens", tag = "admin", request_body = NewToken,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "the new token", body = CreatedToken),
        (status = 400, description = "a tenant name out of bounds, or a body that does not parse", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
    ))]
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
        Json(CreatedToken {
            id,
            tenant: tenant.to_string(),
            token,
        }),
    ))
}

/// Revoke a token
#[utoipa::path(delete, path = "/admin/tokens/{id}", tag = "admin",
    params(("id" = i64, Path, description = "the token's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "revoked"),
        (status = 400, description = "an id that is not a number", body = ErrorBody),
        (status = 404, description = "no such active token", body = ErrorBody),
        (status = 409, description = "the last active admin token", body = ErrorBody),
    ))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// http(s) URL of the CRM's receiver; private and loopback addresses only with
    /// `--webhook-allow-private`.
    url: String,
    /// Where high-severity alerts go instead (the 主管 channel); `url` when absent.
    #[serde(default)]
    high_url: Option<String>,
    /// At least 16 characters: signs every event (Standard Webhooks). A new secret signs beside
    /// the old one for 24 hours.
    secret: String,
}

/// Set where a tenant's events are POSTed
#[utoipa::path(put, path = "/admin/tenants/{tenant}/webhook", tag = "admin", request_body = Webhook,
    params(("tenant" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "stored"),
        (status = 400, description = "a URL that is refused, or a short secret", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
    ))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// 1 to 1000 (100).
    #[serde(default)]
    limit: Option<usize>,
}

/// Webhook events given up on
///
/// Each after every try, with its last error.
#[utoipa::path(get, path = "/admin/tenants/{tenant}/webhook/dead", tag = "admin",
    params(("tenant" = String, Path), Limit),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the dead events", body = DeadEvents),
        (status = 400, description = "a limit that does not parse", body = ErrorBody),
    ))]
pub async fn dead_events(
    State(state): State<AppState>,
    _: Admin,
    Path(tenant): Path<String>,
    q: Result<Query<Limit>, QueryRejection>,
) -> Result<Json<DeadEvents>, ApiError> {
    let Query(q) = q?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = state
        .ctx
        .store
        .dead_events(&tenant, crate::webhook::MAX_ATTEMPTS, limit)
        .await?;
    Ok(Json(DeadEvents { events }))
}

/// Send the dead events again
///
/// Every dead event goes back in the outbox with a fresh count of tries (once the receiver is
/// fixed).
#[utoipa::path(post, path = "/admin/tenants/{tenant}/webhook/dead/redeliver", tag = "admin",
    params(("tenant" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "how many", body = Redelivered)))]
pub async fn redeliver_dead(
    State(state): State<AppState>,
    _: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Redelivered>, ApiError> {
    let n = state
        .ctx
        .store
        .redeliver_dead(&tenant, crate::webhook::MAX_ATTEMPTS)
        .await?;
    crate::webhook::wake();
    Ok(Json(Redelivered { redelivered: n }))
}

/// Liveness
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the process answers", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the store and the queue answer
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "the store or the queue does not answer", body = Readiness),
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let store = state.ctx.store.ping().await.map_err(|e| e.to_string());
    let queue = state.queue.depth().await.map_err(|e| e.to_string());
    let ok = store.is_ok() && queue.is_ok();
    let body = Readiness {
        store: store.err().unwrap_or_else(|| "ok".into()),
        queue: match &queue {
            Ok((waiting, dead)) => json!({"waiting": waiting, "dead": dead}),
            Err(e) => json!(e),
        },
        model: if state.ctx.tenants.models().is_some() {
            "configured"
        } else {
            "offline analysers"
        }
        .into(),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "the text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

/// This document
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1", body = serde_json::Value)))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        super::doc::document(),
    )
}

pub async fn fallback() -> ApiError {
    ApiError::not_found("route")
}
