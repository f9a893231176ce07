//! `huixi eval`: the shipped suites hold their baselines offline; prompt variants against the mock
//! model side by side; the regression gate; replay without a model; JUnit; the HTML report rendered by
//! headless Chromium.

use std::path::Path;

use serde_json::Value;

use crate::helpers::*;
use crate::mock_llm::{Behaviour, Mock};

const SUITES: [&str; 13] = [
    "quality_dev",
    "quality_dev_b",
    "quality_test",
    "reviews",
    "emotion",
    "staff_score",
    "keywords",
    "competitors",
    "opportunity",
    "alerts",
    "alert_probes",
    "stage_probes",
    "alert_chats",
];

#[test]
fn every_shipped_suite_holds_its_offline_baseline() {
    for name in SUITES {
        let dir = repo().join("evals").join(name);
        let out = huixi(&[
            "eval",
            dir.to_str().unwrap(),
            "--baseline",
            dir.join("baseline.json").to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let table = String::from_utf8_lossy(&out.stdout);
        let suite = std::fs::read_to_string(dir.join("suite.toml")).unwrap();
        let dataset = suite
            .lines()
            .find_map(|l| l.strip_prefix("dataset = "))
            .unwrap()
            .trim_matches('"');
        let cases = std::fs::read_to_string(dir.join(dataset))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        assert!(
            table.contains("offline") && table.contains(&format!("{cases} cases")),
            "{table}"
        );
    }
}

/// A suite of four chats whose customers are all unhappy, with a good and a worse prompt variant.
fn prompt_suite(dir: &Path, worse_name: &str) {
    let worse = dir.join("prompts-worse");
    std::fs::create_dir_all(&worse).unwrap();
    let shipped = std::fs::read_to_string(repo().join("prompts/emotion.hbs")).unwrap();
    std::fs::write(
        worse.join("emotion.hbs"),
        format!("{shipped}\nEVAL_WORSE\n"),
    )
    .unwrap();
    let cases: Vec<String> = [
        "太慢了，我很失望",
        "又出错了，受不了",
        "你们这服务太差",
        "我要投诉",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| {
        serde_json::json!({"id": format!("c{i}"), "messages": [
                {"from": "wmUnhappy", "text": t}, {"from": "staffX", "text": "抱歉，马上处理"}],
                "expect": {"customer_emotion": "negative"}})
        .to_string()
    })
    .collect();
    std::fs::write(dir.join("cases.jsonl"), cases.join("\n")).unwrap();
    std::fs::write(
        dir.join("suite.toml"),
        format!(
            "name = \"prompts\"\nagents = [\"emotion\"]\ndataset = \"cases.jsonl\"\n\
             [[variants]]\nname = \"shipped\"\nkind = \"llm\"\n\
             [[variants]]\nname = \"{worse_name}\"\nkind = \"llm\"\nprompts_dir = \"prompts-worse\"\n"
        ),
    )
    .unwrap();
}

fn eval(dir: &Path, mock: &Mock, extra: &[&str]) -> std::process::Output {
    let url = mock.base_url();
    let mut args = vec![
        "eval",
        dir.to_str().unwrap(),
        "--llm-base-url",
        &url,
        "--llm-model",
        "mock-model",
    ];
    args.extend(extra);
    huixi(&args)
}

/// Runs the suite in `dir` against the mock, recording the report; the run must succeed.
fn recorded(dir: &Path, mock: &Mock) -> (std::process::Output, std::path::PathBuf) {
    let report = dir.join("report.json");
    let out = tokio::task::block_in_place(|| eval(dir, mock, &["--out", report.to_str().unwrap()]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, report)
}

#[tokio::test(flavor = "multi_thread")]
async fn prompt_variants_side_by_side_and_a_worse_one_fails_the_gate() {
    let mock = Mock::start(Behaviour::Valid).await;
    let dir = tempfile::tempdir().unwrap();
    prompt_suite(dir.path(), "candidate");
    let (out, report) = recorded(dir.path(), &mock);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("shipped") && table.contains("candidate"),
        "{table}"
    );
    assert!(
        table.contains("cases that differ between variants"),
        "{table}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let acc = |i: usize| {
        r["variants"][i]["scores"]["metrics"]["customer_emotion.accuracy"]
            .as_f64()
            .unwrap()
    };
    assert_eq!((acc(0), acc(1)), (1.0, 0.0));
    assert_eq!(
        r["variants"][0]["scores"]["metrics"]["schema_valid_rate"],
        1.0
    );
    assert!(
        r["variants"][0]["scores"]["metrics"]["tokens.prompt"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The gate: the shipped prompt's metrics saved as the baseline of variant "candidate"; the
    // engineer's edited prompt under that name falls below it.
    let good = tempfile::tempdir().unwrap();
    prompt_suite(good.path(), "unused");
    let baseline = dir.path().join("baseline.json");
    std::fs::write(
        good.path().join("suite.toml"),
        "name = \"prompts\"\nagents = [\"emotion\"]\ndataset = \"cases.jsonl\"\n\
         [[variants]]\nname = \"candidate\"\nkind = \"llm\"\n",
    )
    .unwrap();
    let out = tokio::task::block_in_place(|| {
        eval(
            good.path(),
            &mock,
            &["--save-baseline", baseline.to_str().unwrap()],
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gated = tokio::task::block_in_place(|| {
        eval(
            dir.path(),
            &mock,
            &[
                "--variant",
                "candidate",
                "--baseline",
                baseline.to_str().unwrap(),
                "--max-regression",
                "0.05",
            ],
        )
    });
    assert!(
        !gated.status.success(),
        "a worse variant must fail the gate"
    );
    let stderr = String::from_utf8_lossy(&gated.stderr);
    assert!(
        stderr.contains("customer_emotion.accuracy fell from 1.000 to 0.000"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recorded_report_is_rescored_without_calling_the_model() {
    let mock = Mock::start(Behaviour::Valid).await;
    let dir = tempfile::tempdir().unwrap();
    prompt_suite(dir.path(), "candidate");
    let (_, report) = recorded(dir.path(), &mock);
    let calls = mock.count();
    let replay = |file: &str| {
        huixi(&[
            "eval",
            dir.path().to_str().unwrap(),
            "--replay",
            report.to_str().unwrap(),
            "--json",
            "--out",
            dir.path().join(file).to_str().unwrap(),
        ])
    };
    let a = tokio::task::block_in_place(|| replay("a.json"));
    let b = tokio::task::block_in_place(|| replay("b.json"));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(mock.count(), calls, "replay calls no model");
    assert_eq!(a.stdout, b.stdout, "replay is deterministic");
    let first: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let again: Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(
        first["variants"][1]["scores"],
        again["variants"][1]["scores"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn junit_and_an_html_report_that_chromium_renders() {
    let mock = Mock::start(Behaviour::Valid).await;
    let dir = tempfile::tempdir().unwrap();
    prompt_suite(dir.path(), "candidate");
    let html = dir.path().join("report.html");
    let junit = dir.path().join("junit.xml");
    let out = tokio::task::block_in_place(|| {
        eval(
            dir.path(),
            &mock,
            &[
                "--report-html",
                html.to_str().unwrap(),
                "--junit",
                junit.to_str().unwrap(),
            ],
        )
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testsuite name="prompts/shipped" tests="4" failures="0">"#),
        "{xml}"
    );
    assert!(
        xml.contains(r#"<testsuite name="prompts/candidate" tests="4" failures="4">"#),
        "{xml}"
    );
    assert!(xml.contains("customer_emotion: expected negative, got positive"));

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg")
            && page.contains("Confusion matrices")
            && page.contains("Failing cases")
    );
    assert!(
        page.contains("太慢了，我很失望"),
        "failing cases show the conversation"
    );
    assert!(
        !page.contains("<script") && !page.contains("src=\"http") && !page.contains("<link"),
        "self-contained: nothing fetched"
    );

    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| std::process::Command::new(c).arg("--version").output().is_ok())
        .expect("Chromium is needed to check the report renders: scripts/test.sh installs it (apt-get install chromium)");
    let shot = dir.path().join("report.png");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1600",
            &format!("--screenshot={}", shot.display()),
            &format!("file://{}", html.display()),
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A blank page compresses to a few KB; a page with tables and charts does not.
    assert!(png.len() > 30_000, "screenshot is {} bytes", png.len());
}

/// Triage: on the labelled test set, sessions the offline analysers read surely keep that reading
/// and cost no call; the rest go to the model. The saving is what the kept sessions' prompts weigh.
#[tokio::test(flavor = "multi_thread")]
async fn triage_sends_only_unsure_sessions_to_the_model() {
    let mock = Mock::start(Behaviour::Valid).await;
    let dir = tempfile::tempdir().unwrap();
    let data = repo().join("evals/data/test.jsonl");
    std::fs::write(
        dir.path().join("suite.toml"),
        format!(
            "name = \"triage\"\nagents = [\"emotion\", \"staff_score\", \"opportunity\"]\n\
             dataset = {:?}\n\
             [[variants]]\nname = \"model\"\nkind = \"llm\"\nmodel = \"mock-no-usage\"\n\
             [[variants]]\nname = \"triaged\"\nkind = \"llm\"\nmodel = \"mock-no-usage\"\n\
             triage = 0.8\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let (_, report) = recorded(dir.path(), &mock);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let metric = |v: usize, m: &str| r["variants"][v]["scores"]["metrics"][m].as_f64();
    let outcomes = |v: usize| r["variants"][v]["outcomes"].as_array().unwrap().clone();
    let kept: Vec<Value> = outcomes(1)
        .into_iter()
        .filter(|o| o["triaged_tokens"].as_u64().unwrap() > 0)
        .collect();
    let cases = outcomes(0).len();
    assert!(
        !kept.is_empty() && kept.len() < cases,
        "{} of {cases} kept",
        kept.len()
    );
    // What was kept is the offline reading, sure of itself; what was asked is the model's.
    for o in &kept {
        assert!(o["result"]["analyser"]
            .as_str()
            .unwrap()
            .starts_with("offline"));
        assert_eq!(o["prompt_tokens"], 0);
    }
    for o in outcomes(1)
        .iter()
        .filter(|o| o["triaged_tokens"].as_u64() == Some(0))
    {
        assert!(o["prompt_tokens"].as_u64().unwrap() > 0, "{o}");
    }
    let (all, asked, saved) = (
        metric(0, "tokens.prompt").unwrap(),
        metric(1, "tokens.prompt").unwrap(),
        metric(1, "tokens.triaged").unwrap(),
    );
    assert!(asked < all && saved > 0.0, "{all} {asked} {saved}");
    eprintln!(
        "triage 0.8 on evals/data/test.jsonl: {} of {cases} sessions kept offline; prompt tokens \
         {all} untriaged, {asked} triaged, {saved} saved",
        kept.len()
    );
    assert_eq!(
        metric(1, "triage.kept_rate"),
        Some(kept.len() as f64 / cases as f64)
    );
    // The untriaged run asked about every case: the kept ones cost it what triage says it saved (the
    // server reports no usage, so both are huixi's own count; a repair request may add a little).
    let spent_on_kept: f64 = outcomes(0)
        .iter()
        .filter(|o| kept.iter().any(|k| k["case"] == o["case"]))
        .map(|o| o["prompt_tokens"].as_f64().unwrap())
        .sum();
    assert!(
        (spent_on_kept - saved).abs() <= 0.1 * spent_on_kept,
        "{spent_on_kept} {saved}"
    );
}
