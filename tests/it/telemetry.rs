//! Traces reach an OpenTelemetry collector over OTLP/HTTP when one is configured.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_to_the_configured_collector() {
    type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    let kind = headers["content-type"].to_str().unwrap().to_string();
                    seen.lock().unwrap().push((kind, body.to_vec()));
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let out = huixi_async(vec![
        "analyze".into(),
        sample_archive().display().to_string(),
        "--db".into(),
        sqlite_url(dir.path()),
        "--otlp-endpoint".into(),
        collector,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The exporter flushes before the process exits.
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "no OTLP request");
    let all: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(seen.iter().all(|(k, _)| k == "application/x-protobuf"));
    let has = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("huixi"), "service name");
    assert!(has("analyze_conversation"), "the pipeline's span");
    assert!(has("wrSampleRoom"), "span fields: the conversation");
}
