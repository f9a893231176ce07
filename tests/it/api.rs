//! `huixi serve` through real HTTP on a local port, on SQLite and MariaDB: re-analysis round trip,
//! tenant isolation on every route, tokens, bad requests, lexicon hot reload, health and metrics.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::mariadb::Scratch;

/// A running `huixi serve` with tokens for two tenants and an admin, over a store holding the sample.
struct Server {
    child: Child,
    base: String,
    db: String,
    a: String,
    b: String,
    admin: String,
    http: reqwest::Client,
}

impl Server {
    fn start(db: &str) -> Server {
        let sample = sample_archive().display().to_string();
        stdout_json(&huixi(&["enqueue", &sample, "--db", db, "--json"]));
        Server::start_empty(db)
    }

    /// A server over a store with no messages yet; its webhooks may go to this machine's test
    /// receivers.
    fn start_empty(db: &str) -> Server {
        Server::start_with(db, &["--webhook-allow-private"])
    }

    fn start_with(db: &str, extra: &[&str]) -> Server {
        Server::start_env(db, extra, &[])
    }

    fn start_env(db: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let a = token(db, &["--tenant", "default"]);
        let b = token(db, &["--tenant", "other"]);
        let admin = token(db, &["--admin"]);
        let (child, base) = spawn_serve(
            Command::new(env!("CARGO_BIN_EXE_huixi"))
                .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
                .args(extra)
                .envs(env.iter().copied()),
        );
        Server {
            child,
            base,
            db: db.to_string(),
            a,
            b,
            admin,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(token), Some(body.to_string()))
            .await
    }

    /// Waits until the in-process worker has analysed the sample's five sessions.
    async fn wait_for_batch(&self) {
        self.wait_for_sessions(&self.a).await;
    }

    /// Waits until the in-process worker has analysed the sample's five sessions for a token's tenant.
    async fn wait_for_sessions(&self, token: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.get("/v1/sessions", token).await.1["items"]
            .as_array()
            .unwrap()
            .len()
            < 5
        {
            assert!(Instant::now() < deadline, "the batch was not analysed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls a re-analysis job until it finishes.
    async fn wait(&self, job: i64, token: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.get(&format!("/v1/jobs/{job}"), token).await;
            assert_eq!(status, 200, "{body}");
            if body["finished"] == true {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "job {job} did not finish: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn round_trip_and_isolation(db: &str) {
    let s = Server::start(db);
    s.wait_for_batch().await;
    // A manager asks for a customer's sessions to be analysed again.
    let (status, body) = s
        .post("/v1/reanalyze", &s.a, json!({"customer": "wmCustA"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let job = body["job"].as_i64().unwrap();
    assert_eq!(body["conversations"], 1);
    let done = s.wait(job, &s.a).await;
    assert_eq!(done["done"], 1);

    let (status, page) = s.get("/v1/sessions?customer=wmCustA", &s.a).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "customer A has two sessions in the sample");
    for r in items {
        assert!(r["participants"]
            .as_array()
            .unwrap()
            .contains(&json!("wmCustA")));
        assert!(!r["summary"]["evidence"].as_array().unwrap().is_empty());
        assert!(!r["keywords"][0]["evidence"].as_array().unwrap().is_empty());
    }
    let session = items[0]["session"].as_str().unwrap().to_string();
    let (status, one) = s.get(&format!("/v1/sessions/{session}"), &s.a).await;
    assert_eq!(status, 200);
    assert_eq!(one["result"]["session"], session.as_str());
    let (status, alerts) = s.get(&format!("/v1/alerts?session={session}"), &s.a).await;
    assert_eq!(status, 200);
    assert!(alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["session"] == session.as_str()));
    let (_, all_alerts) = s.get("/v1/alerts?severity=high", &s.a).await;
    assert!(!all_alerts["items"].as_array().unwrap().is_empty());

    // Tenant B sees none of it, on every route.
    assert_eq!(s.get(&format!("/v1/jobs/{job}"), &s.b).await.0, 404);
    assert_eq!(s.get(&format!("/v1/sessions/{session}"), &s.b).await.0, 404);
    let (status, page) = s.get("/v1/sessions?customer=wmCustA", &s.b).await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 0));
    let (status, page) = s.get("/v1/alerts", &s.b).await;
    assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 0));
    let (status, _) = s
        .post("/v1/reanalyze", &s.b, json!({"session": session}))
        .await;
    assert_eq!(status, 404);
    // Tokens do what they are for and no more.
    assert_eq!(s.get("/v1/alerts", &s.admin).await.0, 403);
    assert_eq!(
        s.post("/admin/tokens", &s.a, json!({"tenant": "x"}))
            .await
            .0,
        403
    );

    // The CRM's database holds the results, with evidence and the analyser's version.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.db).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM huixi_findings WHERE tenant = 'default' AND session_id = ? AND evidence <> '[]'",
    )
    .bind(&session)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(n >= 4, "findings with evidence for {session}: {n}");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_reanalysis_round_trip_and_tenant_isolation() {
    let dir = tempfile::tempdir().unwrap();
    round_trip_and_isolation(&sqlite_url(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_reanalysis_round_trip_and_tenant_isolation() {
    let scratch = Scratch::new("api").await;
    round_trip_and_isolation(&scratch.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()));
    let (status, made) = s
        .post(
            "/admin/tokens",
            &s.admin,
            json!({"tenant": "default", "label": "crm"}),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let t = made["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/v1/alerts", &t).await.0, 200);
    let id = made["id"].as_i64().unwrap();
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/admin/tokens/{id}"),
            Some(&s.admin),
            None
        )
        .await
        .0,
        204
    );
    let (status, body) = s.get("/v1/alerts", &t).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("revoked"));
    assert_eq!(
        s.call(
            "DELETE",
            &format!("/admin/tokens/{id}"),
            Some(&s.admin),
            None
        )
        .await
        .0,
        404
    );
}

type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<String>,
    u16,
    &'a str,
);

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_a_json_error_and_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()));
    // method, path, token, body, expected status, words the error must contain
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/reanalyze",
            Some(&s.a),
            Some("{not json".into()),
            400,
            "JSON",
        ),
        (
            "POST",
            "/v1/reanalyze",
            Some(&s.a),
            Some("{}".into()),
            400,
            "say which sessions",
        ),
        (
            "POST",
            "/v1/reanalyze",
            Some(&s.a),
            Some(r#"{"customer": 5}"#.into()),
            422,
            "customer",
        ),
        (
            "POST",
            "/v1/reanalyze",
            Some(&s.a),
            Some(r#"{"from": "yesterday"}"#.into()),
            400,
            "RFC 3339",
        ),
        (
            "POST",
            "/v1/reanalyze",
            Some(&s.a),
            Some(format!(r#"{{"customer": "{}"}}"#, "x".repeat(400_000))),
            413,
            "length limit",
        ),
        (
            "GET",
            "/v1/sessions?limit=0",
            Some(&s.a),
            None,
            400,
            "limit",
        ),
        (
            "GET",
            "/v1/alerts?severity=urgent",
            Some(&s.a),
            None,
            400,
            "severity",
        ),
        ("GET", "/v1/sessions", None, None, 401, "Bearer"),
        (
            "GET",
            "/v1/sessions",
            Some("hx_not_a_token"),
            None,
            401,
            "unknown",
        ),
        (
            "GET",
            "/v1/nothing-here",
            Some(&s.a),
            None,
            404,
            "not found",
        ),
    ];
    for (method, path, token, body, want, says) in cases {
        let (status, reply) = s.call(method, path, token, body).await;
        assert_eq!(status, want, "{method} {path}: {reply}");
        let error = reply["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: not a JSON error: {reply}"));
        assert!(error.contains(says), "{method} {path}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_uploaded_lexicon_applies_to_the_next_analysis_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    // Tenant B has the very same messages, so what B is not alerted on is B's lexicon's doing.
    let sample = sample_archive().display().to_string();
    stdout_json(&huixi(&[
        "enqueue", &sample, "--db", &db, "--tenant", "other", "--json",
    ]));
    let s = Server::start(&db);
    s.wait_for_batch().await;
    s.wait_for_sessions(&s.b).await;
    let has = |v: &Value, word: &str| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["word"] == word)
    };
    assert!(!has(&s.get("/v1/alerts?limit=500", &s.a).await.1, "报表"));
    let resp = s
        .http
        .put(format!("{}/v1/lexicon", s.base))
        .header("authorization", format!("Bearer {}", s.a))
        .body("# tenant lexicon\n报表,客诉,medium\n坏行\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["skipped"][0]["line"], 3);
    let (status, req) = s.post("/v1/reanalyze", &s.a, json!({"from": 0})).await;
    assert_eq!(status, 202, "{req}");
    s.wait(req["job"].as_i64().unwrap(), &s.a).await;
    assert!(has(&s.get("/v1/alerts?limit=500", &s.a).await.1, "报表"));
    // Tenant B, analysed again over the same messages, still scans with the starter lexicon: its
    // alerts are the starter lexicon's, and none is A's word.
    let (status, req) = s.post("/v1/reanalyze", &s.b, json!({"from": 0})).await;
    assert_eq!(status, 202, "{req}");
    s.wait(req["job"].as_i64().unwrap(), &s.b).await;
    let b = s.get("/v1/alerts?limit=500", &s.b).await.1;
    assert!(
        !b["items"].as_array().unwrap().is_empty(),
        "B's messages raise the starter lexicon's alerts: {b}"
    );
    assert!(!has(&b, "报表"), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_metrics_and_openapi_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()));
    let (status, h) = s.call("GET", "/healthz", None, None).await;
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")));
    let (status, r) = s.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["store"], "ok");
    s.get("/v1/alerts", &s.a).await;
    let (status, m) = s.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let m = m.as_str().unwrap();
    assert!(
        m.contains("huixi_http_requests_total{route=\"/v1/alerts\",status=\"200\"}"),
        "{m}"
    );
    let (status, doc) = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/reanalyze"]["post"].is_object());
    for (path, method) in [
        ("/v1/customers/{id}", "get"),
        ("/v1/customers/{id}/tags", "get"),
        ("/v1/metrics", "get"),
        ("/v1/duplicates", "get"),
        ("/v1/tag-library", "put"),
        ("/v1/calendar", "put"),
        ("/v1/sessions/{id}/metrics", "get"),
        ("/v1/messages", "post"),
        ("/v1/wecom", "get"),
        ("/v1/media/{msgid}", "get"),
        ("/v1/wecom/notify/{tenant}", "post"),
        ("/admin/tenants/{tenant}/wecom", "put"),
        ("/admin/tenants/{tenant}/webhook/dead", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path} {method}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_are_signed_retried_and_delivered() {
    use axum::http::{HeaderMap, StatusCode};
    use hmac::{Hmac, Mac};
    use std::sync::{Arc, Mutex};

    // A CRM receiver that fails its first request.
    type Seen = Arc<Mutex<Vec<(HeaderMap, String)>>>;
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 headers: HeaderMap,
                 body: String| async move {
                    let mut seen = seen.lock().unwrap();
                    seen.push((headers, body));
                    if seen.len() == 1 {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let s = Server::start_empty(&db);
    let secret = "a-secret-of-the-default-tenant";
    let (status, body) = s
        .call(
            "PUT",
            "/admin/tenants/default/webhook",
            Some(&s.admin),
            Some(json!({"url": hook, "secret": secret}).to_string()),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let sample = sample_archive().display().to_string();
    stdout_json(&huixi(&["enqueue", &sample, "--db", &db, "--json"]));

    // Five sessions analysed, each announced; high alerts each announced; the first try failed.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let got: Vec<(HeaderMap, String)> = seen.lock().unwrap().clone();
        let sessions = got
            .iter()
            .skip(1)
            .filter(|(h, _)| h["x-huixi-event"] == "session.analysed")
            .count();
        // The failed first delivery comes again after its back-off.
        let retried = got.len() > 1
            && got[1..]
                .iter()
                .any(|(h, _)| h["x-huixi-delivery"] == got[0].0["x-huixi-delivery"]);
        if sessions == 5 && retried {
            break got;
        }
        assert!(Instant::now() < deadline, "{} deliveries so far", got.len());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first_id = delivered[0].0["x-huixi-delivery"].clone();
    assert!(
        delivered[1..]
            .iter()
            .any(|(h, _)| h["x-huixi-delivery"] == first_id),
        "the failed delivery was retried"
    );
    // Enqueued messages are scanned as they are stored: their alerts are announced on arrival.
    assert!(delivered
        .iter()
        .any(|(h, _)| h["x-huixi-event"] == "alert.created"));
    for (h, body) in &delivered {
        let ts = h["x-huixi-timestamp"].to_str().unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(h["x-huixi-signature"].to_str().unwrap(), want);
        // The Standard Webhooks headers too: HMAC over "<webhook-id>.<timestamp>.<body>".
        let id = h["webhook-id"].to_str().unwrap();
        assert_eq!(h["webhook-timestamp"].to_str().unwrap(), ts);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{id}.{ts}.{body}").as_bytes());
        use base64::Engine as _;
        let want = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(h["webhook-signature"].to_str().unwrap(), want);
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["tenant"], "default");
    }
    // Delivered means recorded as delivered.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM huixi_outbox WHERE delivered_at IS NULL AND event = 'session.analysed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_metrics_tags_and_settings_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let journey = journey_archive().display().to_string();
    let calendar = repo().join("samples/calendar.toml").display().to_string();
    stdout_json(&huixi(&[
        "analyze",
        &journey,
        "--db",
        &db,
        "--json",
        "--calendar",
        &calendar,
    ]));
    let s = Server::start_empty(&db);

    // No library yet: a profile without tags. Then the CRM uploads its library (WeCom's format).
    let (status, body) = s.get("/v1/customers/wmJourney", &s.a).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"]["stage"], "negotiating");
    assert_eq!(body["profile"]["tags"], json!([]));
    let bad =
        r#"{"tag_group": [{"group_name": "行业", "tag": [{"name": "教育"}, {"name": "教育"}]}]}"#;
    let (status, body) = s
        .call("PUT", "/v1/tag-library", Some(&s.a), Some(bad.into()))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("groups[0].tags[1].name"),
        "{body}"
    );
    let library = json!({"tag_group": [
        {"group_id": "g1", "group_name": "行业", "tag": [
            {"id": "t_edu", "name": "教育", "keywords": ["学校", "培训"]},
            {"id": "t_retail", "name": "零售", "keywords": ["门店"]}]},
        {"group_id": "g2", "group_name": "意向程度", "exclusive": true, "tag": [
            {"id": "t_high", "name": "高", "stages": ["negotiating", "won"]},
            {"id": "t_low", "name": "低", "stages": ["initial_contact"]}]}]});
    let (status, body) = s
        .call(
            "PUT",
            "/v1/tag-library",
            Some(&s.a),
            Some(library.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["groups"].clone(), body["tags"].clone()),
        (json!(2), json!(4))
    );
    let (status, body) = s.get("/v1/customers/wmJourney/tags", &s.a).await;
    assert_eq!(status, 200, "{body}");
    let tags: Vec<(String, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert!(!t["evidence"].as_array().unwrap().is_empty(), "{t}");
            (
                t["tag"].as_str().unwrap().to_string(),
                t["tag_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        [
            ("高".to_string(), "t_high".to_string()),
            ("教育".to_string(), "t_edu".to_string())
        ]
    );

    // Metrics per staff member and day, filtered.
    let (status, body) = s
        .get(
            "/v1/metrics?staff=liuyang&from=2026-11-17&to=2026-11-18",
            &s.a,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let days: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["day"].as_str().unwrap())
        .collect();
    assert_eq!(days, ["2026-11-17", "2026-11-18"]);
    assert_eq!(body["items"][1]["overdue"], 1);
    assert_eq!(s.get("/v1/metrics?from=yesterday", &s.a).await.0, 400);
    let (_, dups) = s.get("/v1/duplicates", &s.a).await;
    let kinds: Vec<&str> = dups["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"same_customer") && kinds.contains(&"same_phone"),
        "{dups}"
    );
    let (_, sessions) = s
        .get("/v1/sessions?customer=wmJourney&limit=50", &s.a)
        .await;
    let first = sessions["items"][0]["session"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, m) = s.get(&format!("/v1/sessions/{first}/metrics"), &s.a).await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["metrics"]["session"], first.as_str());

    // The calendar: refused with the field named, accepted and read back.
    let (status, body) = s
        .call(
            "PUT",
            "/v1/calendar",
            Some(&s.a),
            Some(r#"{"utc_offset": "+8"}"#.into()),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("utc_offset"),
        "{body}"
    );
    let (status, _) = s
        .call(
            "PUT",
            "/v1/calendar",
            Some(&s.a),
            Some(r#"{"reply_within_minutes": 10}"#.into()),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        s.get("/v1/calendar", &s.a).await.1["calendar"]["reply_within_minutes"],
        10
    );

    // Re-analysing the customer recomputes their profile; another tenant sees none of it.
    let (status, body) = s
        .post("/v1/reanalyze", &s.a, json!({"customer": "wmJourney"}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["conversations"], 2, "both staff members' chats");
    s.wait(body["job"].as_i64().unwrap(), &s.a).await;
    let (status, body) = s.get("/v1/customers/wmJourney", &s.a).await;
    assert_eq!(status, 200);
    assert_eq!(body["profile"]["sessions"], 7);
    for path in [
        "/v1/customers/wmJourney",
        "/v1/customers/wmJourney/tags",
        &format!("/v1/sessions/{first}/metrics"),
    ] {
        assert_eq!(s.get(path, &s.b).await.0, 404, "{path}");
    }
    assert_eq!(s.get("/v1/metrics", &s.b).await.1["items"], json!([]));
    assert_eq!(s.get("/v1/duplicates", &s.b).await.1["items"], json!([]));
}

/// A webhook URL that is, or names, an internal address is refused when set, in every spelling; a
/// public one is taken.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_to_internal_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let s = Server::start_with(&db, &[]);
    let put = |url: &str| {
        let body = json!({"url": url, "secret": "0123456789abcdef"}).to_string();
        let s = &s;
        async move {
            s.call(
                "PUT",
                "/admin/tenants/default/webhook",
                Some(&s.admin),
                Some(body),
            )
            .await
        }
    };
    for url in [
        "http://127.0.0.1:3306/",
        "http://localhost:5672/",
        "http://[::1]:8080/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
    ] {
        let (status, body) = put(url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("url"),
            "{url}: {body}"
        );
    }
    let (status, body) = put("https://crm.example.com/hooks/huixi").await;
    assert_eq!(status, 204, "{body}");
}

/// A receiver that stalls holds back its own tenant's events only; and two replicas delivering from
/// one store send each event once.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_receiver_delays_only_its_tenant_and_replicas_send_each_event_once() {
    use axum::http::{HeaderMap, StatusCode};
    use std::sync::{Arc, Mutex};

    type Seen = Arc<Mutex<Vec<String>>>;
    async fn receiver(stall: Duration) -> (String, Seen) {
        let seen: Seen = Arc::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    move |axum::extract::State(seen): axum::extract::State<Seen>,
                          headers: HeaderMap| async move {
                        tokio::time::sleep(stall).await;
                        let id = headers["x-huixi-delivery"].to_str().unwrap().to_string();
                        seen.lock().unwrap().push(id);
                        StatusCode::OK
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }
    let (slow_url, slow) = receiver(Duration::from_secs(4)).await;
    let (fast_url, fast) = receiver(Duration::ZERO).await;

    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let s = Server::start_empty(&db);
    // A second replica over the same store, delivering too.
    let _replica = Server::start_with(&db, &["--webhook-allow-private", "--no-worker"]);
    for (tenant, url) in [("default", &slow_url), ("other", &fast_url)] {
        let body = json!({"url": url, "secret": "0123456789abcdef"}).to_string();
        let path = format!("/admin/tenants/{tenant}/webhook");
        let (status, b) = s.call("PUT", &path, Some(&s.admin), Some(body)).await;
        assert_eq!(status, 204, "{b}");
    }
    let sample = sample_archive().display().to_string();
    for tenant in ["default", "other"] {
        stdout_json(&huixi(&[
            "enqueue", &sample, "--db", &db, "--tenant", tenant, "--json",
        ]));
    }
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let events = |tenant: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM huixi_outbox WHERE tenant = ?")
                .bind(tenant)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // Once the analysis is done (the queue empty, and a fold's round after it), every event the
    // fast tenant will get is in the outbox.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM huixi_jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
        if waiting == 0 && events("other").await >= 5 && events("default").await >= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "sessions analysed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let total_fast = events("other").await as usize;
    let started = Instant::now();
    while fast.lock().unwrap().len() < total_fast {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "the fast tenant's {total_fast} events wait behind the stalled receiver: {} delivered",
            fast.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let slow_events = events("default").await as usize;
    let slow_seen = slow.lock().unwrap().len();
    assert!(
        slow_seen < slow_events,
        "the stalled tenant is still being served, one request at a time"
    );
    // Each event once, across the two replicas.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids = fast.lock().unwrap().clone();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "an event was delivered twice");
    assert_eq!(n, events("other").await as usize, "every event delivered");
}

/// The API never revokes the last active admin token: that would lock every administrator out.
#[tokio::test(flavor = "multi_thread")]
async fn the_last_admin_token_cannot_be_revoked_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let s = Server::start_empty(&db);
    let admin_ids = |db: String| async move {
        rows_of(
            &db,
            &["SELECT id FROM huixi_tokens WHERE admin <> 0 AND revoked_at IS NULL ORDER BY id"],
        )
        .await
    };
    let first = admin_ids(db.clone()).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let first_id = first[0].trim().to_string();
    let revoke = |id: String, token: String| {
        let s = &s;
        async move {
            s.call("DELETE", &format!("/admin/tokens/{id}"), Some(&token), None)
                .await
        }
    };
    let (status, body) = revoke(first_id.clone(), s.admin.clone()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(s.get("/healthz", &s.admin).await.0, 200);
    // With a second admin token, the first can go; the second, now the last, cannot.
    let second = stdout_json(&huixi(&["token", "create", "--admin", "--db", &db]));
    let second_token = second["token"].as_str().unwrap().to_string();
    let (status, body) = revoke(first_id, second_token.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = revoke(second["id"].to_string(), second_token.clone()).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = s
        .post("/admin/tokens", &second_token, json!({"tenant": "x"}))
        .await;
    assert_eq!(status, 201, "the last admin still works");
}

/// A client that sends its body a byte at a time does not hold the connection for ever.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_trickled_slower_than_the_deadline_gets_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let s = Server::start_with(&db, &["--request-timeout-secs", "1"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "PUT /v1/lexicon HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n词",
        s.a
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut response)).await;
    assert!(read.is_ok(), "the server still waits after 10 s");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// With HUIXI_MASTER_KEY, a webhook secret is stored sealed and deliveries are still signed with it.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_secrets_are_sealed_at_rest_with_the_master_key() {
    use hmac::{Hmac, Mac};
    let (hook, seen) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let key = "8f".repeat(32);
    let s = Server::start_env(
        &db,
        &["--webhook-allow-private"],
        &[("HUIXI_MASTER_KEY", &key)],
    );
    let secret = "whsec-never-in-the-database";
    let body = json!({"url": hook, "secret": secret}).to_string();
    let (status, b) = s
        .call(
            "PUT",
            "/admin/tenants/default/webhook",
            Some(&s.admin),
            Some(body),
        )
        .await;
    assert_eq!(status, 204, "{b}");
    let stored = rows_of(&db, &["SELECT secret FROM huixi_webhooks"]).await;
    assert!(
        stored[0].starts_with("enc:v1:") && !stored[0].contains("never"),
        "{stored:?}"
    );
    let sample = sample_archive().display().to_string();
    stdout_json(&huixi(&["enqueue", &sample, "--db", &db, "--json"]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (h, body, _) = seen.lock().unwrap()[0].clone();
    let ts = h["x-huixi-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(h["x-huixi-signature"].to_str().unwrap(), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(&sqlite_url(dir.path()), &["--header-timeout-secs", "1"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    /// Reads until the server closes the connection; what it sent, or None if it kept it open 6 s.
    async fn until_closed(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            }
        }
    }
    // A connection that never sends a request.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        until_closed(&mut silent).await.is_some(),
        "a silent connection stays open"
    );
    // Headers trickled and never finished.
    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    assert!(
        until_closed(&mut trickle).await.is_some(),
        "half a request head holds the connection"
    );
    // A kept-alive connection, idle after its answer.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = until_closed(&mut idle)
        .await
        .expect("an idle kept-alive connection is closed");
    assert!(
        String::from_utf8_lossy(&answered).starts_with("HTTP/1.1 200"),
        "answered first"
    );
    // And the server still serves.
    let (status, _) = s.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200);
}

/// An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes a null type, so that a validator
/// reads it as the spec means it.
fn json_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| (k.clone(), json_schema(v)))
                .collect();
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = map.get("type") {
                    out.insert("type".into(), json!([t, "null"]));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(json_schema).collect()),
        other => other.clone(),
    }
}

/// Real answers of the server, errors included, each checked against what `/openapi.json` says
/// of its route, method and status: the status is documented, and a JSON body fits its schema.
#[tokio::test(flavor = "multi_thread")]
async fn real_responses_match_the_openapi_document() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()));
    s.wait_for_batch().await;
    let (_, doc) = s.call("GET", "/openapi.json", None, None).await;
    let components = json_schema(&doc["components"]);
    let (_, sessions) = s.get("/v1/sessions", &s.a).await;
    let session = sessions["items"][0]["session"]
        .as_str()
        .unwrap()
        .to_string();
    let customer = "wmCustA";
    // Profiles are folded after their sessions are committed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.get(&format!("/v1/customers/{customer}"), &s.a).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the profile of {customer} was not folded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, queued) = s
        .post("/v1/reanalyze", &s.a, json!({"session": session}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let job = queued["job"].as_i64().unwrap();
    let (_, calendar) = s.get("/v1/calendar", &s.a).await;
    let calendar = calendar["calendar"].clone();
    let line = json!({"msgid": "spec-1", "action": "send", "from": "wmX", "tolist": ["staff1"],
        "roomid": "", "msgtime": 1_795_136_400_000_i64, "msgtype": "text", "text": {"content": "你好"}});
    // (route as the spec names it, method, path called, token, body, status expected)
    let a = Some(s.a.as_str());
    let admin = Some(s.admin.as_str());
    type Case<'a> = (
        &'a str,
        &'a str,
        String,
        Option<&'a str>,
        Option<String>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "/v1/sessions",
            "get",
            "/v1/sessions?limit=2".into(),
            a,
            None,
            200,
        ),
        (
            "/v1/sessions",
            "get",
            "/v1/sessions".into(),
            None,
            None,
            401,
        ),
        (
            "/v1/sessions",
            "get",
            "/v1/sessions".into(),
            admin,
            None,
            403,
        ),
        (
            "/v1/sessions/{id}",
            "get",
            format!("/v1/sessions/{session}"),
            a,
            None,
            200,
        ),
        (
            "/v1/sessions/{id}",
            "get",
            "/v1/sessions/s_nope".into(),
            a,
            None,
            404,
        ),
        (
            "/v1/sessions/{id}/metrics",
            "get",
            format!("/v1/sessions/{session}/metrics"),
            a,
            None,
            200,
        ),
        (
            "/v1/alerts",
            "get",
            "/v1/alerts?limit=3".into(),
            a,
            None,
            200,
        ),
        (
            "/v1/alerts",
            "get",
            "/v1/alerts?severity=urgent".into(),
            a,
            None,
            400,
        ),
        (
            "/v1/reanalyze",
            "post",
            "/v1/reanalyze".into(),
            a,
            Some(json!({"session": session}).to_string()),
            202,
        ),
        (
            "/v1/reanalyze",
            "post",
            "/v1/reanalyze".into(),
            a,
            Some("{".into()),
            400,
        ),
        ("/v1/settings", "get", "/v1/settings".into(), a, None, 200),
        ("/v1/agents", "get", "/v1/agents".into(), a, None, 200),
        (
            "/v1/customers/{id}",
            "get",
            format!("/v1/customers/{customer}"),
            a,
            None,
            200,
        ),
        (
            "/v1/customers/{id}",
            "get",
            "/v1/customers/wmNobody".into(),
            a,
            None,
            404,
        ),
        (
            "/v1/duplicates",
            "get",
            "/v1/duplicates".into(),
            a,
            None,
            200,
        ),
        ("/v1/metrics", "get", "/v1/metrics".into(), a, None, 200),
        (
            "/v1/messages",
            "post",
            "/v1/messages".into(),
            a,
            Some(format!("{line}\nnot json\n")),
            200,
        ),
        ("/v1/wecom", "get", "/v1/wecom".into(), a, None, 404),
        (
            "/v1/media/{msgid}",
            "get",
            "/v1/media/spec-1".into(),
            a,
            None,
            404,
        ),
        (
            "/admin/tenants/{tenant}/webhook/dead",
            "get",
            "/admin/tenants/default/webhook/dead".into(),
            admin,
            None,
            200,
        ),
        (
            "/admin/tenants/{tenant}/webhook",
            "put",
            "/admin/tenants/default/webhook".into(),
            admin,
            Some(json!({"url": "http://127.0.0.1:9/h", "secret": "short"}).to_string()),
            400,
        ),
        (
            "/admin/tokens",
            "post",
            "/admin/tokens".into(),
            admin,
            Some(json!({"tenant": "other"}).to_string()),
            201,
        ),
        ("/v1/consents", "get", "/v1/consents".into(), a, None, 200),
        ("/v1/consents", "get", "/v1/consents?state=maybe".into(), a, None, 400),
        ("/v1/jobs/{id}", "get", format!("/v1/jobs/{job}"), a, None, 200),
        ("/v1/jobs/{id}", "get", "/v1/jobs/999999".into(), a, None, 404),
        ("/v1/jobs/{id}", "get", "/v1/jobs/abc".into(), a, None, 400),
        ("/v1/lexicon", "get", "/v1/lexicon".into(), a, None, 200),
        (
            "/v1/lexicon",
            "put",
            "/v1/lexicon".into(),
            a,
            Some("加我微信,引流,high\nbad line\n".into()),
            200,
        ),
        ("/v1/whitelist", "get", "/v1/whitelist".into(), a, None, 200),
        (
            "/v1/whitelist",
            "put",
            "/v1/whitelist".into(),
            a,
            Some("微信支付\n".into()),
            200,
        ),
        (
            "/v1/customers/{id}/tags",
            "get",
            format!("/v1/customers/{customer}/tags"),
            a,
            None,
            200,
        ),
        (
            "/v1/tag-library",
            "put",
            "/v1/tag-library".into(),
            a,
            Some(json!({"groups": [{"name": "意向", "tags": [{"name": "报价", "keywords": ["报价"]}]}]}).to_string()),
            200,
        ),
        ("/v1/tag-library", "put", "/v1/tag-library".into(), a, Some("{".into()), 400),
        ("/v1/calendar", "get", "/v1/calendar".into(), a, None, 200),
        (
            "/v1/calendar",
            "put",
            "/v1/calendar".into(),
            a,
            Some(calendar.to_string()),
            200,
        ),
        ("/v1/calendar", "put", "/v1/calendar".into(), a, Some("[]".into()), 400),
        ("/v1/settings", "put", "/v1/settings".into(), a, Some("{}".into()), 200),
        (
            "/v1/settings",
            "put",
            "/v1/settings".into(),
            a,
            Some(json!({"idle_gap_minutes": -1}).to_string()),
            400,
        ),
        ("/v1/agents/{name}", "get", "/v1/agents/emotion".into(), a, None, 200),
        ("/v1/agents/{name}", "get", "/v1/agents/nope".into(), a, None, 404),
        (
            "/v1/agents/{name}",
            "put",
            "/v1/agents/emotion".into(),
            a,
            Some(json!({"temperature": 0.1}).to_string()),
            200,
        ),
        (
            "/v1/agents/{name}",
            "put",
            "/v1/agents/emotion".into(),
            a,
            Some(json!({"temperature": "hot"}).to_string()),
            400,
        ),
        ("/v1/agents/{name}", "delete", "/v1/agents/emotion".into(), a, None, 204),
        ("/v1/agents/{name}", "delete", "/v1/agents/emotion".into(), a, None, 404),
        ("/v1/kb/documents", "get", "/v1/kb/documents".into(), a, None, 200),
        (
            "/v1/kb/documents/{name}",
            "put",
            "/v1/kb/documents/faq.md".into(),
            a,
            Some("# 退款\n七天无理由退款".into()),
            201,
        ),
        (
            "/v1/kb/documents/{name}",
            "put",
            "/v1/kb/documents/faq.pdf".into(),
            a,
            Some("x".into()),
            400,
        ),
        ("/v1/kb/documents/{name}", "get", "/v1/kb/documents/faq.md".into(), a, None, 200),
        ("/v1/kb/documents/{name}", "get", "/v1/kb/documents/none.md".into(), a, None, 404),
        // This server has no knowledge base (no --data-dir): searching is unavailable.
        ("/v1/kb/search", "get", "/v1/kb/search?q=退款".into(), a, None, 503),
        ("/v1/kb/search", "get", "/v1/kb/search".into(), a, None, 400),
        ("/v1/kb/documents/{name}", "delete", "/v1/kb/documents/faq.md".into(), a, None, 200),
        ("/v1/kb/documents/{name}", "delete", "/v1/kb/documents/faq.md".into(), a, None, 404),
        (
            "/v1/wecom/notify/{tenant}",
            "get",
            "/v1/wecom/notify/default?echostr=x".into(),
            None,
            None,
            404,
        ),
        (
            "/v1/wecom/notify/{tenant}",
            "post",
            "/v1/wecom/notify/default".into(),
            None,
            Some("<xml></xml>".into()),
            404,
        ),
        (
            "/admin/tenants/{tenant}/wecom",
            "put",
            "/admin/tenants/default/wecom".into(),
            admin,
            Some(json!({"corpid": "ww1", "secret": "s", "private_keys": {"v1": "pem"}}).to_string()),
            400,
        ),
        (
            "/admin/tenants/{tenant}/webhook/dead/redeliver",
            "post",
            "/admin/tenants/default/webhook/dead/redeliver".into(),
            admin,
            None,
            200,
        ),
        ("/admin/tokens/{id}", "delete", "/admin/tokens/999999".into(), admin, None, 404),
        ("/metrics", "get", "/metrics".into(), None, None, 200),
        ("/openapi.json", "get", "/openapi.json".into(), None, None, 200),
        ("/healthz", "get", "/healthz".into(), None, None, 200),
        ("/readyz", "get", "/readyz".into(), None, None, 200),
    ];
    // A method a route lacks is a JSON error too, though no operation describes it.
    let (status, body) = s.call("DELETE", "/healthz", None, None).await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string(), "{body}");
    // Every operation the document describes is called at least once.
    let called: std::collections::BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.0.to_string(), c.1.to_string()))
        .collect();
    let mut described = std::collections::BTreeSet::new();
    for (route, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                described.insert((route.clone(), method.to_string()));
            }
        }
    }
    let uncalled: Vec<_> = described.difference(&called).collect();
    assert!(
        uncalled.is_empty(),
        "operations no case calls: {uncalled:?}"
    );
    let undescribed: Vec<_> = called.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "operations the document lacks: {undescribed:?}"
    );
    let mut failures = Vec::new();
    for (route, method, path, token, body, want) in cases {
        let (status, value) = s.call(&method.to_uppercase(), &path, token, body).await;
        let what = format!("{} {path} → {status}", method.to_uppercase());
        if status != want {
            failures.push(format!("{what}: expected {want}: {value}"));
            continue;
        }
        let Some(response) = doc["paths"][route][method]["responses"].get(status.to_string())
        else {
            failures.push(format!("{what}: status not in the document"));
            continue;
        };
        if let Some(schema) = response.pointer("/content/application~1json/schema") {
            let mut root = json_schema(schema);
            root.as_object_mut()
                .unwrap()
                .insert("components".into(), components.clone());
            let validator = jsonschema::validator_for(&root).unwrap();
            for e in validator.iter_errors(&value) {
                failures.push(format!("{what}: {e} at {}", e.instance_path()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the check bites: a page whose items are not sessions does not pass.
    let schema = &doc["paths"]["/v1/sessions"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    let mut root = json_schema(schema);
    root.as_object_mut()
        .unwrap()
        .insert("components".into(), components.clone());
    let validator = jsonschema::validator_for(&root).unwrap();
    assert!(!validator.is_valid(&json!({"items": [{"session": 5}], "limit": 1, "offset": 0})));
    assert!(!validator.is_valid(&json!({"items": [], "limit": "one", "offset": 0})));
}
