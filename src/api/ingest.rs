//! Messages in: `POST /v1/messages` (decrypted archive messages from a CRM that pulls WeCom itself,
//! as NDJSON, through the same path as the puller's and `huixi enqueue`'s, [`crate::ingest`]), and
//! the tenant's WeCom source — its settings, its status, and WeCom's callback.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Admin, Tenant};
use super::doc::ErrorBody;
use super::error::ApiError;
use super::AppState;
use crate::ingest::wecom::notify;
use crate::ingest::{self, Report, MAX_LINES};
use crate::store::{WecomConfig, WecomStatus};

/// Send archive messages
///
/// Decrypted archive messages as NDJSON, one WeCom message object a line (at most 10,000 lines and
/// 16 MiB). What is new is stored (idempotent by msgid) and scanned for real-time alerts at once;
/// the answer says what became of each line.
#[utoipa::path(post, path = "/v1/messages", tag = "ingest",
    request_body(content = String, content_type = "application/x-ndjson"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "what became of the lines", body = Report),
        (status = 400, description = "a body that is not UTF-8", body = ErrorBody),
        (status = 413, description = "over 16 MiB or 10,000 lines", body = ErrorBody),
    ))]
pub async fn post_messages(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<Report>, ApiError> {
    let body = body?;
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    if lines > MAX_LINES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{lines} lines in one request; send at most {MAX_LINES} per request"),
        ));
    }
    let built = state.ctx.tenants.get(&tenant).await?;
    let report =
        ingest::accept_ndjson(&state.ctx.store, &built, "request body", body.to_vec()).await?;
    Ok(Json(report))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MediaLocation {
    pub msgid: String,
    /// Where the file is: a path under the media directory, or an object URL.
    pub location: String,
}

/// Where a message's media file is
///
/// Once the puller fetched it from WeCom.
#[utoipa::path(get, path = "/v1/media/{msgid}", tag = "ingest",
    params(("msgid" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its location", body = MediaLocation),
        (status = 404, description = "no media of that message (yet)", body = ErrorBody),
    ))]
pub async fn media(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(msgid): Path<String>,
) -> Result<Json<MediaLocation>, ApiError> {
    match state.ctx.store.media_location(&tenant, &msgid).await? {
        Some(location) => Ok(Json(MediaLocation { msgid, location })),
        None => Err(ApiError::not_found(format!("media of message {msgid:?}"))),
    }
}

/// WeCom's signature of a callback.
#[derive(Debug, serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Signed {
    #[serde(default)]
    msg_signature: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    echostr: Option<String>,
}

/// The tenant's callback token and key; 404 for a tenant without a source (nothing to say to a
/// caller who guesses names).
async fn callback_keys(state: &AppState, tenant: &str) -> Result<(String, String), ApiError> {
    match state.ctx.store.wecom_source(tenant).await? {
        Some(s) if !s.config.notify_token.is_empty() => {
            Ok((s.config.notify_token, s.config.notify_aes_key))
        }
        _ => Err(ApiError::not_found(format!(
            "WeCom callback of tenant {tenant:?}"
        ))),
    }
}

/// WeCom's check of the callback URL
///
/// Answered with `echostr` decrypted, once its signature holds.
#[utoipa::path(get, path = "/v1/wecom/notify/{tenant}", tag = "ingest",
    params(("tenant" = String, Path), Signed),
    responses(
        (status = 200, description = "echostr, decrypted", body = String, content_type = "text/plain"),
        (status = 400, description = "an echostr that does not decrypt", body = ErrorBody),
        (status = 403, description = "msg_signature does not match", body = ErrorBody),
        (status = 404, description = "no callback configured for the tenant", body = ErrorBody),
    ))]
pub async fn verify_notify_url(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<Signed>, QueryRejection>,
) -> Result<String, ApiError> {
    let Query(q) = q?;
    let (token, aes_key) = callback_keys(&state, &tenant).await?;
    let echostr = q.echostr.unwrap_or_default();
    if !notify::verify(&token, &q.timestamp, &q.nonce, &echostr, &q.msg_signature) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "msg_signature does not match",
        ));
    }
    notify::decrypt(&aes_key, &echostr).map_err(ApiError::bad_request)
}

/// WeCom says the archive has new messages
///
/// `msgaudit_notify`: the tenant's puller runs now instead of at its next interval.
#[utoipa::path(post, path = "/v1/wecom/notify/{tenant}", tag = "ingest",
    params(("tenant" = String, Path), Signed),
    request_body(content = String, content_type = "application/xml"),
    responses(
        (status = 200, description = "`success`", body = String, content_type = "text/plain"),
        (status = 400, description = "a body without <Encrypt>", body = ErrorBody),
        (status = 403, description = "msg_signature does not match", body = ErrorBody),
        (status = 404, description = "no callback configured for the tenant", body = ErrorBody),
    ))]
pub async fn notify(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    q: Result<Query<Signed>, QueryRejection>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<&'static str, ApiError> {
    let (Query(q), body) = (q?, body?);
    let (token, _) = callback_keys(&state, &tenant).await?;
    let xml = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not UTF-8"))?;
    let encrypted = notify::encrypted_of(xml)
        .ok_or_else(|| ApiError::bad_request("body has no <Encrypt> element"))?;
    if !notify::verify(&token, &q.timestamp, &q.nonce, encrypted, &q.msg_signature) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "msg_signature does not match",
        ));
    }
    state.ctx.store.poke_wecom(&tenant).await?;
    metrics::counter!("huixi_wecom_notify_total").increment(1);
    Ok("success")
}

/// Set a tenant's WeCom finance-SDK source
///
/// Secrets and keys are stored sealed and never returned.
#[utoipa::path(put, path = "/admin/tenants/{tenant}/wecom", tag = "admin", request_body = WecomBody,
    params(("tenant" = String, Path)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "stored; its status", body = WecomStatus),
        (status = 400, description = "a field that is wrong, named", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "JSON of the wrong shape", body = ErrorBody),
    ))]
pub async fn put_wecom(
    State(state): State<AppState>,
    _: Admin,
    Path(tenant): Path<String>,
    body: Result<Json<WecomBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<WecomStatus>, ApiError> {
    let Json(b) = body?;
    let config = b.check()?;
    state.ctx.store.put_wecom_source(&tenant, &config).await?;
    status(&state, &tenant).await
}

/// The tenant's WeCom puller
///
/// Cursor, lag, quarantine, and why it stopped.
#[utoipa::path(get, path = "/v1/wecom", tag = "ingest",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "its status", body = WecomStatus),
        (status = 404, description = "no WeCom source for the tenant", body = ErrorBody),
    ))]
pub async fn get_wecom(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<WecomStatus>, ApiError> {
    status(&state, &tenant).await
}

async fn status(state: &AppState, tenant: &str) -> Result<Json<WecomStatus>, ApiError> {
    match state.ctx.store.wecom_source(tenant).await? {
        Some(s) => Ok(Json(s.status)),
        None => Err(ApiError::not_found(format!(
            "WeCom source of tenant {tenant:?}"
        ))),
    }
}

#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WecomBody {
    corpid: String,
    secret: String,
    /// PEM private keys by version: `{"1": "-----BEGIN RSA PRIVATE KEY-----…"}`.
    private_keys: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    sdk_path: String,
    #[serde(default)]
    interval_secs: Option<i64>,
    #[serde(default)]
    lag_alert_hours: Option<f64>,
    #[serde(default)]
    notify_token: String,
    #[serde(default)]
    notify_aes_key: String,
}

impl WecomBody {
    fn check(self) -> Result<WecomConfig, ApiError> {
        let mut keys = std::collections::BTreeMap::new();
        for (version, pem) in self.private_keys {
            let v: u32 = version.parse().map_err(|_| {
                ApiError::bad_request(format!("private_keys: version {version:?} is not a number"))
            })?;
            keys.insert(v, pem);
        }
        crate::ingest::wecom::KeyRing::parse(&keys)
            .map_err(|e| ApiError::bad_request(format!("private_keys: {e}")))?;
        if self.corpid.trim().is_empty() || self.secret.trim().is_empty() {
            return Err(ApiError::bad_request("corpid and secret are required"));
        }
        let interval = self.interval_secs.unwrap_or(WECOM_INTERVAL_SECS);
        if !(1..=86_400).contains(&interval) {
            return Err(ApiError::bad_request("interval_secs: between 1 and 86400"));
        }
        let lag = self.lag_alert_hours.unwrap_or(6.0);
        if !(lag > 0.0 && lag <= 120.0) {
            return Err(ApiError::bad_request(
                "lag_alert_hours: more than 0 and at most 120 (WeCom keeps 5 days)",
            ));
        }
        if !self.notify_aes_key.is_empty() && self.notify_aes_key.len() != 43 {
            return Err(ApiError::bad_request(
                "notify_aes_key: the EncodingAESKey has 43 characters",
            ));
        }
        Ok(WecomConfig {
            corpid: self.corpid,
            secret: self.secret,
            private_keys: keys,
            sdk_path: self.sdk_path,
            interval_secs: interval,
            lag_alert_secs: (lag * 3600.0) as i64,
            notify_token: self.notify_token,
            notify_aes_key: self.notify_aes_key,
        })
    }
}

/// How often a source is pulled when its settings do not say (WeCom's callback makes it sooner).
pub const WECOM_INTERVAL_SECS: i64 = 60;
