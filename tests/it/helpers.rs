//! Shared test plumbing: run the binary, make scratch stores, dump huixi's tables for comparison.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::Row;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

pub fn sample_archive() -> PathBuf {
    repo().join("samples/archive.jsonl")
}

/// One customer's week: two staff, working hours, a shared phone (`samples/make_journey.py`).
pub fn journey_archive() -> PathBuf {
    repo().join("samples/journey.jsonl")
}

/// Runs `huixi ARGS…` to completion with a clean environment of HUIXI_* variables.
pub fn huixi(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_huixi"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HUIXI_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).output().expect("huixi runs")
}

/// `huixi token create --db DB ARGS…`: the token it printed.
pub fn token(db: &str, args: &[&str]) -> String {
    let mut all = vec!["token", "create", "--db", db];
    all.extend(args);
    stdout_json(&huixi(&all))["token"]
        .as_str()
        .unwrap()
        .to_string()
}

pub fn stdout_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "huixi failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("huixi.db").display())
}

/// Every row of huixi's data tables (not the run log), in a stable order, as text: two equal dumps mean
/// the store was not changed.
pub async fn dump(url: &str) -> Vec<String> {
    let queries = [
        "SELECT tenant, msgid, conversation, msgtime, raw FROM huixi_messages ORDER BY tenant, msgid",
        "SELECT tenant, id, conversation, kind, participants, start_ms, end_ms, message_count, input_hash, result, analysed_at FROM huixi_sessions ORDER BY tenant, id",
        "SELECT tenant, session_id, kind, payload, evidence, analyser FROM huixi_findings ORDER BY tenant, session_id, kind",
        "SELECT id, tenant, session_id, msgid, kind, category, severity, word, text, start_char, end_char, evidence FROM huixi_alerts ORDER BY id",
        "SELECT tenant, conversation, session_id, msgid, staff, day, asked_at, due_at, answered_msgid, answered_at, wait_ms FROM huixi_turns ORDER BY tenant, msgid, staff",
        "SELECT tenant, session_id, staff, day, sent, received, negative, alerts FROM huixi_traffic ORDER BY tenant, session_id, staff, day",
        "SELECT tenant, customer, session_id, contribution FROM huixi_customer_sessions ORDER BY tenant, customer, session_id",
        "SELECT tenant, customer, profile, input_hash, updated_at FROM huixi_customers ORDER BY tenant, customer",
        "SELECT tenant, customer, tag_group, tag, reason, evidence, updated_at FROM huixi_tag_suggestions ORDER BY tenant, customer, tag_group, tag",
    ];
    rows_of(url, &queries).await
}

/// Every row the queries return, in order, each as its cells joined by ` | `.
pub async fn rows_of(url: &str, queries: &[&str]) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect to store");
    let mut rows = Vec::new();
    for q in queries {
        for row in sqlx::query(q).fetch_all(&pool).await.expect(q) {
            let cells: Vec<String> = (0..row.len()).map(|i| cell(&row, i, q)).collect();
            rows.push(cells.join(" | "));
        }
    }
    pool.close().await;
    rows
}

/// A cell of any type as text, for comparing rows (`query` names the query in a failure).
pub fn cell(row: &sqlx::any::AnyRow, i: usize, query: &str) -> String {
    // MySQL hands utf8mb4_bin text over as bytes.
    row.try_get::<String, _>(i)
        .or_else(|_| row.try_get::<i64, _>(i).map(|v| v.to_string()))
        .or_else(|_| row.try_get::<Option<i64>, _>(i).map(|v| format!("{v:?}")))
        .or_else(|_| {
            row.try_get::<Option<String>, _>(i)
                .map(|v| format!("{v:?}"))
        })
        .or_else(|_| {
            row.try_get::<Vec<u8>, _>(i)
                .map(|b| String::from_utf8(b).expect("UTF-8 text"))
        })
        .unwrap_or_else(|e| panic!("{query}: column {i}: {e}"))
}

pub async fn count(url: &str, table: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect to store");
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

/// `huixi` on a blocking thread, so servers the test runs in its own runtime keep answering.
pub async fn huixi_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        huixi(&refs)
    })
    .await
    .unwrap()
}

/// Starts a `huixi serve` command (which should say `--listen 127.0.0.1:0`) and returns the child
/// and the base URL it printed.
pub fn spawn_serve(cmd: &mut Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("serve printed {line:?}"))
        .to_string();
    (child, base)
}

/// A webhook received: its headers, its body, and when it came.
pub type Received =
    std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String, std::time::Instant)>>>;

/// A CRM's webhook receiver that answers 200 to everything: its URL and what it received.
pub async fn receiver() -> (String, Received) {
    let seen: Received = Default::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Received>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    seen.lock()
                        .unwrap()
                        .push((headers, body, std::time::Instant::now()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

/// Polls `check` every 100 ms until it gives a value, failing after `secs` with `what` said.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
