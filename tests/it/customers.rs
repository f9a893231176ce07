//! What spans sessions, on `samples/journey.jsonl` (one customer's week with two staff members, a
//! late-night question, a late reply, an unanswered one, and a second account writing the same phone):
//! customer profiles with stage moves, tag suggestions from the tenant's library, 撞单, and response
//! metrics in working hours.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::mock_llm::{schema_name, user_text, Behaviour, Mock};

fn sample(name: &str) -> String {
    repo().join("samples").join(name).display().to_string()
}

fn analyze_week(db: &str, calendar: &str, extra: &[&str]) -> Value {
    let journey = journey_archive().display().to_string();
    let tags = sample("tags.json");
    let mut args = vec![
        "analyze",
        &journey,
        "--db",
        db,
        "--json",
        "--calendar",
        calendar,
        "--tag-library",
        &tags,
    ];
    args.extend(extra);
    stdout_json(&huixi(&args))
}

fn profile<'a>(report: &'a Value, customer: &str) -> &'a Value {
    report["customers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer"] == customer)
        .unwrap_or_else(|| panic!("no profile for {customer}: {report:#}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn staff_day<'a>(report: &'a Value, staff: &str, day: &str) -> &'a Value {
    report["metrics"]["staff_days"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["staff"] == staff && d["day"] == day)
        .unwrap_or_else(|| panic!("no metrics for {staff} on {day}: {:#}", report["metrics"]))
}

fn timeouts(report: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "response_timeout")
        .map(|a| {
            assert_eq!(a["category"], "超时未回复");
            (
                a["msgid"].as_str().unwrap().to_string(),
                a["word"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_customer_week_gives_stage_moves_tags_duplicates_and_working_hour_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let report = analyze_week(&db, &sample("calendar.toml"), &[]);

    // The profile spans both staff members and every session of the week.
    let p = profile(&report, "wmJourney");
    // Seven sessions: the idle gap splits the late replies from the questions they answer.
    assert_eq!(p["sessions"], 7, "{p:#}");
    assert_eq!(strings(&p["staff"]), ["liuyang", "wangfang"]);
    assert_eq!(p["stage"], "negotiating");
    let moves: Vec<(String, Vec<String>)> = p["stage_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["to"].as_str().unwrap().to_string(),
                strings(&m["evidence"]),
            )
        })
        .collect();
    assert_eq!(moves.len(), 2, "{moves:?}");
    // 需求确认 on Monday ("我们需要30个账号"), 谈判 on Thursday ("能便宜点吗") with wangfang.
    assert_eq!(moves[0].0, "needs_confirmed");
    assert!(moves[0].1.contains(&"j_003".to_string()), "{moves:?}");
    assert_eq!(moves[1].0, "negotiating");
    assert!(moves[1].1.contains(&"j_011".to_string()), "{moves:?}");
    assert!(p["competitors"][0]["name"] == "销售易", "{p:#}");
    assert!(p["budget"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["msgid"] == "j_011" && f["kind"] == "price"));
    assert!(!p["next_best_action"]["action"].as_str().unwrap().is_empty());

    // Tags come only from the uploaded library, each with a confidence and the messages behind it.
    let tags: Vec<(String, String, f64, Vec<String>)> = p["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["group"].as_str().unwrap().to_string(),
                t["tag"].as_str().unwrap().to_string(),
                t["confidence"].as_f64().unwrap(),
                strings(&t["evidence"]),
            )
        })
        .collect();
    let tag = |g: &str, n: &str| tags.iter().find(|t| t.0 == g && t.1 == n);
    let high = tag("意向程度", "高").expect("intent high from the 谈判 stage");
    assert_eq!(high.3, moves[1].1, "cites the move to 谈判");
    assert!(tag("意向程度", "中").is_none() && tag("意向程度", "低").is_none());
    let edu = tag("行业", "教育").expect("education from 学校/培训/课程");
    assert_eq!(edu.3, ["j_001", "j_003"]);
    assert!(edu.2 > 0.7);
    assert!(tag("行业", "零售").is_none(), "{tags:?}");
    assert!(tag("关注点", "价格").is_some() && tag("关注点", "数据迁移").is_some());
    let library = std::fs::read_to_string(sample("tags.json")).unwrap();
    for t in &tags {
        assert!(
            library.contains(&format!("\"{}\"", t.1)),
            "{t:?} not in the library"
        );
    }

    // 撞单: wmJourney with two staff members; a second account writing the same phone and name.
    let dups = report["duplicates"].as_array().unwrap();
    let same_customer = dups.iter().find(|d| d["kind"] == "same_customer").unwrap();
    assert_eq!(strings(&same_customer["customers"]), ["wmJourney"]);
    assert_eq!(strings(&same_customer["staff"]), ["liuyang", "wangfang"]);
    let phone = dups.iter().find(|d| d["kind"] == "same_phone").unwrap();
    assert_eq!(strings(&phone["customers"]), ["wmJourney", "wmJourneyTwin"]);
    assert_eq!(phone["value"], "139****1111");
    assert_eq!(strings(&phone["evidence"]), ["j_007", "j_016"]);
    assert!(strings(&phone["staff"]).contains(&"zhaolei".to_string()));
    assert!(dups.iter().any(|d| d["kind"] == "same_name"));
    let twin = profile(&report, "wmJourneyTwin");
    assert!(twin["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["kind"] == "same_phone"));
    // No phone digits in clear anywhere in the report.
    assert!(!report.to_string().contains("13900001111"));
    assert!(!report.to_string().contains("139 0000 1111"));

    // Tuesday 23:10, answered Wednesday 09:05: five working minutes, not late.
    let tue = staff_day(&report, "liuyang", "2026-11-17");
    assert_eq!(tue["mean_response_secs"], 300.0);
    assert_eq!(tue["overdue"], 0);
    // Wednesday 10:00, answered 11:00: an hour, past the 30-minute threshold.
    let wed = staff_day(&report, "liuyang", "2026-11-18");
    assert_eq!(wed["p90_response_secs"], 3600);
    assert_eq!(wed["overdue"], 1);
    // Monday: two replies, 120 s and 60 s.
    let mon = staff_day(&report, "liuyang", "2026-11-16");
    assert_eq!(
        (
            mon["customer_messages"].clone(),
            mon["staff_messages"].clone()
        ),
        (2.into(), 2.into())
    );
    assert_eq!(mon["mean_response_secs"], 90.0);
    assert_eq!(mon["p90_response_secs"], 120);
    assert_eq!(mon["first_response_secs"], 120.0);
    // Friday 15:00 to wangfang: never answered, and the archive reaches 16:01.
    let fri = staff_day(&report, "wangfang", "2026-11-20");
    assert_eq!(
        (fri["unanswered"].clone(), fri["overdue"].clone()),
        (1.into(), 1.into())
    );
    assert_eq!(
        timeouts(&report),
        [
            ("j_007".to_string(), "late_reply".to_string()),
            ("j_015".to_string(), "no_reply".to_string())
        ]
    );
    // Per session too.
    let sessions = report["metrics"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), report["results"].as_array().unwrap().len());
    assert!(sessions
        .iter()
        .any(|m| m["alerts_by_category"]["超时未回复"] == 1 && m["unanswered"] == 1));
}

#[tokio::test]
async fn round_the_clock_hours_make_the_night_question_late() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let calendar = dir.path().join("always.toml");
    let day = "\"00:00-24:00\"";
    std::fs::write(
        &calendar,
        format!(
            "reply_within_minutes = 30\n[weekly]\nmon = {day}\ntue = {day}\nwed = {day}\nthu = {day}\nfri = {day}\nsat = {day}\nsun = {day}\n"
        ),
    )
    .unwrap();
    let report = analyze_week(&db, calendar.to_str().unwrap(), &[]);
    let tue = staff_day(&report, "liuyang", "2026-11-17");
    assert_eq!(
        tue["mean_response_secs"], 35_700.0,
        "23:10 → 09:05 in clock time"
    );
    assert_eq!(tue["overdue"], 1);
    let late: Vec<String> = timeouts(&report).into_iter().map(|t| t.0).collect();
    assert_eq!(late, ["j_005", "j_007", "j_015"]);
}

#[tokio::test]
async fn a_bad_calendar_or_tag_library_is_refused_by_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let journey = journey_archive().display().to_string();
    for (flag, file, content, field) in [
        (
            "--calendar",
            "cal.toml",
            "reply_within_minutes = 30\nholidays = [\"2026-13-01\"]\n",
            "holidays",
        ),
        (
            "--tag-library",
            "tags.json",
            r#"{"groups": [{"name": "行业", "tags": [{"name": ""}]}]}"#,
            "groups[0].tags[0].name",
        ),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, content).unwrap();
        let out = huixi(&[
            "analyze",
            &journey,
            "--db",
            &db,
            flag,
            path.to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file) && err.contains(field), "{err}");
    }
    // Nothing was analysed with a setting that was refused.
    assert_eq!(count(&db, "huixi_customers").await, 0);
}

#[tokio::test]
async fn a_rerun_writes_nothing_and_a_new_session_moves_the_profile_without_refolding_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let calendar = sample("calendar.toml");
    analyze_week(&db, &calendar, &[]);
    let before = dump(&db).await;
    analyze_week(&db, &calendar, &[]);
    assert_eq!(
        dump(&db).await,
        before,
        "the same archive again changes nothing"
    );

    // Saturday: the customer closes with wangfang.
    let saturday = dir.path().join("saturday.jsonl");
    std::fs::write(
        &saturday,
        concat!(
            r#"{"msgid":"j_101","action":"send","from":"wmJourney","tolist":["wangfang"],"roomid":"","msgtime":1795233600000,"msgtype":"text","text":{"content":"法务看完了，就这么定了，怎么付款？"}}"#,
            "\n",
            r#"{"msgid":"j_102","action":"send","from":"wangfang","tolist":["wmJourney"],"roomid":"","msgtime":1795233660000,"msgtype":"text","text":{"content":"太好了！对公账户信息发您"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let contributions = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| r.contains("\"staff\":[\"liuyang\"]") && r.contains("\"session\""))
            .cloned()
            .collect()
    };
    let liuyang_before = contributions(&before);
    assert!(!liuyang_before.is_empty());
    let out = huixi(&["analyze", saturday.to_str().unwrap(), "--db", &db, "--json"]);
    let report = stdout_json(&out);
    let p = profile(&report, "wmJourney");
    assert_eq!(p["stage"], "won", "{p:#}");
    let last = p["stage_history"].as_array().unwrap().last().unwrap();
    assert_eq!(last["from"], "negotiating");
    assert!(strings(&last["evidence"]).contains(&"j_101".to_string()));
    // The sessions with liuyang were not touched: their contributions are the stored ones.
    assert_eq!(contributions(&dump(&db).await), liuyang_before);
    // Settings stay with the tenant: the library uploaded on the first run still tags.
    assert!(p["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["tag"] == "高"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_profile_agent_reads_the_fold_and_the_latest_sessions_and_cites_only_what_it_saw() {
    let mock = Mock::start(Behaviour::Valid).await;
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let base = mock.base_url();
    let report = analyze_week(
        &db,
        &sample("calendar.toml"),
        &["--llm-base-url", &base, "--llm-model", "mock-model"],
    );
    let p = profile(&report, "wmJourney");
    assert_eq!(p["analyser"], "llm:mock-model");
    assert_eq!(
        p["next_best_action"]["action"],
        "模型建议：约客户面谈敲定折扣"
    );
    let evidence = strings(&p["next_best_action"]["evidence"]);
    assert!(!evidence.is_empty());
    assert!(
        !evidence.contains(&"invented-msgid".to_string()),
        "{evidence:?}"
    );
    let needs: Vec<&str> = p["needs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        needs,
        ["模型需求：五十个账号"],
        "the invented citation is dropped"
    );

    let profile_calls: Vec<Value> = mock
        .bodies()
        .into_iter()
        .filter(|b| schema_name(b) == "opportunity_profile")
        .collect();
    assert!(!profile_calls.is_empty());
    // Incremental: the last call about wmJourney carries the fold and the latest two sessions only,
    // not the Monday messages.
    let last = profile_calls
        .iter()
        .rev()
        .find(|b| user_text(b).contains("j_015"))
        .expect("a profile call with Friday's message");
    let user = user_text(last);
    assert!(user.contains("\"profile\""));
    assert!(!user.contains("\"id\":\"j_001\""), "{user}");
    assert!(!user.contains("13900001111"), "phones are masked: {user}");

    // Same archive again: no session and no profile is asked about again.
    let calls = mock.count();
    analyze_week(
        &db,
        &sample("calendar.toml"),
        &["--llm-base-url", &base, "--llm-model", "mock-model"],
    );
    assert_eq!(mock.count(), calls);
    let usage = stdout_json(&huixi(&["usage", "--db", &db, "--by", "agent", "--json"]));
    assert!(usage
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["group"] == "opportunity_profile@1"));
}

#[tokio::test]
async fn the_week_on_mariadb_gives_what_sqlite_gives_and_a_rerun_changes_nothing() {
    let scratch = crate::mariadb::Scratch::new("journey").await;
    let url = scratch.url();
    let calendar = sample("calendar.toml");
    let on_mysql = analyze_week(&url, &calendar, &[]);
    let before = dump(&url).await;
    // Read again on request (a plain re-run skips the unchanged file: nothing to report).
    let again = analyze_week(&url, &calendar, &["--reread"]);
    assert_eq!(dump(&url).await, before);
    assert_eq!(again["customers"], on_mysql["customers"]);
    let skipped = analyze_week(&url, &calendar, &[]);
    assert_eq!(dump(&url).await, before);
    assert_eq!(skipped["unchanged_files"].as_array().unwrap().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let on_sqlite = analyze_week(&sqlite_url(dir.path()), &calendar, &[]);
    for field in ["customers", "duplicates", "metrics", "alerts"] {
        assert_eq!(on_mysql[field], on_sqlite[field], "{field}");
    }
}

fn line(id: &str, from: &str, to: &str, hhmm: &str, text: &str) -> String {
    let (h, m) = hhmm.split_once(':').unwrap();
    // Monday 2026-11-16, Beijing time.
    let at = 1_794_758_400_000_i64
        + (h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()) * 60_000;
    serde_json::json!({"msgid": id, "action": "send", "from": from, "tolist": [to], "roomid": "",
        "msgtime": at, "msgtype": "text", "text": {"content": text}})
    .to_string()
}

#[tokio::test]
async fn a_question_left_in_a_quiet_conversation_is_raised_when_the_archive_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let write = |name: &str, lines: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path.display().to_string()
    };
    let first = write(
        "first.jsonl",
        &[
            line("q1", "wmQuiet", "staffQ", "10:00", "请问发票怎么开？"),
            line("o1", "wmOther", "staffO", "10:04", "你好"),
            line("o2", "staffO", "wmOther", "10:05", "您好，请讲"),
        ],
    );
    let report = stdout_json(&huixi(&["analyze", &first, "--db", &db, "--json"]));
    assert!(timeouts(&report).is_empty(), "not due before 10:30");

    // The archive moves on with another conversation only; wmQuiet's chat is not analysed again.
    let later = write(
        "later.jsonl",
        &[
            line("n1", "wmNext", "staffO", "11:00", "在吗"),
            line("n2", "staffO", "wmNext", "11:01", "在的"),
        ],
    );
    let report = stdout_json(&huixi(&["analyze", &later, "--db", &db, "--json"]));
    assert_eq!(report["sessions"], 1);
    assert_eq!(
        timeouts(&report),
        [("q1".to_string(), "no_reply".to_string())]
    );
    // Raised once: not again by the next run, nor when the quiet conversation is analysed again.
    let again = stdout_json(&huixi(&["analyze", &later, "--db", &db, "--json"]));
    assert!(timeouts(&again).is_empty());
    stdout_json(&huixi(&["analyze", &first, "--db", &db, "--json"]));
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM huixi_alerts WHERE kind = 'response_timeout'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
}

/// A phone written by many customers: each profile keeps the first of the group and its size, not
/// the whole group, and a newcomer to the group refolds every member, listed or not.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_duplicate_group_is_bounded_in_each_profile_and_every_member_is_refolded() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let t0 = 1_795_136_400_000_i64;
    let write = |name: &str, from: usize, to: usize| {
        let lines: String = (from..to)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"msgid": format!("dup_{i}"), "action": "send", "from": format!("wmDup{i:03}"),
                           "tolist": [format!("staff{}", i % 7)], "roomid": "", "msgtime": t0 + i as i64 * 60_000,
                           "msgtype": "text", "text": {"content": "我的手机 13912345678，方便联系"}})
                )
            })
            .collect();
        let p = dir.path().join(name);
        std::fs::write(&p, lines).unwrap();
        p.display().to_string()
    };
    let first = write("a.jsonl", 0, 30);
    assert!(huixi(&["analyze", &first, "--db", &db, "--json"])
        .status
        .success());
    let second = write("b.jsonl", 30, 31);
    assert!(huixi(&["analyze", &second, "--db", &db, "--json"])
        .status
        .success());
    let profiles = rows_of(
        &db,
        &["SELECT customer, profile FROM huixi_customers ORDER BY customer"],
    )
    .await;
    assert_eq!(profiles.len(), 31);
    for row in &profiles {
        let json = &row[row.find('{').unwrap()..];
        let p: Value = serde_json::from_str(json).unwrap();
        let phone = p["duplicates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == "same_phone")
            .unwrap_or_else(|| panic!("{row}"));
        assert_eq!(
            phone["customer_count"], 31,
            "every member knows the newcomer: {row}"
        );
        assert_eq!(phone["customers"].as_array().unwrap().len(), 20);
    }
}
