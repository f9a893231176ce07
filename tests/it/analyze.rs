//! `huixi analyze` end to end on the embedded SQLite store.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::helpers::*;

fn ids(v: &Value, list: &str, field: &str) -> BTreeSet<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn broken_lines_are_reported_by_number_and_the_rest_is_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let fixture = fixture("mixed.jsonl");
    let out = huixi(&["analyze", fixture.to_str().unwrap(), "--db", &db, "--json"]);
    let report = stdout_json(&out);
    let rejected: Vec<(String, u64)> = report["rejected_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(!r["error"].as_str().unwrap().is_empty());
            (
                r["file"].as_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
            )
        })
        .collect();
    let file = fixture.display().to_string();
    assert_eq!(
        rejected,
        vec![
            (file.clone(), 4),
            (file.clone(), 8),
            (file.clone(), 11),
            (file, 13)
        ]
    );
    let line8 = &report["rejected_lines"][1]["error"];
    assert!(line8.as_str().unwrap().contains("msgtime"), "{line8}");
    let line11 = &report["rejected_lines"][2]["error"];
    assert!(line11.as_str().unwrap().contains("tolist"), "{line11}");

    let total_lines = std::fs::read_to_string(&fixture)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(report["messages"].as_u64().unwrap(), total_lines - 4);
    assert_eq!(
        report["sessions"].as_u64().unwrap() as usize,
        report["results"].as_array().unwrap().len()
    );
    assert_eq!(count(&db, "huixi_rejected_lines").await, 4);
}

#[tokio::test]
async fn revoked_sensitive_message_raises_a_revoke_alert_citing_both_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let report = stdout_json(&huixi(&[
        "analyze",
        fixture("mixed.jsonl").to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    let alerts = report["alerts"].as_array().unwrap();
    let hit = alerts
        .iter()
        .find(|a| a["msgid"] == "fx_06" && a["kind"] == "sensitive")
        .unwrap_or_else(|| panic!("no sensitive alert on fx_06: {alerts:#?}"));
    assert_eq!(hit["category"], "引流");
    let revoke = alerts
        .iter()
        .find(|a| a["kind"] == "revoke")
        .unwrap_or_else(|| panic!("no revoke alert: {alerts:#?}"));
    let evidence: Vec<&str> = revoke["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(evidence.contains(&"fx_06"), "{revoke}");
    assert_eq!(revoke["session"], hit["session"]);
}

#[tokio::test]
async fn every_finding_cites_msgids_of_its_own_session() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let archive = sample_archive();
    let report = stdout_json(&huixi(&[
        "analyze",
        archive.to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    let messages: Vec<Value> = std::fs::read_to_string(&archive)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let all_ids: BTreeSet<String> = messages
        .iter()
        .filter_map(|m| m["msgid"].as_str().map(str::to_string))
        .collect();
    let results = report["results"].as_array().unwrap();
    assert!(results.len() >= 4, "the sample has at least four sessions");
    let mut cited = 0;
    for r in results {
        let mut evidence: Vec<&Value> = Vec::new();
        for side in ["customer", "staff"] {
            if let Some(e) = r["emotion"][side].as_object() {
                evidence.extend(e["evidence"].as_array().unwrap());
            }
        }
        for list in ["keywords", "competitors"] {
            for item in r[list].as_array().unwrap() {
                evidence.extend(item["evidence"].as_array().unwrap());
            }
        }
        evidence.extend(r["opportunity"]["evidence"].as_array().unwrap());
        evidence.extend(r["summary"]["evidence"].as_array().unwrap());
        assert!(!r["summary"]["evidence"].as_array().unwrap().is_empty());
        for id in evidence {
            assert!(all_ids.contains(id.as_str().unwrap()), "unknown msgid {id}");
            cited += 1;
        }
    }
    assert!(cited > 20);
    for a in report["alerts"].as_array().unwrap() {
        assert!(all_ids.contains(a["msgid"].as_str().unwrap()));
        assert!(results.iter().any(|r| r["session"] == a["session"]));
    }
}

#[tokio::test]
async fn running_twice_leaves_the_store_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let archive = sample_archive();
    let run = |extra: &[&str]| {
        let mut args = vec!["analyze", archive.to_str().unwrap(), "--db", &db, "--json"];
        args.extend(extra);
        stdout_json(&huixi(&args))
    };
    let first = run(&[]);
    assert_eq!(first["unchanged_files"], serde_json::json!([]));
    let before = dump(&db).await;
    assert!(!before.is_empty());
    // Read again on request: every line parsed and offered to the store, every conversation
    // compared, nothing written, the same report.
    let reread = run(&["--reread"]);
    assert_eq!(dump(&db).await, before);
    assert_eq!(
        first["results"], reread["results"],
        "a re-read reports what the first run did"
    );
    assert_eq!(first["alerts"], reread["alerts"]);
    assert_eq!(first["customers"], reread["customers"]);
    // By default the unchanged file is skipped whole, and said to be.
    let again = run(&[]);
    assert_eq!(dump(&db).await, before);
    assert_eq!(again["results"], serde_json::json!([]));
    let unchanged = again["unchanged_files"].as_array().unwrap();
    assert_eq!(unchanged.len(), 1);
    assert_eq!(unchanged[0]["path"], archive.to_str().unwrap());
    assert_eq!(unchanged[0]["messages"], first["messages"]);
    assert_eq!(count(&db, "huixi_runs").await, 3, "each run is logged");
}

/// A file is skipped only when its bytes, and what they would be analysed under, are those an
/// earlier run read to the end: an edited file, a file with rejected lines and a changed lexicon are
/// read again.
#[tokio::test]
async fn only_a_file_settled_under_the_same_analysis_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let text = std::fs::read_to_string(sample_archive()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (head, tail) = lines.split_at(lines.len() / 2);
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    std::fs::write(&a, head.join("\n")).unwrap();
    // b has a broken line: never settled, read by every run.
    std::fs::write(&b, format!("{}\n{{not json\n", tail.join("\n"))).unwrap();
    let run = |files: &[&Path], extra: &[&str]| {
        let mut args: Vec<&str> = vec!["analyze"];
        args.extend(files.iter().map(|p| p.to_str().unwrap()));
        args.extend(["--db", &db, "--json"]);
        args.extend(extra);
        stdout_json(&huixi(&args))
    };
    let unchanged = |report: &Value| -> Vec<String> {
        report["unchanged_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let first = run(&[&a, &b], &[]);
    assert!(unchanged(&first).is_empty());
    let second = run(&[&a, &b], &[]);
    assert_eq!(unchanged(&second), vec![a.display().to_string()]);
    assert_eq!(
        second["rejected_lines"].as_array().unwrap().len(),
        1,
        "b is read again"
    );
    // The same bytes under another name are known by their content.
    let copy = dir.path().join("copy.jsonl");
    std::fs::copy(&a, &copy).unwrap();
    assert_eq!(
        unchanged(&run(&[&copy], &[])),
        vec![copy.display().to_string()]
    );
    // An edited file is read again, and its new message analysed.
    let mut edited = head.join("\n");
    let extra: Value = serde_json::from_str(head[0]).unwrap();
    let mut extra = extra.as_object().unwrap().clone();
    extra.insert("msgid".into(), Value::from("edited-1"));
    edited.push('\n');
    edited.push_str(&Value::Object(extra).to_string());
    std::fs::write(&a, edited).unwrap();
    let after_edit = run(&[&a], &[]);
    assert!(unchanged(&after_edit).is_empty());
    assert!(!after_edit["results"].as_array().unwrap().is_empty());
    assert_eq!(unchanged(&run(&[&a], &[])), vec![a.display().to_string()]);
    // Another lexicon is another analysis: the file is read again under it, then settled.
    let lexicon = dir.path().join("lexicon.txt");
    std::fs::write(&lexicon, "测试专用词,违规,high\n").unwrap();
    let lex = ["--lexicon", lexicon.to_str().unwrap()];
    assert!(unchanged(&run(&[&a], &lex)).is_empty());
    assert_eq!(unchanged(&run(&[&a], &lex)), vec![a.display().to_string()]);
}

#[tokio::test]
async fn files_in_any_order_and_split_give_the_same_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = std::fs::read_to_string(sample_archive())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // Interleave lines into two files, each reversed: nothing arrives in order.
    let (mut a, mut b): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for (i, l) in lines.iter().enumerate() {
        if i % 2 == 0 {
            a.push(l.clone())
        } else {
            b.push(l.clone())
        }
    }
    a.reverse();
    b.reverse();
    let pa = dir.path().join("a.jsonl");
    let pb = dir.path().join("b.jsonl");
    std::fs::write(&pa, a.join("\n")).unwrap();
    std::fs::write(&pb, b.join("\n")).unwrap();

    let whole_db = format!("sqlite://{}", dir.path().join("whole.db").display());
    let whole = stdout_json(&huixi(&[
        "analyze",
        sample_archive().to_str().unwrap(),
        "--db",
        &whole_db,
        "--json",
    ]));
    let split_db = format!("sqlite://{}", dir.path().join("split.db").display());
    let split = stdout_json(&huixi(&[
        "analyze",
        pb.to_str().unwrap(),
        pa.to_str().unwrap(),
        "--db",
        &split_db,
        "--json",
    ]));
    assert_eq!(
        ids(&whole, "results", "session"),
        ids(&split, "results", "session")
    );
    assert_eq!(whole["results"], split["results"]);

    // Feeding the halves as two separate runs converges on the same sessions too.
    let inc_db = format!("sqlite://{}", dir.path().join("inc.db").display());
    stdout_json(&huixi(&[
        "analyze",
        pa.to_str().unwrap(),
        "--db",
        &inc_db,
        "--json",
    ]));
    stdout_json(&huixi(&[
        "analyze",
        pb.to_str().unwrap(),
        "--db",
        &inc_db,
        "--json",
    ]));
    let whole_rows = dump(&whole_db).await;
    let sessions = |rows: &[String]| -> BTreeSet<String> {
        rows.iter()
            .filter_map(|r| {
                r.split(" | ")
                    .nth(1)
                    .filter(|c| c.starts_with("s_"))
                    .map(str::to_string)
            })
            .collect()
    };
    assert_eq!(sessions(&whole_rows), sessions(&dump(&inc_db).await));
}

#[test]
fn unreadable_input_or_bad_flags_fail_with_a_message() {
    let out = huixi(&[
        "analyze",
        "/nonexistent/archive.jsonl",
        "--db",
        "sqlite:///tmp/never-created.db",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/archive.jsonl"));

    let out = huixi(&["analyze"]);
    assert!(!out.status.success());

    let sample = sample_archive();
    let out = huixi(&["analyze", sample.to_str().unwrap(), "--db", "postgres://x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported scheme"));

    let out = huixi(&[
        "analyze",
        sample.to_str().unwrap(),
        "--db",
        "mysql://root@127.0.0.1:1/none",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

#[test]
fn readable_summary_names_sessions_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let out = huixi(&["analyze", sample_archive().to_str().unwrap(), "--db", &db]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sessions ("), "{text}");
    assert!(text.contains("Alerts"), "{text}");
    assert!(text.contains("s_"), "{text}");
}

/// A time no calendar can show, mixed into the samples, is one rejected line; every session of the
/// samples is still analysed, on this run and the next.
#[test]
fn a_msgtime_past_any_calendar_is_one_rejected_line_not_a_stopped_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let mut lines: Vec<String> = std::fs::read_to_string(sample_archive())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let poison = |id: &str, t: &str| {
        format!(
            r#"{{"msgid":"{id}","action":"send","from":"wmPoison","tolist":["liuyang"],"roomid":"","msgtime":{t},"msgtype":"text","text":{{"content":"你好"}}}}"#
        )
    };
    lines.insert(3, poison("p_far", "8210266876799999"));
    lines.insert(5, poison("p_max", "9223372036854775807"));
    lines.insert(7, poison("p_min", "-9223372036854775808"));
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(&mixed, lines.join("\n")).unwrap();
    std::fs::create_dir(dir.path().join("clean")).unwrap();
    let clean = stdout_json(&huixi(&[
        "analyze",
        sample_archive().to_str().unwrap(),
        "--db",
        &sqlite_url(&dir.path().join("clean")),
        "--json",
    ]));
    for _ in 0..2 {
        let report = stdout_json(&huixi(&[
            "analyze",
            mixed.to_str().unwrap(),
            "--db",
            &db,
            "--json",
        ]));
        let rejected: Vec<u64> = report["rejected_lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert!(
                    r["error"].as_str().unwrap().starts_with("field `msgtime`"),
                    "{r}"
                );
                r["line"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(rejected, vec![4, 6, 8]);
        assert_eq!(report["sessions"], clean["sessions"]);
        assert_eq!(
            ids(&report, "results", "session"),
            ids(&clean, "results", "session")
        );
    }
}

/// With HUIXI_MASTER_KEY, message text is stored sealed — no chat in clear in the database — and the
/// analysis is the same as without it; --plaintext-messages keeps it readable for a CRM that wants
/// it.
#[tokio::test(flavor = "multi_thread")]
async fn a_master_key_seals_message_text_at_rest_and_changes_no_result() {
    let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let sample = sample_archive().display().to_string();
    let run = |db: &str, env: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_huixi"));
        for (k, _) in std::env::vars() {
            if k.starts_with("HUIXI_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .args(["analyze", &sample, "--db", db, "--json"])
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (plain, sealed, opted) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (plain, sealed, opted) = (
        sqlite_url(plain.path()),
        sqlite_url(sealed.path()),
        sqlite_url(opted.path()),
    );
    run(&plain, &[], &[]);
    run(&sealed, &[("HUIXI_MASTER_KEY", key)], &[]);
    run(
        &opted,
        &[("HUIXI_MASTER_KEY", key)],
        &["--plaintext-messages"],
    );
    let text = ["SELECT content, raw FROM huixi_messages ORDER BY msgid"];
    let rows = rows_of(&sealed, &text).await;
    assert!(!rows.is_empty());
    for r in &rows {
        let cells: Vec<&str> = r.split(" | ").collect();
        for c in cells {
            assert!(
                c == "None" || c.starts_with("enc:v2:") || c.starts_with("Some(\"enc:v2:"),
                "in clear: {c}"
            );
        }
    }
    assert!(rows_of(&opted, &text)
        .await
        .iter()
        .all(|r| r.contains("\"msgid\"")));
    let results = [
        "SELECT id, input_hash, result FROM huixi_sessions ORDER BY id",
        "SELECT session_id, msgid, kind, word, text FROM huixi_alerts ORDER BY session_id, msgid, kind, word",
    ];
    assert_eq!(
        rows_of(&plain, &results).await,
        rows_of(&sealed, &results).await
    );
    // A re-run on the sealed store reads what it sealed: nothing to write.
    let before = dump(&sealed).await;
    run(&sealed, &[("HUIXI_MASTER_KEY", key)], &[]);
    assert_eq!(before, dump(&sealed).await);
}

/// A msgid stored by an earlier run and read again with different content is a rejected line naming
/// its file and line, and the stored message is kept; the same line read again is a plain repeat.
#[tokio::test]
async fn a_msgid_stored_earlier_with_different_content_is_a_rejected_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let line = |id: &str, text: &str| {
        format!(
            r#"{{"msgid":"{id}","action":"send","from":"wmDup","tolist":["liuyang"],"roomid":"","msgtime":1795136400000,"msgtype":"text","text":{{"content":"{text}"}}}}"#
        )
    };
    let first = dir.path().join("first.jsonl");
    std::fs::write(&first, [line("d1", "你好"), line("d2", "在吗")].join("\n")).unwrap();
    let report = stdout_json(&huixi(&[
        "analyze",
        first.to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    assert_eq!(report["rejected_lines"].as_array().unwrap().len(), 0);

    let second = dir.path().join("second.jsonl");
    let lines = [
        line("d2", "在吗"),
        line("d3", "新的"),
        line("d1", "改过的内容"),
    ];
    std::fs::write(&second, lines.join("\n")).unwrap();
    let report = stdout_json(&huixi(&[
        "analyze",
        second.to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    let rejected = report["rejected_lines"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["file"], second.display().to_string());
    assert_eq!(rejected[0]["line"], 3);
    let error = rejected[0]["error"].as_str().unwrap();
    assert!(
        error.contains("\"d1\"") && error.contains("different content"),
        "{error}"
    );
    let stored = rows_of(&db, &["SELECT raw FROM huixi_messages WHERE msgid = 'd1'"]).await;
    assert!(
        stored[0].contains("你好") && !stored[0].contains("改过"),
        "{stored:?}"
    );
    assert_eq!(count(&db, "huixi_messages").await, 3);
}
