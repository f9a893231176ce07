//! `POST /v1/messages`: messages that arrive one by one are stored once, alerted at once (the alert
//! committed and announced within the second), and analysed when their conversation is quiet —
//! and the alert raised on arrival is the session's alert, not a second one.

use std::process::Command;

use serde_json::{json, Value};

use crate::helpers::*;

async fn post(base: &str, token: &str, path: &str, body: String) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn line(msgid: &str, from: &str, to: &str, msgtime: i64, text: &str) -> String {
    json!({"msgid": msgid, "action": "send", "from": from, "tolist": [to], "roomid": "",
        "msgtime": msgtime, "msgtype": "text", "text": {"content": text}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn posted_messages_are_stored_once_alerted_at_once_and_their_alert_is_the_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let tenant = token(&db, &["--tenant", "acme"]);
    let admin = token(&db, &["--admin"]);
    let (mut child, base) = spawn_serve(
        Command::new(env!("CARGO_BIN_EXE_huixi"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", &db])
            .arg("--webhook-allow-private"),
    );
    // The CRM's receiver, and the supervisors' channel that high-severity alerts go to.
    let (hook, seen) = receiver().await;
    let (high_hook, high) = receiver().await;
    let resp = reqwest::Client::new()
        .put(format!("{base}/admin/tenants/acme/webhook"))
        .header("authorization", format!("Bearer {admin}"))
        .json(&json!({"url": hook, "high_url": high_hook, "secret": "a-secret-of-acme-0123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);

    // A chat of an hour ago: quiet for longer than the idle gap, so analysed as soon as it is in.
    let t = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let body = [
        line("m1", "wmcust1", "staff1", t, "你好，这个课程多少钱"),
        line(
            "m2",
            "staff1",
            "wmcust1",
            t + 60_000,
            "加我微信，私下给你优惠",
        ),
        "this is not JSON".to_string(),
        line("m4", "staff1", "wmcust1", 8_210_266_876_799_999, "时间不对"),
    ]
    .join("\n");
    let sent = std::time::Instant::now();
    let (status, report) = post(&base, &tenant, "/v1/messages", body.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["duplicates"], 0);
    let raised = report["alerts"].as_u64().unwrap();
    assert!(raised >= 1, "the hand-off is alerted on arrival: {report}");
    let rejected = report["rejected"].as_array().unwrap();
    let lines: Vec<i64> = rejected
        .iter()
        .map(|r| r["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4], "{report}");
    assert!(rejected[1]["error"].as_str().unwrap().contains("msgtime"));

    // The alert's webhook, well within the second, on the supervisors' channel.
    let (created, at) = eventually(10, "alert.created delivered", || {
        let seen = high.clone();
        async move {
            let got = seen.lock().unwrap().clone();
            got.into_iter()
                .find(|(h, _, _)| h["x-huixi-event"] == "alert.created")
                .map(|(_, b, at)| (serde_json::from_str::<Value>(&b).unwrap(), at))
        }
    })
    .await;
    assert_eq!(created["msgid"], "m2");
    assert!(
        created["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["severity"] == "high"),
        "the supervisors' channel gets the message's high alerts, together: {created}"
    );
    assert_eq!(
        created["conversation"], "single:staff1|wmcust1",
        "{created}"
    );
    assert!(
        at.duration_since(sent) < std::time::Duration::from_secs(2),
        "announced {:?} after the request",
        at.duration_since(sent)
    );

    // Sent again: nothing new; the same msgid with other content is refused, naming its line.
    let (_, again) = post(&base, &tenant, "/v1/messages", body).await;
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicates"], 2);
    let changed = line("m2", "staff1", "wmcust1", t + 60_000, "改过的内容");
    let (_, conflict) = post(&base, &tenant, "/v1/messages", changed).await;
    assert_eq!(conflict["accepted"], 0);
    assert_eq!(conflict["rejected"][0]["line"], 1, "{conflict}");
    assert!(conflict["rejected"][0]["error"]
        .as_str()
        .unwrap()
        .contains("different content"));

    // Analysed once quiet (it is already): the same alert rows, now the session's, and no second
    // announcement of them as alert.high.
    let db2 = db.clone();
    eventually(60, "the session analysed", || {
        let db = db2.clone();
        async move {
            let rows = rows_of(
                &db,
                &["SELECT session_id FROM huixi_alerts WHERE msgid = 'm2'"],
            )
            .await;
            (rows.len() as u64 == raised && rows.iter().all(|r| !r.is_empty())).then_some(())
        }
    })
    .await;
    eventually(10, "session.analysed delivered", || {
        let seen = seen.clone();
        async move {
            let got = seen.lock().unwrap().clone();
            got.iter()
                .any(|(h, _, _)| h["x-huixi-event"] == "session.analysed")
                .then_some(())
        }
    })
    .await;
    // Every alert of m2 announced once, high ones on their channel, the others on the CRM's.
    let announced = |r: &Received, high: bool| -> usize {
        let got = r.lock().unwrap().clone();
        let mut n = 0;
        for (h, b, _) in got {
            let v: Value = serde_json::from_str(&b).unwrap();
            if h["x-huixi-event"] == "alert.created" && v["msgid"] == "m2" {
                let alerts = v["alerts"].as_array().unwrap();
                assert!(
                    alerts.iter().all(|a| (a["severity"] == "high") == high),
                    "{v}"
                );
                n += alerts.len();
            }
            assert_ne!(h["x-huixi-event"], "alert.high", "announced again: {v}");
        }
        n
    };
    assert_eq!(
        (announced(&high, true) + announced(&seen, false)) as u64,
        raised,
        "each real-time alert was announced once"
    );
    assert_eq!(
        count(&db, "huixi_pending_analysis").await,
        0,
        "the conversation left the idle schedule"
    );

    // More than a request may carry is refused before anything is stored.
    let many = "{}\n".repeat(10_001);
    let (status, err) = post(&base, &tenant, "/v1/messages", many).await;
    assert_eq!(status, 413, "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_still_talking_waits_for_its_idle_gap() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let tenant = token(&db, &["--tenant", "acme"]);
    let (mut child, base) = spawn_serve(Command::new(env!("CARGO_BIN_EXE_huixi")).args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        &db,
    ]));
    let now = chrono::Utc::now().timestamp_millis();
    let old = now - 3_600_000;
    let body = [
        line("q1", "wmcust1", "staff1", old, "你好"),
        line("a1", "wmcust2", "staff1", now, "在吗"),
    ]
    .join("\n");
    let (status, report) = post(&base, &tenant, "/v1/messages", body).await;
    assert_eq!(status, 200, "{report}");
    let db2 = db.clone();
    eventually(60, "the quiet conversation analysed", || {
        let db = db2.clone();
        async move { (count(&db, "huixi_sessions").await == 1).then_some(()) }
    })
    .await;
    // The one still talking is due an idle gap (30 minutes by default) after its last message.
    let due = rows_of(
        &db,
        &["SELECT conversation, due_at FROM huixi_pending_analysis"],
    )
    .await;
    assert_eq!(due.len(), 1, "{due:?}");
    assert!(due[0].starts_with("single:staff1|wmcust2 | "), "{due:?}");
    let due_at: i64 = due[0].rsplit(" | ").next().unwrap().parse().unwrap();
    assert!(
        (due_at - now - 30 * 60_000).abs() < 1_000,
        "due {} ms after the message",
        due_at - now
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
