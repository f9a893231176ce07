//! `huixi serve`: the HTTP API the CRM's admin UI calls (axum), and the worker pool in the same process
//! unless told otherwise, so one process is a whole deployment on the embedded defaults.
//!
//! Routes (all JSON; `openapi.json` describes them):
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
use axum::routing::{delete, get, post, put};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

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
    let uploads = Router::new()
        .route(
            "/v1/lexicon",
            get(settings::lexicon).put(routes::put_lexicon),
        )
        .route(
            "/v1/whitelist",
            get(settings::whitelist).put(routes::put_whitelist),
        )
        .route(
            "/v1/agents/{name}",
            get(settings::agent)
                .put(settings::put_agent)
                .delete(settings::delete_agent),
        )
        .route("/v1/tag-library", put(customers::put_tag_library))
        .route("/v1/messages", post(ingest::post_messages))
        .route(
            "/v1/kb/documents/{name}",
            get(kb::document)
                .put(kb::put_document)
                .delete(kb::delete_document),
        )
        .layer(DefaultBodyLimit::max(LEXICON_LIMIT));
    Router::new()
        .route("/v1/reanalyze", post(routes::reanalyze))
        .route("/v1/jobs/{id}", get(routes::job))
        .route("/v1/sessions", get(routes::sessions))
        .route("/v1/sessions/{id}", get(routes::session))
        .route("/v1/sessions/{id}/metrics", get(customers::session_metrics))
        .route("/v1/alerts", get(routes::alerts))
        .route(
            "/v1/settings",
            get(settings::settings).put(settings::put_settings),
        )
        .route("/v1/agents", get(settings::agents))
        .route("/v1/customers/{id}", get(customers::customer))
        .route("/v1/customers/{id}/tags", get(customers::customer_tags))
        .route("/v1/duplicates", get(customers::duplicates))
        .route("/v1/metrics", get(customers::metrics))
        .route("/v1/kb/documents", get(kb::documents))
        .route("/v1/kb/search", get(kb::search))
        .route(
            "/v1/calendar",
            get(customers::calendar).put(customers::put_calendar),
        )
        .route("/admin/tokens", post(routes::create_token))
        .route("/admin/tokens/{id}", delete(routes::revoke_token))
        .route("/admin/tenants/{tenant}/webhook", put(routes::put_webhook))
        .route(
            "/admin/tenants/{tenant}/webhook/dead",
            get(routes::dead_events),
        )
        .route(
            "/admin/tenants/{tenant}/webhook/dead/redeliver",
            post(routes::redeliver_dead),
        )
        .route("/admin/tenants/{tenant}/wecom", put(ingest::put_wecom))
        .route("/v1/wecom", get(ingest::get_wecom))
        .route("/v1/media/{msgid}", get(ingest::media))
        .route(
            "/v1/wecom/notify/{tenant}",
            get(ingest::verify_notify_url).post(ingest::notify),
        )
        .route("/healthz", get(routes::health))
        .route("/readyz", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .merge(uploads)
        // A route layer, so the matched route (not the raw path, which holds ids) labels the metrics.
        .route_layer(axum::middleware::from_fn(observe))
        .fallback(routes::fallback)
        .layer(axum::middleware::from_fn_with_state(
            state.request_timeout,
            deadline,
        ))
        .with_state(state)
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
