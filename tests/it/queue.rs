//! Background analysis through the queue, on this machine's RabbitMQ and on the embedded queue: nothing
//! lost, nothing written twice, poison set aside, on-demand ahead of the backlog, crashes and broker
//! drops survived, no tenant's backlog long in the way of another's jobs. Each test uses queues of its
//! own name, so tests run side by side on one broker.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;

use crate::helpers::*;
use crate::mock_llm::{Behaviour, Mock};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Embedded,
    Amqp,
}

/// A scratch store, a pools file with short delays, and a queue name no other test uses.
struct Setup {
    dir: tempfile::TempDir,
    db: String,
    queue: String,
    backend: Backend,
}

impl Setup {
    fn new(test: &str, backend: Backend) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pools.toml"),
            "[pools.analysis]\nqueue = \"unused\"\nconcurrency = 4\nprefetch = 1\nlease_secs = 2\n\
             [pools.analysis.retry]\nmax_tries = 3\ndelays_secs = [0.3]\n",
        )
        .unwrap();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Setup {
            db: sqlite_url(dir.path()),
            queue: format!("it.{test}.{}.{nanos}", std::process::id()),
            backend,
            dir,
        }
    }

    fn queue_args(&self) -> Vec<String> {
        let mut a = vec![
            "--db".to_string(),
            self.db.clone(),
            "--pools".into(),
            self.dir.path().join("pools.toml").display().to_string(),
            "--queue".into(),
            self.queue.clone(),
        ];
        if self.backend == Backend::Amqp {
            a.extend(["--amqp".to_string(), AMQP.to_string()]);
        }
        a
    }

    fn run(&self, command: &str, extra: &[&str]) -> std::process::Output {
        let mut args: Vec<String> = vec![command.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(self.queue_args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        huixi(&refs)
    }

    fn spawn_worker(&self, extra: &[&str]) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_huixi"));
        cmd.arg("worker").args(extra).args(self.queue_args());
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().unwrap()
    }

    async fn publish_raw(&self, payloads: &[(Vec<u8>, u8)]) {
        match self.backend {
            Backend::Embedded => {
                sqlx::any::install_default_drivers();
                let pool = sqlx::AnyPool::connect(&self.db).await.unwrap();
                let mut tx = pool.begin().await.unwrap();
                for (p, priority) in payloads {
                    sqlx::query(
                        "INSERT INTO huixi_jobs (queue, priority, payload, state, available_at, created_at) \
                         VALUES (?, ?, ?, 'ready', 0, 0)",
                    )
                    .bind(&self.queue)
                    .bind(*priority as i64)
                    .bind(String::from_utf8(p.clone()).unwrap())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
                pool.close().await;
            }
            Backend::Amqp => {
                let conn = Connection::connect(AMQP, ConnectionProperties::default())
                    .await
                    .unwrap();
                let ch = conn.create_channel().await.unwrap();
                for (p, priority) in payloads {
                    ch.basic_publish(
                        "".into(),
                        self.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        p,
                        BasicProperties::default().with_priority(*priority),
                    )
                    .await
                    .unwrap();
                }
                ch.wait_for_confirms().await.unwrap();
                conn.close(200, "done".into()).await.unwrap();
            }
        }
    }

    /// Session id → how many times it was written.
    async fn writes(&self) -> Vec<(String, i64)> {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&self.db).await.unwrap();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, writes FROM huixi_sessions ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if self.backend != Backend::Amqp {
            return;
        }
        let queue = self.queue.clone();
        // Leave the broker as it was: this test's queues go with it.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let Ok(conn) = Connection::connect(AMQP, ConnectionProperties::default()).await
                    else {
                        return;
                    };
                    let ch = conn.create_channel().await.unwrap();
                    let mut names = vec![queue.clone(), format!("{queue}.dead")];
                    names.push(format!("{queue}.retry.300"));
                    // Batch jobs go to a queue of their tenant's.
                    for tenant in ["default", "ta", "tb"] {
                        names.push(format!("{queue}.t.{tenant}"));
                    }
                    for n in names {
                        let _ = ch
                            .queue_delete(n.as_str().into(), QueueDeleteOptions::default())
                            .await;
                    }
                    let _ = conn.close(200, "done".into()).await;
                })
        })
        .join();
    }
}

/// A synthetic archive of `n` one-to-one conversations, four messages each.
fn archive(dir: &Path, n: usize) -> String {
    let mut lines = Vec::new();
    for c in 0..n {
        for (i, (from, to, text)) in [
            ("wmQ", "staffQ", "你好，想了解一下价格"),
            ("staffQ", "wmQ", "标准版每年980元"),
            ("wmQ", "staffQ", "能便宜点吗"),
            ("staffQ", "wmQ", "可以打九折，谢谢您的支持"),
        ]
        .iter()
        .enumerate()
        {
            lines.push(
                serde_json::json!({
                    "msgid": format!("q{c}_{i}"), "action": "send",
                    "from": format!("{from}{c}"), "tolist": [format!("{to}{c}")], "roomid": "",
                    "msgtime": 1_795_136_400_000i64 + (c * 10 + i) as i64 * 1000,
                    "msgtype": "text", "text": {"content": text}
                })
                .to_string(),
            );
        }
    }
    let path = dir.join("batch.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.display().to_string()
}

fn tally(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_else(|| {
        panic!(
            "worker printed nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

async fn each_session_written_once_and_redelivery_writes_nothing(backend: Backend) {
    let s = Setup::new("once", backend);
    let sample = sample_archive().display().to_string();
    let out = s.run("enqueue", &[&sample, "--json"]);
    let enq = stdout_json(&out);
    assert_eq!(enq["jobs"], enq["confirmed"]);
    let t = tally(&s.run("worker", &["--drain"]));
    assert_eq!(t["done"], enq["jobs"], "{t}");
    let first = s.writes().await;
    assert_eq!(first.len(), 5, "the sample has five sessions");
    assert!(first.iter().all(|(_, w)| *w == 1), "{first:?}");
    let before = dump(&s.db).await;
    // The same jobs again, as a redelivery would bring them: work is done, nothing is written.
    stdout_json(&s.run("enqueue", &[&sample, "--json"]));
    let t = tally(&s.run("worker", &["--drain"]));
    assert_eq!(t["done"], enq["jobs"]);
    assert_eq!(s.writes().await, first);
    assert_eq!(dump(&s.db).await, before);
}

async fn poison_goes_to_the_dead_letters_with_its_reason(backend: Backend) {
    let s = Setup::new("poison", backend);
    let sample = sample_archive().display().to_string();
    stdout_json(&s.run("enqueue", &[&sample, "--json"]));
    let missing = br#"{"tenant":"default","conversation":"no-such-conversation","lane":"batch"}"#;
    s.publish_raw(&[(b"{not a job".to_vec(), 1), (missing.to_vec(), 1)])
        .await;
    let t = tally(&s.run("worker", &["--drain"]));
    assert_eq!(t["dead"], 2, "{t}");
    assert_eq!(t["retried"], 2, "the failing job is tried three times: {t}");
    assert_eq!(
        s.writes().await.len(),
        5,
        "good jobs around the poison finish"
    );
    let dead = stdout_json(&s.run("dlq", &["list", "--json"]));
    let reasons: Vec<&str> = dead
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{dead:#}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("poison: unparseable job")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("failed 3 times") && r.contains("no-such-conversation")),
        "{reasons:?}"
    );
    // Listing takes nothing away; replaying puts them back in line.
    assert_eq!(
        stdout_json(&s.run("dlq", &["list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let out = s.run("dlq", &["replay"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 jobs replayed"));
    let t = tally(&s.run("worker", &["--drain"]));
    assert_eq!(t["dead"], 2, "still poison after a replay: {t}");
}

async fn on_demand_overtakes_a_batch_backlog(backend: Backend) {
    let s = Setup::new("overtake", backend);
    let sample = sample_archive().display().to_string();
    stdout_json(&s.run("enqueue", &[&sample, "--json"]));
    tally(&s.run("worker", &["--drain"]));
    // 10,000 batch jobs, each of which would fail (their conversation is unknown) and so show up as
    // a retry if the worker took one; then one on-demand re-analysis of a real session.
    let backlog: Vec<(Vec<u8>, u8)> = (0..10_000)
        .map(|i| {
            (
                format!(r#"{{"tenant":"default","conversation":"backlog-{i}","lane":"batch"}}"#)
                    .into_bytes(),
                1,
            )
        })
        .collect();
    s.publish_raw(&backlog).await;
    let session = s.writes().await[0].0.clone();
    stdout_json(&s.run("enqueue", &["--session", &session, "--json"]));
    let started = Instant::now();
    let t = tally(&s.run("worker", &["--max-jobs", "1", "--concurrency", "1"]));
    eprintln!(
        "{backend:?}: on-demand job served in {:?} with 10,000 batch jobs queued",
        started.elapsed()
    );
    assert_eq!(t["taken"], 1, "{t}");
    assert_eq!(t["done"], 1, "the job taken was the on-demand one: {t}");
    assert_eq!(t["retried"], 0, "{t}");
}

/// `n` conversations of one message each, all with staff member `staff`: jobs that cost little.
fn one_message_archive(dir: &Path, name: &str, n: usize) -> String {
    let lines: Vec<String> = (0..n)
        .map(|c| {
            serde_json::json!({
                "msgid": format!("{name}{c}"), "action": "send",
                "from": format!("wm{name}{c}"), "tolist": [format!("staff{name}")], "roomid": "",
                "msgtime": 1_795_136_400_000i64 + c as i64 * 1000,
                "msgtype": "text", "text": {"content": "你好，想了解一下价格"}
            })
            .to_string()
        })
        .collect();
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.display().to_string()
}

/// Tenant → when each of its sessions was analysed (ms), in order.
async fn analysed_by_tenant(s: &Setup) -> std::collections::BTreeMap<String, Vec<i64>> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&s.db).await.unwrap();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT tenant, analysed_at FROM huixi_sessions ORDER BY analysed_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    let mut by = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for (tenant, at) in rows {
        by.entry(tenant).or_default().push(at);
    }
    by
}

/// The issue's fairness scenario: tenant A queues 10,000 batch jobs, then tenant B 10, then someone
/// asks for one re-analysis on demand. The on-demand job is the first taken, and B's 10 are all
/// taken within the next 20: B waits behind at most 10 of A's jobs, not 10,000.
async fn a_tenants_backlog_holds_back_another_tenants_jobs_only_briefly(backend: Backend) {
    let s = Setup::new("fair", backend);
    let sample = sample_archive().display().to_string();
    let analysed = stdout_json(&huixi(&[
        "analyze", &sample, "--tenant", "tc", "--db", &s.db, "--json",
    ]));
    let session = analysed["results"][0]["session"]
        .as_str()
        .unwrap()
        .to_string();
    let a = one_message_archive(s.dir.path(), "a", 10_000);
    let b = one_message_archive(s.dir.path(), "b", 10);
    let enq = stdout_json(&s.run("enqueue", &[&a, "--tenant", "ta", "--json"]));
    assert_eq!(enq["confirmed"], 10_000, "{enq}");
    let enq = stdout_json(&s.run("enqueue", &[&b, "--tenant", "tb", "--json"]));
    assert_eq!(enq["confirmed"], 10, "{enq}");
    let enq = stdout_json(&s.run(
        "enqueue",
        &["--session", &session, "--tenant", "tc", "--json"],
    ));
    assert_eq!(enq["confirmed"], 1, "{enq}");

    let t = tally(&s.run("worker", &["--max-jobs", "1", "--concurrency", "1"]));
    assert_eq!(t["done"], 1, "{t}");
    let by = analysed_by_tenant(&s).await;
    assert!(
        !by.contains_key("ta") && !by.contains_key("tb"),
        "the first job taken was the on-demand one: {by:?}"
    );

    let t = tally(&s.run("worker", &["--max-jobs", "20", "--concurrency", "1"]));
    assert_eq!(t["done"], 20, "{t}");
    let by = analysed_by_tenant(&s).await;
    let (a_done, b_done) = (&by["ta"], by.get("tb").cloned().unwrap_or_default());
    let b_last = b_done.iter().max().copied().unwrap_or(i64::MAX);
    let a_before_b_last = a_done.iter().filter(|at| **at <= b_last).count();
    eprintln!(
        "{backend:?}: of the 20 batch jobs taken after the on-demand one, {} were B's; B's last \
         came after {a_before_b_last} of A's 10,000",
        b_done.len()
    );
    assert_eq!(
        b_done.len(),
        10,
        "all of B's jobs within 20 deliveries: {a_before_b_last} of A's went before B's last"
    );
}

/// Waits until at least `n` sessions are in the store.
async fn wait_for_sessions(s: &Setup, n: usize, worker: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.writes().await.len() < n {
        assert!(
            worker.try_wait().unwrap().is_none(),
            "the worker exited early"
        );
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` conversations enqueued, and a worker (with `extra` flags) started on them against a model that
/// answers each request after `latency`, so the batch takes long enough to interrupt.
async fn slow_batch(
    test: &str,
    backend: Backend,
    n: usize,
    latency: Duration,
    extra: &[&str],
) -> (Mock, Setup, Child) {
    let mock = Mock::start(Behaviour::Slow(latency)).await;
    let s = Setup::new(test, backend);
    let file = archive(s.dir.path(), n);
    let enq = stdout_json(&s.run("enqueue", &[&file, "--json"]));
    assert_eq!(enq["confirmed"], n);
    let url = mock.base_url();
    let mut args = vec!["--llm-base-url", &url, "--llm-model", "mock-model"];
    args.extend(extra);
    let worker = s.spawn_worker(&args);
    (mock, s, worker)
}

async fn kill_9_mid_batch_then_restart(backend: Backend) {
    let (mock, s, mut worker) =
        slow_batch("kill", backend, 40, Duration::from_millis(150), &[]).await;
    let url = mock.base_url();
    let llm = ["--llm-base-url", &url, "--llm-model", "mock-model"];
    wait_for_sessions(&s, 5, &mut worker).await;
    worker.kill().unwrap(); // SIGKILL: no chance to finish anything
    worker.wait().unwrap();
    let partial = s.writes().await.len();
    assert!(
        partial < 40,
        "killed in the middle, not at the end ({partial})"
    );
    let mut args = vec!["--drain"];
    args.extend(llm);
    let t = tally(&s.run("worker", &args));
    let writes = s.writes().await;
    assert_eq!(
        writes.len(),
        40,
        "every session analysed after the restart: {t}"
    );
    assert!(
        writes.iter().all(|(_, w)| *w == 1),
        "exactly once: {writes:?}"
    );
}

/// The scenario as two tests, one per queue.
macro_rules! on_both_queues {
    ($($scenario:ident => $embedded:ident, $amqp:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $embedded() {
            $scenario(Backend::Embedded).await;
        }

        #[tokio::test(flavor = "multi_thread")]
        async fn $amqp() {
            $scenario(Backend::Amqp).await;
        }
    )*};
}

on_both_queues! {
    each_session_written_once_and_redelivery_writes_nothing => embedded_each_session_written_once_and_redelivery_writes_nothing, amqp_each_session_written_once_and_redelivery_writes_nothing;
    poison_goes_to_the_dead_letters_with_its_reason => embedded_poison_goes_to_the_dead_letters_with_its_reason, amqp_poison_goes_to_the_dead_letters_with_its_reason;
    on_demand_overtakes_a_batch_backlog => embedded_on_demand_overtakes_a_batch_backlog, amqp_on_demand_overtakes_a_batch_backlog;
    kill_9_mid_batch_then_restart => embedded_kill_9_mid_batch_then_restart_analyses_each_session_once, amqp_kill_9_mid_batch_then_restart_analyses_each_session_once;
    a_tenants_backlog_holds_back_another_tenants_jobs_only_briefly => embedded_a_tenants_backlog_holds_back_another_tenants_jobs_only_briefly, amqp_a_tenants_backlog_holds_back_another_tenants_jobs_only_briefly;
}

#[tokio::test(flavor = "multi_thread")]
async fn amqp_worker_reconnects_after_the_broker_drops_its_connection() {
    let (_mock, s, mut worker) = slow_batch(
        "drop",
        Backend::Amqp,
        30,
        Duration::from_millis(150),
        &["--drain"],
    )
    .await;
    wait_for_sessions(&s, 3, &mut worker).await;
    // Close this worker's connections from the broker's side (named after the queue).
    let list = Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&list.stdout);
    let pids: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains(&s.queue))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        !pids.is_empty(),
        "the worker's connection is listed: {listing}"
    );
    for pid in pids {
        let closed = Command::new("rabbitmqctl")
            .args(["close_connection", pid, "test: broker drop"])
            .output()
            .unwrap();
        assert!(
            closed.status.success(),
            "{}",
            String::from_utf8_lossy(&closed.stderr)
        );
    }
    let out = tokio::task::spawn_blocking(move || worker.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The drop was seen and survived: a reconnect said so, or a second connect was logged (the
    // first connect's line alone proves nothing).
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reconnecting") || stderr.matches("connected to RabbitMQ").count() >= 2,
        "{stderr}"
    );
    let writes = s.writes().await;
    assert_eq!(writes.len(), 30);
    assert!(writes.iter().all(|(_, w)| *w == 1), "{writes:?}");
}

/// Jobs that each take longer than their 3 s lease (a slow model: about 5 s a job) keep it while
/// they run: every conversation is taken once and every session written once.
#[tokio::test(flavor = "multi_thread")]
async fn a_job_that_outlasts_its_lease_keeps_it_and_runs_once() {
    let s = Setup::new("lease", Backend::Embedded);
    std::fs::write(
        s.dir.path().join("pools.toml"),
        "[pools.analysis]\nqueue = \"unused\"\nconcurrency = 4\nprefetch = 1\nlease_secs = 3\n\
         [pools.analysis.retry]\nmax_tries = 3\ndelays_secs = [0.3]\n",
    )
    .unwrap();
    let mock = Mock::start(Behaviour::Slow(Duration::from_millis(1000))).await;
    let file = archive(s.dir.path(), 8);
    stdout_json(&s.run("enqueue", &[&file, "--json"]));
    let url = mock.base_url();
    let started = std::time::Instant::now();
    let out = s.run(
        "worker",
        &[
            "--drain",
            "--llm-base-url",
            &url,
            "--llm-model",
            "mock-model",
        ],
    );
    let t = tally(&out);
    let writes = s.writes().await;
    assert_eq!(writes.len(), 8, "{t}");
    assert!(writes.iter().all(|(_, w)| *w == 1), "{writes:?}");
    assert_eq!(
        t["taken"],
        8,
        "no job was handed out twice: {t}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The jobs did outlast the lease: two rounds of four slots took more than a lease each.
    assert!(started.elapsed() > Duration::from_secs(6), "{t}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_finishes_jobs_in_flight_and_exits_cleanly() {
    let (_mock, s, mut worker) = slow_batch(
        "term",
        Backend::Embedded,
        20,
        Duration::from_millis(300),
        &[],
    )
    .await;
    wait_for_sessions(&s, 1, &mut worker).await;
    let term = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let out = tokio::task::spawn_blocking(move || worker.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "clean exit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = tally(&out);
    // Everything it took, it finished: no job is left leased for another worker to wait on.
    assert_eq!(t["taken"], t["done"], "{t}");
    assert!(
        t["taken"].as_u64().unwrap() < 20,
        "it stopped taking jobs: {t}"
    );
    let writes = s.writes().await;
    assert_eq!(
        writes.len() as u64,
        t["done"].as_u64().unwrap(),
        "{t}\n{writes:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (waiting, _) = {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&s.db).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM huixi_jobs WHERE state = 'leased'")
            .fetch_one(&pool)
            .await
            .unwrap();
        (n, ())
    };
    assert_eq!(waiting, 0);
}
