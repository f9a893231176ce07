//! A real tenant's shape: staff with many customers, customers who talk to several staff over days,
//! phones shared between customers, a group chat. Every hot query is planned on an index bounded to
//! its own rows (on SQLite and MariaDB, against a store with data), several workers on MariaDB share
//! staff and customers without a deadlock and end where one clean run ends, and a 超时未回复 is
//! raised once however many sweep at once.

use std::path::Path;
use std::process::{Command, Stdio};

use sqlx::{Connection, Row};

use crate::helpers::*;
use crate::mariadb::Scratch;

const T0: i64 = 1_795_136_400_000; // 2026-11-21 09:00 +08:00
const DAY: i64 = 86_400_000;

/// `customers` customers, each in one-to-one chats with three of `staff` staff members over two days
/// (two sessions a conversation), every fourth writing the phone of the next one, and one group chat
/// with two staff members and three customers.
fn shared_archive(dir: &Path, customers: usize, staff: usize) -> String {
    let mut lines = Vec::new();
    let mut push = |id: String, from: &str, to: Vec<String>, room: &str, t: i64, text: &str| {
        lines.push(
            serde_json::json!({"msgid": id, "action": "send", "from": from, "tolist": to,
                "roomid": room, "msgtime": t, "msgtype": "text", "text": {"content": text}})
            .to_string(),
        );
    };
    for c in 0..customers {
        let cust = format!("wmShared{c:03}");
        for k in 0..3 {
            let s = format!("staff{:02}", (c + k) % staff);
            for day in 0..2 {
                let t = T0 + day * DAY + (c * 3 + k) as i64 * 60_000;
                let phone = if c % 4 == 0 || c % 4 == 1 {
                    format!("，我的手机13900{:06}", c / 4)
                } else {
                    String::new()
                };
                let talk = [
                    (true, format!("你好，想了解一下你们的系统怎么收费？{phone}")),
                    (false, "标准版每个账号每年980元".to_string()),
                    (true, "能便宜点吗，加我微信聊".to_string()),
                    (false, "可以打九折，谢谢您的支持".to_string()),
                ];
                for (i, (from_customer, text)) in talk.iter().enumerate() {
                    let (from, to) = if *from_customer {
                        (cust.as_str(), s.clone())
                    } else {
                        (s.as_str(), cust.clone())
                    };
                    push(
                        format!("sh{c}_{k}_{day}_{i}"),
                        from,
                        vec![to],
                        "",
                        t + i as i64 * 30_000,
                        text,
                    );
                }
            }
        }
    }
    let members: Vec<String> = [
        "staff00",
        "staff01",
        "wmShared000",
        "wmShared001",
        "wmShared002",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (i, from) in members.iter().enumerate() {
        let to = members.iter().filter(|m| *m != from).cloned().collect();
        push(
            format!("room_{i}"),
            from,
            to,
            "wrShared",
            T0 + 3 * DAY + i as i64 * 60_000,
            "群里问一下，报价单发一下？",
        );
    }
    let path = dir.join("shared.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.display().to_string()
}

/// huixi's data tables without what says when a row was written (times, autoincrement ids, write
/// counts): two stores that analysed the same archive, however, dump the same.
async fn stable_dump(url: &str) -> Vec<String> {
    let queries = [
        "SELECT tenant, msgid, conversation, msgtime, raw FROM huixi_messages ORDER BY tenant, msgid",
        "SELECT tenant, id, conversation, kind, participants, start_ms, end_ms, message_count, input_hash, result FROM huixi_sessions ORDER BY tenant, id",
        "SELECT tenant, session_id, kind, payload, evidence, analyser FROM huixi_findings ORDER BY tenant, session_id, kind",
        "SELECT tenant, session_id, msgid, kind, category, severity, word, text, start_char, end_char, evidence FROM huixi_alerts ORDER BY tenant, session_id, msgid, kind, word, start_char",
        "SELECT tenant, conversation, session_id, msgid, staff, day, asked_at, due_at, answered_msgid, answered_at, wait_ms FROM huixi_turns ORDER BY tenant, msgid, staff",
        "SELECT tenant, session_id, staff, day, sent, received, negative, alerts FROM huixi_traffic ORDER BY tenant, session_id, staff, day",
        "SELECT tenant, customer, session_id, contribution FROM huixi_customer_sessions ORDER BY tenant, customer, session_id",
        "SELECT tenant, customer, msgid, kind, value_hash FROM huixi_customer_identifiers ORDER BY tenant, customer, msgid, kind, value_hash",
        "SELECT tenant, customer, profile, input_hash FROM huixi_customers ORDER BY tenant, customer",
        "SELECT tenant, customer, tag_group, tag, reason, evidence FROM huixi_tag_suggestions ORDER BY tenant, customer, tag_group, tag",
        "SELECT tenant, conversation, extras FROM huixi_conversations ORDER BY tenant, conversation",
    ];
    rows_of(url, &queries).await
}

/// The queries a conversation, a customer and a staff-day cost, as the store runs them.
const HOT: &[&str] = &[
    "SELECT msgid, raw FROM huixi_messages WHERE tenant = ? AND conversation = ? ORDER BY msgtime, msgid",
    "SELECT id, input_hash, result FROM huixi_sessions WHERE tenant = ? AND conversation = ? ORDER BY id",
    "SELECT session_id, msgid, kind FROM huixi_alerts WHERE tenant = ? AND session_id IN (SELECT id FROM huixi_sessions WHERE tenant = ? AND conversation = ?) ORDER BY session_id, id",
    "SELECT extras FROM huixi_conversations WHERE tenant = ? AND conversation = ?",
    "SELECT path, bytes, messages FROM huixi_archive_files WHERE tenant = ? AND content_hash = ? AND fingerprint = ?",
    "SELECT id, input_hash, writes FROM huixi_sessions WHERE tenant = ? AND conversation = ? ORDER BY id",
    "SELECT msgid FROM huixi_alerts WHERE tenant = ? AND kind = ? AND session_id IN (?, ?)",
    "DELETE FROM huixi_alerts WHERE tenant = ? AND session_id IN (?, ?) AND kind = ?",
    "SELECT DISTINCT customer FROM huixi_customer_sessions WHERE tenant = ? AND conversation = ?",
    "DELETE FROM huixi_turns WHERE tenant = ? AND conversation = ?",
    "DELETE FROM huixi_traffic WHERE tenant = ? AND conversation = ?",
    "DELETE FROM huixi_customer_sessions WHERE tenant = ? AND conversation = ?",
    "DELETE FROM huixi_customer_identifiers WHERE tenant = ? AND conversation = ?",
    "DELETE FROM huixi_alerts WHERE tenant = ? AND session_id IN (?, ?, ?) AND kind <> ?",
    "DELETE FROM huixi_findings WHERE tenant = ? AND session_id IN (?, ?, ?)",
    "DELETE FROM huixi_sessions WHERE tenant = ? AND id IN (?, ?, ?)",
    "SELECT contribution FROM huixi_customer_sessions WHERE tenant = ? AND customer = ? ORDER BY start_ms, session_id",
    "SELECT customer, kind, value_hash, masked, session_id, msgid, staff FROM huixi_customer_identifiers WHERE tenant = ? AND value_hash IN (SELECT value_hash FROM huixi_customer_identifiers WHERE tenant = ? AND customer = ?) ORDER BY value_hash, customer, session_id, msgid",
    "SELECT profile, input_hash FROM huixi_customers WHERE tenant = ? AND customer = ?",
    "DELETE FROM huixi_tag_suggestions WHERE tenant = ? AND customer = ?",
    "SELECT session_id, msgid, customer, staff, day FROM huixi_turns WHERE tenant = ? AND staff = ? AND day >= ? AND day <= ? ORDER BY asked_at, msgid, staff",
    "SELECT session_id, staff, day FROM huixi_traffic WHERE tenant = ? AND staff = ? AND day >= ? AND day <= ? ORDER BY session_id, staff, day",
    "SELECT DISTINCT t.session_id, t.msgid, m.content FROM huixi_turns t JOIN huixi_messages m ON m.tenant = t.tenant AND m.msgid = t.msgid WHERE t.tenant = ? AND t.answered_at IS NULL AND t.due_at <= ? ORDER BY t.session_id, t.msgid",
    "SELECT id FROM huixi_jobs WHERE queue = ? AND state = 'ready' AND available_at <= ? ORDER BY priority DESC, fair_rank, id LIMIT 1",
    "SELECT id FROM huixi_jobs WHERE queue = ? AND state = 'leased' AND lease_until < ? ORDER BY priority DESC, fair_rank, id LIMIT 1",
    "SELECT fair_rank FROM huixi_jobs WHERE queue = ? AND state = 'ready' AND priority = ? AND available_at <= ? ORDER BY priority DESC, fair_rank, id LIMIT 1",
    "SELECT last_rank FROM huixi_job_ranks WHERE queue = ? AND priority = ? AND tenant = ?",
    // Messages arriving one by one (issue 17): the store's copy of each msgid, the flags of a
    // recalled message, the real-time alerts a session adopts, the idle schedule.
    "SELECT msgid, raw FROM huixi_messages WHERE tenant = ? AND msgid IN (?, ?, ?)",
    "SELECT msgid, severity, word, text FROM huixi_alerts WHERE tenant = ? AND msgid IN (?, ?) AND kind IN ('sensitive', 'pii', 'handoff') ORDER BY id",
    "SELECT once_key FROM huixi_alerts WHERE tenant = ? AND once_key IN (?, ?) AND session_id = ''",
    "UPDATE huixi_alerts SET session_id = ? WHERE tenant = ? AND once_key IN (?, ?) AND session_id = ''",
    "DELETE FROM huixi_pending_analysis WHERE tenant = ? AND conversation = ? AND due_at = ?",
    // Sensitive behaviours (issue 20): the QR codes of a conversation's images, and the consent
    // events by type.
    "SELECT msgid, qr FROM huixi_media WHERE tenant = ? AND msgid IN (?, ?) AND qr IS NOT NULL",
    "SELECT msgid, raw, msgtime FROM huixi_messages WHERE tenant = ? AND msgtype IN ('agree', 'disagree')",
];

/// Queries whose answer is one row of the tenant by design: an aggregate the index answers at its
/// end, a queue read bounded by its LIMIT, a row per tenant.
const ONE_ROW_OF_THE_TENANT: &[&str] = &[
    "SELECT MAX(msgtime) FROM huixi_messages WHERE tenant = ?",
    "SELECT id, tenant, customer FROM huixi_stale_customers HINT WHERE tenant = ? ORDER BY tenant, id LIMIT 100",
    "SELECT tenant FROM huixi_webhooks WHERE tenant = ?",
    "SELECT MAX(last_rank) FROM huixi_job_ranks WHERE queue = ? AND priority = ?",
    "SELECT tenant, conversation, due_at FROM huixi_pending_analysis WHERE due_at <= ? ORDER BY due_at LIMIT 500",
];

/// A store with the shared archive analysed, and a backlog of jobs in the embedded queue.
fn fill(dir: &Path, db: &str) {
    let archive = shared_archive(dir, 40, 6);
    stdout_json(&huixi(&["analyze", &archive, "--db", db, "--json"]));
    let out = huixi(&["enqueue", &archive, "--db", db, "--json"]);
    stdout_json(&out);
}

/// What SQLite's planner says it does, one line per step.
fn sqlite_plan_scans_the_tenant(plan: &[String], one_row: bool) -> Option<String> {
    plan.iter()
        .find(|step| {
            let full_scan = step.starts_with("SCAN ") && !step.contains("CONSTANT");
            // The primary key's prefix alone: every row of the tenant.
            let tenant_only = step.starts_with("SEARCH") && step.ends_with("(tenant=?)");
            full_scan || (tenant_only && !one_row) || step.contains("(queue=?)")
        })
        .cloned()
}

#[tokio::test]
async fn hot_queries_are_bounded_by_an_index_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    fill(dir.path(), &db);
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    let mut failures = Vec::new();
    for (sql, one_row) in HOT
        .iter()
        .map(|q| (q, false))
        .chain(ONE_ROW_OF_THE_TENANT.iter().map(|q| (q, true)))
    {
        // The index the store names, as it names it.
        let sql = sql.replace("HINT", "INDEXED BY huixi_stale_customers_by_tenant");
        let plan: Vec<String> = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<String, _>(3))
            .collect();
        assert!(!plan.is_empty(), "{sql}");
        if let Some(step) = sqlite_plan_scans_the_tenant(&plan, one_row) {
            failures.push(format!("{sql}\n    {step}\n    (plan: {plan:?})"));
        }
    }
    assert!(failures.is_empty(), "scans:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn hot_queries_are_bounded_by_an_index_on_mariadb() {
    let scratch = Scratch::new("plans").await;
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), &scratch.url());
    let mut conn = sqlx::MySqlConnection::connect(&scratch.url())
        .await
        .unwrap();
    sqlx::query("ANALYZE TABLE huixi_messages, huixi_sessions, huixi_alerts, huixi_turns, huixi_traffic, huixi_customer_sessions, huixi_customer_identifiers, huixi_jobs")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut failures = Vec::new();
    for (sql, one_row) in HOT
        .iter()
        .map(|q| (q, false))
        .chain(ONE_ROW_OF_THE_TENANT.iter().map(|q| (q, true)))
    {
        let hinted = sql.replace("HINT", "FORCE INDEX (huixi_stale_customers_by_tenant)");
        let sql: &str = hinted.as_str();
        let explain = format!("EXPLAIN {sql}");
        // Values of the right type for each placeholder, so the plan is the one the store gets.
        let mut q = sqlx::query(&explain);
        let binds = sql.matches('?').count();
        let numeric = [
            "due_at <= ?",
            "available_at <= ?",
            "lease_until < ?",
            "priority = ?",
        ];
        let mut rest = sql;
        for _ in 0..binds {
            let at = rest.find('?').unwrap();
            let before = &rest[..=at];
            q = if numeric.iter().any(|n| before.ends_with(n)) {
                q.bind(T0)
            } else {
                q.bind("default")
            };
            rest = &rest[at + 1..];
        }
        let rows = q
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        for r in &rows {
            let table: Option<String> = r.try_get("table").ok().flatten();
            let kind: Option<String> = r.try_get("type").ok().flatten();
            let key_len: Option<String> = r.try_get("key_len").ok().flatten();
            let extra: Option<String> = r.try_get("Extra").ok().flatten();
            let kind = kind.unwrap_or_default();
            // tenant is VARCHAR(64) utf8mb4: 258 bytes of key is the tenant alone.
            let tenant_only = key_len.as_deref() == Some("258") && !one_row;
            let scan = kind == "ALL" || kind == "index";
            // A materialized subquery is the query's own few rows, not a table of the tenant.
            let own_rows = table.as_deref().is_some_and(|t| t.starts_with('<'));
            if (scan || tenant_only) && !own_rows {
                failures.push(format!(
                    "{sql}\n    table {table:?} type {kind} key_len {key_len:?} {extra:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "scans:\n{}", failures.join("\n"));
}

/// Several worker processes on MariaDB, conversations of the same staff members and customers in
/// flight at once: every job done on its first try, no deadlock retried, and the store equal, row for
/// row, to one `huixi analyze` of the same archive.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_workers_on_mariadb_share_staff_and_customers_without_deadlocks() {
    let dir = tempfile::tempdir().unwrap();
    let archive = shared_archive(dir.path(), 60, 5);
    let pools = dir.path().join("pools.toml");
    std::fs::write(
        &pools,
        "[pools.analysis]\nqueue = \"scale\"\nconcurrency = 8\nprefetch = 8\nlease_secs = 60\n\
         [pools.analysis.retry]\nmax_tries = 3\ndelays_secs = [60]\n",
    )
    .unwrap();
    let workers_db = Scratch::new("workers").await;
    let pools = pools.display().to_string();
    let queue_args = ["--db", &workers_db.url(), "--pools", &pools];
    let mut args = vec!["enqueue", archive.as_str(), "--json"];
    args.extend(queue_args);
    let enq = stdout_json(&huixi(&args));
    let jobs = enq["jobs"].as_u64().unwrap();
    assert_eq!(jobs, 181, "180 one-to-one conversations and a group chat");

    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_huixi"))
                .arg("worker")
                .arg("--drain")
                .args(queue_args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut done = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let tally: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("{}"))
            .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(tally["dead"], 0, "{tally}");
        assert_eq!(
            tally["retried"], 0,
            "no job went back to the queue: {tally}"
        );
        assert_eq!(tally["conflicts"], 0, "no deadlock or lock wait: {tally}");
        done += tally["done"].as_u64().unwrap();
    }
    assert_eq!(done, jobs);

    let clean = Scratch::new("clean").await;
    stdout_json(&huixi(&[
        "analyze",
        &archive,
        "--db",
        &clean.url(),
        "--json",
    ]));
    let (a, b) = (
        stable_dump(&workers_db.url()).await,
        stable_dump(&clean.url()).await,
    );
    assert!(a.iter().any(|r| r.contains("same_phone")), "撞单 folded");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}

/// Four runs sweeping the same tenant at the same moment raise the question left unanswered once.
#[tokio::test(flavor = "multi_thread")]
async fn a_quiet_timeout_is_raised_once_when_several_sweep_at_once() {
    let scratch = Scratch::new("sweep").await;
    let dir = tempfile::tempdir().unwrap();
    let db = scratch.url();
    let line = |id: &str, from: &str, to: &str, t: i64, text: &str| {
        serde_json::json!({"msgid": id, "action": "send", "from": from, "tolist": [to],
            "roomid": "", "msgtime": t, "msgtype": "text", "text": {"content": text}})
        .to_string()
    };
    let quiet = dir.path().join("quiet.jsonl");
    std::fs::write(
        &quiet,
        line("q1", "wmQuiet", "staff01", T0, "请问发票什么时候开？"),
    )
    .unwrap();
    let first = stdout_json(&huixi(&[
        "analyze",
        quiet.to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    assert!(
        first["alerts"].as_array().unwrap().is_empty(),
        "not due yet: {first:#}"
    );
    // Another conversation, a day later, moves the archive on. Four runs analyse it at once; none
    // touches the quiet conversation, so only their sweeps can raise its timeout.
    let later = dir.path().join("later.jsonl");
    std::fs::write(&later, line("l1", "wmOther", "staff02", T0 + DAY, "你好")).unwrap();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_huixi"))
                .args(["analyze", later.to_str().unwrap(), "--db", &db, "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut raised = 0;
    for r in runs {
        let out = r.wait_with_output().unwrap();
        let report = stdout_json(&out);
        raised += report["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "response_timeout" && a["msgid"] == "q1")
            .count();
    }
    let mut conn = sqlx::MySqlConnection::connect(&db).await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM huixi_alerts WHERE kind = 'response_timeout' AND msgid = 'q1'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows, 1, "one row");
    assert_eq!(raised, 1, "one of the four runs raised it");
}

/// `analyze` on SQLite commits a batch's conversations together, thousands at a time (the write-ahead
/// log takes a page once for all the rows it got): over more than one such span — 2,101
/// conversations — its store is, row for row, the one a worker leaves that commits each
/// conversation as its own job.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_spanning_transactions_stores_what_one_commit_per_conversation_stores() {
    let dir = tempfile::tempdir().unwrap();
    let archive = shared_archive(dir.path(), 700, 6);
    let (batch_dir, jobs_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (batch, jobs) = (sqlite_url(batch_dir.path()), sqlite_url(jobs_dir.path()));
    let run = stdout_json(&huixi(&["analyze", &archive, "--db", &batch, "--json"]));
    assert_eq!(
        run["sessions"], 4201,
        "two sessions a conversation, one in the group"
    );

    let enq = stdout_json(&huixi(&["enqueue", &archive, "--db", &jobs, "--json"]));
    assert_eq!(
        enq["jobs"], 2101,
        "2,100 one-to-one conversations and a group chat"
    );
    let out = huixi(&["worker", "--drain", "--db", &jobs]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (a, b) = (stable_dump(&batch).await, stable_dump(&jobs).await);
    assert!(a.iter().any(|r| r.contains("same_phone")), "撞单 folded");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}
