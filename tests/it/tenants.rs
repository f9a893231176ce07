//! One deployment, many tenants: each tenant's settings, uploaded through the API, are what its
//! analysis uses — on `serve`'s own pool over SQLite, and on a standalone worker over RabbitMQ and
//! MariaDB, which never heard of either tenant when it started. The two tenants get the same messages,
//! so every difference in their results is their configuration's doing.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::mock_llm::{schema_name, system_text, user_text, Behaviour, Mock};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

struct Serve {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Serve {
    fn start(args: &[String]) -> Serve {
        let (child, base) = spawn_serve(
            Command::new(env!("CARGO_BIN_EXE_huixi"))
                .args(["serve", "--listen", "127.0.0.1:0"])
                .args(args),
        );
        Serve {
            child,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn put(&self, path: &str, token: &str, body: &str) -> Value {
        let (status, v) = self.call("PUT", path, token, Some(body.to_string())).await;
        assert!(status == 200 || status == 201, "PUT {path}: {status} {v}");
        v
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, token, None).await
    }

    async fn sessions(&self, token: &str) -> usize {
        self.get("/v1/sessions", token).await.1["items"]
            .as_array()
            .map_or(0, Vec::len)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One chat, the same for both tenants but for the ids: a word of each tenant's lexicon, a competitor
/// of each tenant's list, a transfer of 500 yuan and a red packet of 50.
fn archive(dir: &std::path::Path, tenant: &str) -> String {
    let (cust, staff) = (format!("wm{tenant}Cust"), format!("{tenant}staff"));
    let t0 = 1_795_136_400_000_i64;
    let text = |id: &str, from: &str, to: &str, at: i64, content: &str| {
        json!({"msgid": format!("{tenant}_{id}"), "action": "send", "from": from, "tolist": [to],
               "roomid": "", "msgtime": at, "msgtype": "text", "text": {"content": content}})
    };
    let lines = [
        text(
            "1",
            &cust,
            &staff,
            t0,
            "你好，暗号甲和暗号乙是什么意思？我在比较竞品甲和竞品乙",
        ),
        text("2", &staff, &cust, t0 + 60_000, "我先转账500元给你做定金"),
        json!({"msgid": format!("{tenant}_3"), "action": "send", "from": staff, "tolist": [cust],
               "roomid": "", "msgtime": t0 + 120_000, "msgtype": "redpacket",
               "redpacket": {"type": 1, "wish": "恭喜", "totalcnt": 1, "totalamount": 5000}}),
        text("4", &cust, &staff, t0 + 180_000, "好的，谢谢"),
    ];
    let path = dir.join(format!("{tenant}.jsonl"));
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

fn words(alerts: &Value) -> Vec<String> {
    alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["word"].as_str().map(str::to_string))
        .collect()
}

fn kinds(alerts: &Value) -> Vec<String> {
    alerts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The mock's requests for one agent whose conversation belongs to `tenant`.
fn requests(mock: &Mock, agent: &str, tenant: &str) -> Vec<Value> {
    mock.bodies()
        .into_iter()
        .filter(|b| schema_name(b) == agent && user_text(b).contains(&format!("{tenant}_1")))
        .collect()
}

async fn two_tenants(db: &str, broker: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let mock = Mock::start(Behaviour::Valid).await;
    let (a, b) = (
        token(db, &["--tenant", "acme"]),
        token(db, &["--tenant", "bolt"]),
    );
    let mut common: Vec<String> = vec![
        "--db".into(),
        db.into(),
        "--llm-base-url".into(),
        mock.base_url(),
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
    ];
    if let Some(queue) = broker {
        common.extend(["--amqp".into(), AMQP.into(), "--queue".into(), queue.into()]);
    }
    let mut serve_args = common.clone();
    if broker.is_some() {
        serve_args.push("--no-worker".into());
    }
    let s = Serve::start(&serve_args);

    // Each tenant's administrator configures it through the API.
    s.put("/v1/lexicon", &a, "暗号甲,私单,high\n").await;
    s.put("/v1/lexicon", &b, "暗号乙,私单,high\n").await;
    s.put(
        "/v1/settings",
        &a,
        r#"{"competitors": [{"name": "竞品甲", "aliases": ["JPA"]}], "transfer_threshold_yuan": 100, "redpacket_threshold_yuan": 10}"#,
    )
    .await;
    s.put(
        "/v1/settings",
        &b,
        r#"{"competitors": [{"name": "竞品乙"}]}"#,
    )
    .await;
    let agent = s
        .put(
            "/v1/agents/summary",
            &a,
            r#"{"prompt_template": "ACME专用摘要：概括客户诉求，evidence 列出关键消息 id。", "temperature": 0.2}"#,
        )
        .await;
    assert_eq!(agent["temperature"], 0.2, "{agent}");
    // Knowledge-base documents, each tenant its own.
    s.put(
        "/v1/kb/documents/compare.md",
        &a,
        "# 竞品甲对比\n\nACME资料：竞品甲的价格高于我们，售后慢，合同要盯紧。\n",
    )
    .await;
    s.put(
        "/v1/kb/documents/compare.md",
        &b,
        "# 竞品乙对比\n\nBOLT资料：竞品乙功能少，但便宜。\n",
    )
    .await;

    // The same chat for both, queued as a CRM's batch would be.
    for (tenant, token) in [("acme", &a), ("bolt", &b)] {
        let file = archive(dir.path(), tenant);
        let mut args = vec![
            "enqueue".to_string(),
            file,
            "--tenant".into(),
            tenant.into(),
        ];
        args.extend(common.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = huixi(&refs);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = token;
    }
    if broker.is_some() {
        // A standalone worker that was told nothing about either tenant, with a data directory of
        // its own: what it knows of the tenants' knowledge bases it builds from the store.
        let mut args = vec!["worker".to_string(), "--drain".into()];
        args.extend(common.iter().cloned());
        let data = args.iter().position(|a| a == "--data-dir").unwrap() + 1;
        args[data] = dir.path().join("worker-data").display().to_string();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let tally = stdout_json(&huixi(&refs));
        assert_eq!(tally["done"], 2, "{tally}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.sessions(&a).await < 1 || s.sessions(&b).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the two conversations were not analysed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Lexicons: each tenant is alerted on its own word only.
    let (_, alerts_a) = s.get("/v1/alerts?limit=500", &a).await;
    let (_, alerts_b) = s.get("/v1/alerts?limit=500", &b).await;
    let (wa, wb) = (words(&alerts_a), words(&alerts_b));
    assert!(
        wa.contains(&"暗号甲".to_string()) && !wa.contains(&"暗号乙".to_string()),
        "{alerts_a}"
    );
    assert!(
        wb.contains(&"暗号乙".to_string()) && !wb.contains(&"暗号甲".to_string()),
        "{alerts_b}"
    );
    // Thresholds: 500 yuan and a 50-yuan red packet are over A's limits (100, 10), under the defaults.
    let (ka, kb) = (kinds(&alerts_a), kinds(&alerts_b));
    for risky in ["transfer", "redpacket"] {
        assert!(
            ka.iter().any(|k| k == risky),
            "A has a {risky} alert: {alerts_a}"
        );
        assert!(
            !kb.iter().any(|k| k == risky),
            "B has no {risky} alert: {alerts_b}"
        );
    }
    // The prompt override reaches the model for A only; B's request carries the shipped prompt.
    let (sa, sb) = (
        requests(&mock, "summary", "acme"),
        requests(&mock, "summary", "bolt"),
    );
    assert!(
        !sa.is_empty() && !sb.is_empty(),
        "both tenants' summaries were asked for"
    );
    assert!(
        sa.iter().all(|r| system_text(r).contains("ACME专用摘要")),
        "A's prompt"
    );
    assert!(
        sa.iter().all(|r| r["temperature"] == 0.2),
        "A's temperature"
    );
    assert!(
        sb.iter().all(|r| !system_text(r).contains("ACME专用摘要")),
        "B's prompt is the shipped one"
    );
    assert!(
        sb.iter().all(|r| system_text(r).contains("150 字")),
        "B's prompt is the shipped one"
    );
    // Competitor lists reach the competitors agent, each its own tenant's.
    let (ca, cb) = (
        requests(&mock, "competitors", "acme"),
        requests(&mock, "competitors", "bolt"),
    );
    assert!(!ca.is_empty() && !cb.is_empty());
    assert!(ca
        .iter()
        .all(|r| system_text(r).contains("竞品甲（JPA）") && !system_text(r).contains("竞品乙")));
    assert!(cb
        .iter()
        .all(|r| system_text(r).contains("竞品乙") && !system_text(r).contains("竞品甲")));

    // B's token sees B's configuration, never A's.
    let (status, settings_b) = s.get("/v1/settings", &b).await;
    assert_eq!(status, 200);
    assert_eq!(
        settings_b["effective"]["competitors"],
        json!([{"name": "竞品乙", "aliases": []}])
    );
    assert_eq!(settings_b["effective"]["transfer_threshold_yuan"], 1000.0);
    let (_, summary_b) = s.get("/v1/agents/summary", &b).await;
    assert_eq!(summary_b["override"], Value::Null, "{summary_b}");
    assert!(!summary_b["prompt_template"]
        .as_str()
        .unwrap()
        .contains("ACME"));
    let (_, lexicon_b) = s.get("/v1/lexicon", &b).await;
    assert_eq!(lexicon_b, Value::String("暗号乙,私单,high\n".into()));
    assert_eq!(
        s.call("DELETE", "/v1/agents/summary", &b, None).await.0,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_on_serves_pool_over_sqlite_each_get_their_own_settings() {
    let dir = tempfile::tempdir().unwrap();
    two_tenants(&sqlite_url(dir.path()), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tenants_on_a_standalone_worker_over_rabbitmq_and_mariadb_each_get_their_own_settings()
{
    let db = crate::mariadb::Scratch::new("tenants").await;
    let queue = format!("it.tenants.{}", std::process::id());
    two_tenants(&db.url(), Some(&queue)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_refused_naming_the_field_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let a = token(&db, &["--tenant", "acme"]);
    let s = Serve::start(&["--db".to_string(), db.clone()]);
    let before = s.get("/v1/settings", &a).await.1;
    for (body, field) in [
        (r#"{"idle_gap_minutes": 0}"#, "idle_gap_minutes"),
        (
            r#"{"transfer_threshold_yuan": "lots"}"#,
            "transfer_threshold_yuan",
        ),
        (r#"{"competitors": [{"name": ""}]}"#, "competitors[0].name"),
        (r#"{"thresholds": {}}"#, "thresholds"),
    ] {
        let (status, err) = s.call("PUT", "/v1/settings", &a, Some(body.into())).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert!(
            err["error"].as_str().unwrap().contains(field),
            "{body}: {err}"
        );
    }
    // A template that does not compile, and a schema that is not one, are named.
    let (status, err) = s
        .call(
            "PUT",
            "/v1/agents/summary",
            &a,
            Some(r#"{"prompt_template": "{{#if}}"}"#.into()),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("prompt_template"),
        "{err}"
    );
    let (status, err) = s
        .call(
            "PUT",
            "/v1/agents/summary",
            &a,
            Some(r#"{"output_schema": {"type": 12}}"#.into()),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("output_schema"),
        "{err}"
    );
    let (status, _) = s
        .call("PUT", "/v1/agents/no_such_agent", &a, Some("{}".into()))
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        s.get("/v1/settings", &a).await.1,
        before,
        "nothing was stored"
    );
}

/// A worker that runs on and on picks up a tenant's change within seconds, and a change of one
/// tenant's configuration re-reads that tenant's sessions and nobody else's.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_worker_picks_up_a_change_and_only_that_tenants_sessions_are_redone() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let common = ["--db".to_string(), db.clone()];
    for tenant in ["acme", "bolt"] {
        let file = archive(dir.path(), tenant);
        let out = huixi(&["enqueue", &file, "--tenant", tenant, "--db", &db]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut worker = Command::new(env!("CARGO_BIN_EXE_huixi"))
        .arg("worker")
        .args(&common)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let hashes = |tenant: &'static str| {
        let db = db.clone();
        async move {
            rows_of(
                &db,
                &[&format!(
                    "SELECT id, input_hash FROM huixi_sessions WHERE tenant = '{tenant}' ORDER BY id"
                )],
            )
            .await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "huixi_sessions").await < 2 {
        assert!(Instant::now() < deadline, "both tenants analysed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a0, b0) = (hashes("acme").await, hashes("bolt").await);
    assert!(!a0.is_empty() && !b0.is_empty());
    // A's operator adds a word; the worker is not restarted.
    let lexicon = dir.path().join("acme.txt");
    std::fs::write(&lexicon, "定金,私单,high\n").unwrap();
    let out = huixi(&[
        "tenant",
        "set",
        "--tenant",
        "acme",
        "--lexicon-file",
        &lexicon.display().to_string(),
        "--db",
        &db,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changed = Instant::now();
    // A's conversation is queued again until the worker reads it with the new word: a job taken
    // before the worker looked at A's version again is analysed as before, and that window is what
    // this measures.
    let new_word = "SELECT id FROM huixi_alerts WHERE tenant = 'acme' AND word = '定金'";
    let acme = dir.path().join("acme.jsonl").display().to_string();
    while rows_of(&db, &[new_word]).await.is_empty() {
        // The design bound is CHECK_EVERY (2 s) plus a job; the slack is for a loaded CI machine,
        // where each `huixi enqueue` below is a process start of its own.
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "A's new word raised no alert within 10 s of the change"
        );
        let out = huixi(&["enqueue", &acme, "--tenant", "acme", "--db", &db]);
        assert!(out.status.success());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // B's conversation is queued again too, as a nightly batch would, and the queue drains.
    let bolt = dir.path().join("bolt.jsonl").display().to_string();
    let out = huixi(&["enqueue", &bolt, "--tenant", "bolt", "--db", &db]);
    assert!(out.status.success());
    let waiting = "SELECT id FROM huixi_jobs WHERE state <> 'done'";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !rows_of(&db, &[waiting]).await.is_empty() {
        assert!(Instant::now() < deadline, "the queue drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (a1, b1) = (hashes("acme").await, hashes("bolt").await);
    assert_ne!(a0, a1, "A's sessions were read again under the new lexicon");
    assert_eq!(b0, b1, "B's sessions were left as they were");
    let _ = worker.kill();
    let _ = worker.wait();
}

/// Defaults, then the file, then the environment, then flags; secrets never printed.
#[test]
fn config_layers_file_under_environment_under_flags_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("huixi.toml");
    std::fs::write(
        &file,
        "db = \"mysql://huixi:s3cret@10.0.0.5:3306/crm\"\nidle_gap_minutes = 45\n\
         transfer_threshold_yuan = 300\n[llm]\nbase_url = \"http://file/v1\"\napi_key = \"sk-file\"\n",
    )
    .unwrap();
    let run = |env: &[(&str, &str)], flags: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_huixi"));
        cmd.arg("config")
            .arg("--config")
            .arg(&file)
            .args(flags)
            .env_remove("HUIXI_DB")
            .env_remove("HUIXI_LLM_BASE_URL")
            .env_remove("HUIXI_IDLE_GAP_MINUTES");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let value: toml::Table = toml::from_str(&text).unwrap();
        (text, value)
    };
    let (text, v) = run(&[], &[]);
    assert_eq!(
        v["store"]["db"].as_str(),
        Some("mysql://huixi:***@10.0.0.5:3306/crm")
    );
    assert_eq!(v["defaults"]["idle_gap_minutes"].as_integer(), Some(45));
    assert_eq!(
        v["defaults"]["transfer_threshold_yuan"].as_float(),
        Some(300.0)
    );
    assert_eq!(
        v["defaults"]["redpacket_threshold_yuan"].as_float(),
        Some(200.0),
        "a default"
    );
    assert_eq!(v["llm"]["llm_base_url"].as_str(), Some("http://file/v1"));
    assert!(
        !text.contains("s3cret") && !text.contains("sk-file"),
        "{text}"
    );
    let (_, v) = run(
        &[
            ("HUIXI_IDLE_GAP_MINUTES", "50"),
            ("HUIXI_LLM_BASE_URL", "http://env/v1"),
        ],
        &[],
    );
    assert_eq!(
        v["defaults"]["idle_gap_minutes"].as_integer(),
        Some(50),
        "env over file"
    );
    assert_eq!(v["llm"]["llm_base_url"].as_str(), Some("http://env/v1"));
    let (_, v) = run(
        &[("HUIXI_IDLE_GAP_MINUTES", "50")],
        &["--idle-gap-minutes", "55"],
    );
    assert_eq!(
        v["defaults"]["idle_gap_minutes"].as_integer(),
        Some(55),
        "flag over env"
    );
    // A misspelt key is an error naming it.
    std::fs::write(&file, "idle_gap_minuts = 45\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_huixi"))
        .args(["config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("idle_gap_minuts"));
}

/// The operator's CLI changes the same configuration the API does, with the same checks.
#[test]
fn huixi_tenant_shows_sets_and_manages_agents_and_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let file = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let settings = file(
        "s.json",
        r#"{"idle_gap_minutes": 45, "competitors": [{"name": "竞品甲"}]}"#,
    );
    let shown = stdout_json(&huixi(&[
        "tenant",
        "set",
        "--tenant",
        "acme",
        "--settings-file",
        &settings,
        "--db",
        &db,
    ]));
    assert_eq!(shown["settings"]["idle_gap_minutes"], 45);
    assert_eq!(shown["settings"]["competitors"][0]["name"], "竞品甲");
    let other = stdout_json(&huixi(&["tenant", "show", "--tenant", "bolt", "--db", &db]));
    assert_eq!(
        other["settings"]["idle_gap_minutes"], 30,
        "bolt keeps the default"
    );
    assert_eq!(other["version"], 0);
    // A bad document is refused naming the field, and nothing changes.
    let bad = file("bad.json", r#"{"idle_gap_minutes": -1}"#);
    let out = huixi(&[
        "tenant",
        "set",
        "--tenant",
        "acme",
        "--settings-file",
        &bad,
        "--db",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("idle_gap_minutes"));
    let again = stdout_json(&huixi(&["tenant", "show", "--tenant", "acme", "--db", &db]));
    assert_eq!(again["version"], shown["version"]);
    // Agents: an override, then back to the shipped one.
    let over = file(
        "o.json",
        r#"{"temperature": 0.5, "vars": {"rubric": "只看响应速度"}}"#,
    );
    let agents = stdout_json(&huixi(&[
        "tenant",
        "agents",
        "staff_score",
        "--put",
        &over,
        "--tenant",
        "acme",
        "--db",
        &db,
    ]));
    let score = |v: &Value| {
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "staff_score")
            .cloned()
            .unwrap()
    };
    assert_eq!(score(&agents)["vars"]["rubric"], "只看响应速度");
    let restored = stdout_json(&huixi(&[
        "tenant",
        "agents",
        "staff_score",
        "--delete",
        "--tenant",
        "acme",
        "--db",
        &db,
    ]));
    assert_ne!(score(&restored)["vars"]["rubric"], "只看响应速度");
    // Documents.
    let doc = file("faq.md", "# 退款\n\n七天无理由退款。\n");
    let listed = stdout_json(&huixi(&[
        "tenant", "kb", "--put", &doc, "--tenant", "acme", "--db", &db,
    ]));
    assert_eq!(listed["documents"][0]["name"], "faq.md");
    let theirs = stdout_json(&huixi(&["tenant", "kb", "--tenant", "bolt", "--db", &db]));
    assert_eq!(theirs["documents"], json!([]));
    let gone = stdout_json(&huixi(&[
        "tenant", "kb", "--delete", "faq.md", "--tenant", "acme", "--db", &db,
    ]));
    assert_eq!(gone["documents"], json!([]));
}
