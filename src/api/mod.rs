//! `huixi serve`: the HTTP API the CRM's admin UI calls (axum), and the worker pool in the same process
//! unless told otherwise, so one process is a whole deployment on the embedded defaults.
//!
//! Routes (all JSON; `/openapi.json` describes them, generated from the handlers by [`doc`]):
//! - tenant token: `POST /v1/reanalyze`, `GET /v1/jobs/{id}`, `GET /v1/sessions`, `GET /v1/sessions/{id}`,
//!   `GET /v1/sessions/{id}/metrics`, `GET /v1/alerts`, `GET|PUT /v1/settings`, `GET|PUT /v1/lexicon`, `GET|PUT /v1/whitelist`,
//!   `GET /v1/agents`, `GET|PUT|DELETE /v1/agents/{name}`,
//!   `GET /v1/customers/{id}`, `GET /v1/customers/{id}/tags`, `GET /v1/duplicates`, `GET /v1/metrics`,
//!   `PUT /v1/tag-library`, `GET|PUT /v1/calendar`, `GET /v1/kb/documents`,
//!   `GET|PUT|DELETE /v1/kb/documents/{name}`, `GET /v1/kb/search`;
//! - admin token: `POST /admin/tokens`, `DELETE /admin/tokens/{id}`, `PUT /admin/tenants/{t}/webhook`;
//! - open: `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus), `GET /openapi.json`.

mod auth;
mod customers;
mod doc;
mod error;
mod ingest;
pub mod kb;
mod routes;
mod settings;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::new_token;
pub use ingest::WECOM_INTERVAL_SECS;

use crate::queue::Queue;
use crate::worker::Context;

/// JSON bodies are small; lexicon uploads and message batches may be large.
const JSON_LIMIT: usize = 256 * 1024;
const LEXICON_LIMIT: usize = crate::ingest::MAX_BODY_BYTES;

#[derive(Clone)]
pub struct AppState {
    pub ctx: Arc<Context>,
    pub queue: Arc<Queue>,
    pub metrics: PrometheusHandle,
    /// Webhooks may go to loopback and private addresses (development and tests only).
    pub allow_private_webhooks: bool,
    /// How long a request may take, reading its body included.
    pub request_timeout: std::time::Duration,
}

pub fn router(state: AppState) -> Router {
    let (served, _) = routes_described().split_for_parts();
    served
        // A route layer, so the matched route (not the raw path, which holds ids) labels the metrics.
        .route_layer(axum::middleware::from_fn(observe))
        .fallback(routes::fallback)
        .layer(axum::middleware::from_fn(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            deadline,
        ))
        .with_state(state)
}

/// Every error answer is `{"error": "…"}`, including those axum makes itself before a handler runs
/// — a path parameter that does not parse (plain text), a method the route lacks (405, empty).
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return response;
    }
    // Such bodies are a line of axum's; anything longer is cut, not buffered whole.
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    } else {
        text
    };
    axum::response::IntoResponse::into_response(error::ApiError::new(status, message))
}

/// Every route with its description ([`doc`]); the uploads may be larger than JSON bodies.
fn routes_described() -> OpenApiRouter<AppState> {
    let uploads = OpenApiRouter::new()
        .routes(routes!(settings::lexicon, routes::put_lexicon))
        .routes(routes!(settings::whitelist, routes::put_whitelist))
        .routes(routes!(
            settings::agent,
            settings::put_agent,
            settings::delete_agent
        ))
        .routes(routes!(customers::put_tag_library))
        .routes(routes!(ingest::post_messages))
        .routes(routes!(kb::document, kb::put_document, kb::delete_document))
        .layer(DefaultBodyLimit::max(LEXICON_LIMIT));
    OpenApiRouter::with_openapi(<doc::ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(routes::reanalyze))
        .routes(routes!(routes::job))
        .routes(routes!(routes::sessions))
        .routes(routes!(routes::session))
        .routes(routes!(customers::session_metrics))
        .routes(routes!(routes::alerts))
        .routes(routes!(settings::settings, settings::put_settings))
        .routes(routes!(settings::agents))
        .routes(routes!(customers::customer))
        .routes(routes!(customers::customer_tags))
        .routes(routes!(customers::duplicates))
        .routes(routes!(customers::consents))
        .routes(routes!(customers::metrics))
        .routes(routes!(kb::documents))
        .routes(routes!(kb::search))
        .routes(routes!(customers::calendar, customers::put_calendar))
        .routes(routes!(routes::create_token))
        .routes(routes!(routes::revoke_token))
        .routes(routes!(routes::put_webhook))
        .routes(routes!(routes::dead_events))
        .routes(routes!(routes::redeliver_dead))
        .routes(routes!(ingest::put_wecom))
        .routes(routes!(ingest::get_wecom))
        .routes(routes!(ingest::media))
        .routes(routes!(ingest::verify_notify_url, ingest::notify))
        .routes(routes!(routes::health))
        .routes(routes!(routes::ready))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::openapi))
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .merge(uploads)
}

/// A request, body included, gets `limit`: a client that trickles its upload a byte at a time would
/// otherwise hold a connection and its buffer open for as long as it likes.
async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => axum::response::IntoResponse::into_response(error::ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {limit:?}, body included"),
        )),
    }
}

/// Request counts and latency per route, and a log line per request.
async fn observe(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let span = tracing::info_span!("http", %method, %route);
    let response = tracing::Instrument::instrument(next.run(req), span).await;
    let status = response.status().as_u16().to_string();
    let secs = started.elapsed().as_secs_f64();
    metrics::counter!("huixi_http_requests_total", "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("huixi_http_request_seconds", "route" => route.clone()).record(secs);
    tracing::info!(%method, %route, %status, ms = (secs * 1e3) as u64, "http");
    response
}

/// Serves until SIGTERM or Ctrl-C, then lets requests in progress finish (up to
/// [`DRAIN`]). Each connection is hyper's own, so that a client that opens a connection and sends
/// no request, or trickles its headers, is closed after `header_timeout` — also between the
/// requests of a kept-alive connection — instead of holding a socket for as long as it likes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    header_timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let webhooks = tokio::spawn(crate::webhook::deliver_forever(
        state.ctx.store.clone(),
        state.allow_private_webhooks,
    ));
    let app = router(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = crate::worker::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => tracing::warn!("requests still running after {DRAIN:?}: closed"),
    }
    webhooks.abort();
    Ok(())
}

/// How long a shutdown waits for requests in progress.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);
