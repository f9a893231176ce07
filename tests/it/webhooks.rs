//! Webhook secrets rotate without a missed event, and events given up on can be listed and sent
//! again by an admin.

use std::process::Command;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

use crate::helpers::*;

/// Standard Webhooks' v1 signature of a delivery, with a secret that is not `whsec_`.
fn v1(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

async fn admin(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// `huixi serve` on the store, with the default tenant's webhook at a receiver here, set with each
/// secret in turn: the server, its base URL, an admin token, and what the receiver gets.
async fn hooked(db: &str, secrets: &[&str]) -> (std::process::Child, String, String, Received) {
    let admin_token = token(db, &["--admin"]);
    let (child, base) = spawn_serve(
        Command::new(env!("CARGO_BIN_EXE_huixi"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .arg("--webhook-allow-private"),
    );
    let (hook, seen) = receiver().await;
    for secret in secrets {
        let body = json!({"url": hook, "secret": secret});
        let path = "/admin/tenants/default/webhook";
        let (status, _) = admin(&base, &admin_token, "PUT", path, Some(body)).await;
        assert_eq!(status, 204);
    }
    (child, base, admin_token, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_secret_rotation_both_secrets_sign_and_dead_events_are_listed_and_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let (old, new) = ("the-old-secret-0123456789", "the-new-secret-9876543210");
    let (mut child, base, admin_token, seen) = hooked(&db, &[old, new]).await;
    let sample = sample_archive().display().to_string();
    stdout_json(&huixi(&["enqueue", &sample, "--db", &db, "--json"]));
    let (headers, body, _) = eventually(60, "a delivery", || {
        let seen = seen.clone();
        async move { seen.lock().unwrap().first().cloned() }
    })
    .await;
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let signatures: Vec<&str> = headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(signatures, [v1(new, id, ts, &body), v1(old, id, ts, &body)]);

    // An event every try failed for: listed with its error, then sent again on request.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let delivered: i64 =
        sqlx::query_scalar("SELECT MIN(id) FROM huixi_outbox WHERE delivered_at IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE huixi_outbox SET delivered_at = NULL, attempts = 30, last_error = 'receiver answered 500' WHERE id = ?")
        .bind(delivered)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (status, dead) = admin(
        &base,
        &admin_token,
        "GET",
        "/admin/tenants/default/webhook/dead",
        None,
    )
    .await;
    assert_eq!(status, 200, "{dead}");
    let events = dead["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{dead}");
    assert_eq!(events[0]["id"], delivered);
    assert_eq!(events[0]["last_error"], "receiver answered 500");
    let before = seen.lock().unwrap().len();
    let (status, redelivered) = admin(
        &base,
        &admin_token,
        "POST",
        "/admin/tenants/default/webhook/dead/redeliver",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(redelivered["redelivered"], 1);
    let again = format!("huixi-{delivered}");
    eventually(10, "the dead event sent again", || {
        let seen = seen.clone();
        let again = again.clone();
        async move {
            let got = seen.lock().unwrap();
            got[before..]
                .iter()
                .any(|(h, _, _)| h["webhook-id"] == again.as_str())
                .then_some(())
        }
    })
    .await;
    let (_, dead) = admin(
        &base,
        &admin_token,
        "GET",
        "/admin/tenants/default/webhook/dead",
        None,
    )
    .await;
    assert_eq!(dead["events"].as_array().unwrap().len(), 0);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sessions_high_alerts_are_announced_in_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let (mut child, _, _, seen) = hooked(&db, &["a-secret-0123456789abc"]).await;
    // Files analysed as a batch: alerts raised by the sessions' analysis, not on arrival.
    let sample = sample_archive().display().to_string();
    stdout_json(&huixi(&["analyze", &sample, "--db", &db, "--json"]));
    let per_session = rows_of(
        &db,
        &["SELECT session_id, COUNT(*) FROM huixi_alerts WHERE severity = 'high' GROUP BY session_id ORDER BY session_id"],
    )
    .await;
    assert!(per_session.len() >= 2, "{per_session:?}");
    eventually(30, "every session's alert.high", || {
        let seen = seen.clone();
        let want = per_session.len();
        async move {
            let got: Vec<Value> = seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(h, _, _)| h["x-huixi-event"] == "alert.high")
                .map(|(_, b, _)| serde_json::from_str(b).unwrap())
                .collect();
            (got.len() >= want).then_some(())
        }
    })
    .await;
    // A moment more, for any second announcement to show.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(h, _, _)| h["x-huixi-event"] == "alert.high")
        .map(|(_, b, _)| serde_json::from_str(b).unwrap())
        .collect();
    let mut got: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} | {}",
                e["session"].as_str().unwrap(),
                e["alerts"].as_array().unwrap().len()
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got, per_session,
        "one event per session, holding all its high alerts"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
