//! `huixi words scan` from the command line.

use std::io::Write;
use std::process::Stdio;

fn scan(lexicon: &str, input: &str) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let lex = dir.path().join("lex.txt");
    std::fs::write(&lex, lexicon).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_huixi"))
        .args([
            "words",
            "scan",
            "--lexicon",
            lex.to_str().unwrap(),
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn scan_prints_one_object_per_line_with_offsets_into_the_original() {
    let lines = scan(
        "加我微信,引流,high\n飞单,违规,high\n",
        "您好，请问有什么可以帮您\n加*我*微*信吧\n這是飛單\n",
    );
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["line"], 1);
    assert!(lines[0]["matches"].as_array().unwrap().is_empty());
    let m = &lines[1]["matches"][0];
    assert_eq!(m["word"], "加我微信");
    assert_eq!(m["matched_text"], "加*我*微*信");
    assert_eq!((m["start"].as_u64(), m["end"].as_u64()), (Some(0), Some(7)));
    assert_eq!(m["category"], "引流");
    assert_eq!(m["severity"], "high");
    let m = &lines[2]["matches"][0];
    assert_eq!(m["word"], "飞单");
    assert_eq!(m["matched_text"], "飛單");
    assert_eq!((m["start"].as_u64(), m["end"].as_u64()), (Some(2), Some(4)));
}

#[test]
fn bad_lexicon_lines_are_named_and_the_rest_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let lex = dir.path().join("lex.txt");
    std::fs::write(
        &lex,
        "# ok\n投诉,客诉,medium\n坏行没有字段\n退款,客诉,urgent\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_huixi"))
        .args([
            "words",
            "scan",
            "--lexicon",
            lex.to_str().unwrap(),
            "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all("我要投诉\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = lex.display().to_string();
    assert!(stderr.contains(&format!("{name}:3")), "{stderr}");
    assert!(stderr.contains(&format!("{name}:4")), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["matches"][0]["word"], "投诉");
}
