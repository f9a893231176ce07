//! WeCom's sensitive behaviours over real message shapes (the documented JSON of each msgtype), the
//! 飞单 finding, tenant rules, and the consent list.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::helpers::*;

const T0: i64 = 1_795_136_400_000;

fn line(id: &str, from: &str, to: &str, msgtype: &str, payload: Value, minute: i64) -> String {
    let mut m = json!({"msgid": id, "action": "send", "from": from, "tolist": [to], "roomid": "",
        "msgtime": T0 + minute * 60_000, "msgtype": msgtype});
    m[msgtype] = payload;
    m.to_string()
}

/// (msgid, kind, category) of every alert of a report.
fn alerts(report: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for a in report["alerts"].as_array().unwrap() {
        out.insert((
            a["msgid"].as_str().unwrap().to_string(),
            a["kind"].as_str().unwrap().to_string(),
            a["category"].as_str().unwrap().to_string(),
        ));
    }
    out
}

fn archive(dir: &std::path::Path, lines: &[String]) -> String {
    let path = dir.join("rules.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.display().to_string()
}

/// `huixi serve` without workers: what it answers, not what it analyses.
fn api_only(db: &str) -> (std::process::Child, String) {
    spawn_serve(
        std::process::Command::new(env!("CARGO_BIN_EXE_huixi")).args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db,
            "--no-worker",
        ]),
    )
}

fn rule_archive() -> Vec<String> {
    let (s, c) = ("zhangsan", "wmCust1");
    vec![
        line(
            "card_personal",
            s,
            c,
            "card",
            json!({"corpname": "", "userid": "wmPrivate"}),
            1,
        ),
        line(
            "card_colleague",
            s,
            c,
            "card",
            json!({"corpname": "会析科技", "userid": "lisi"}),
            2,
        ),
        line(
            "card_inbound",
            c,
            s,
            "card",
            json!({"corpname": "", "userid": "wmFriend"}),
            3,
        ),
        line(
            "link_shop",
            s,
            c,
            "link",
            json!({"title": "店铺", "description": "特价", "link_url": "https://shop.private.cn/a", "image_url": ""}),
            4,
        ),
        line(
            "link_article",
            s,
            c,
            "link",
            json!({"title": "文章", "description": "", "link_url": "https://mp.weixin.qq.com/s/x", "image_url": ""}),
            5,
        ),
        line(
            "weapp",
            s,
            c,
            "weapp",
            json!({"title": "下单", "description": "", "username": "gh_x@app", "displayname": "小李优选"}),
            6,
        ),
        line(
            "file_quote",
            s,
            c,
            "file",
            json!({"md5sum": "a", "filename": "报价单2026.xlsx", "fileext": "xlsx", "filesize": 100, "sdkfileid": "f1"}),
            7,
        ),
        line(
            "email",
            c,
            s,
            "text",
            json!({"content": "发我邮箱 wang@example.com"}),
            8,
        ),
        line(
            "id_card",
            c,
            s,
            "text",
            json!({"content": "身份证 11010519491231002X"}),
            9,
        ),
        line(
            "id_bad",
            c,
            s,
            "text",
            json!({"content": "单号 11010519491231003X"}),
            10,
        ),
        line(
            "mixed",
            c,
            s,
            "mixed",
            json!({"item": [{"type": "text", "content": "{\"content\":\"电话13912345678\"}"}]}),
            11,
        ),
        line(
            "chatrecord",
            s,
            c,
            "chatrecord",
            json!({"title": "记录", "item": [{"type": "ChatRecordText", "msgtime": 1, "content": "{\"content\":\"加我微信 sales_li2026\"}", "from_chatroom": false}]}),
            12,
        ),
    ]
}

/// Each rule on the documented shape of its msgtype, with the negatives beside it: a colleague's
/// card, a card the customer sends, an allowed domain, an ID number whose check digit is wrong.
#[test]
fn every_rule_fires_on_its_message_type_and_not_on_its_negatives() {
    let dir = tempfile::tempdir().unwrap();
    let file = archive(dir.path(), &rule_archive());
    let report = stdout_json(&huixi(&[
        "analyze",
        &file,
        "--db",
        &sqlite_url(dir.path()),
        "--json",
    ]));
    let got = alerts(&report);
    let has = |id: &str, kind: &str, category: &str| {
        got.contains(&(id.to_string(), kind.to_string(), category.to_string()))
    };
    assert!(has("card_personal", "card", "飞单"), "{got:?}");
    assert!(has("link_shop", "link", "外链"), "{got:?}");
    assert!(has("weapp", "weapp", "小程序"), "{got:?}");
    assert!(has("file_quote", "file", "文件外发"), "{got:?}");
    assert!(has("email", "pii", "隐私"), "{got:?}");
    assert!(has("id_card", "pii", "隐私"), "{got:?}");
    assert!(has("mixed", "pii", "隐私"), "{got:?}");
    assert!(has("chatrecord", "handoff", "引流"), "{got:?}");
    for quiet in ["card_colleague", "card_inbound", "link_article", "id_bad"] {
        assert!(got.iter().all(|(id, _, _)| id != quiet), "{quiet}: {got:?}");
    }
    let quote = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["msgid"] == "file_quote")
        .unwrap();
    assert_eq!(quote["severity"], "high", "a marked document: {quote}");
    // Alert text is masked like every other.
    let id = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["msgid"] == "id_card")
        .unwrap();
    assert!(!id["text"].as_str().unwrap().contains("19491231"), "{id}");
}

/// A tenant turns rules off, sets a severity, allows a domain, and a welcome-message rule it cannot
/// have is refused naming the field; the next analysis follows the settings.
#[tokio::test(flavor = "multi_thread")]
async fn behaviour_rules_are_tenant_settings() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    let file = archive(dir.path(), &rule_archive());
    let a = token(&db, &["--tenant", "default"]);
    let (mut child, base) = api_only(&db);
    let http = reqwest::Client::new();
    let put = |body: Value| {
        http.put(format!("{base}/v1/settings"))
            .bearer_auth(&a)
            .json(&body)
            .send()
    };
    let refused = put(json!({"behaviours": {"welcome": {"enabled": true}}}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let why: Value = refused.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("behaviours"),
        "{why}"
    );
    let ok = put(json!({"behaviours": {
        "card": {"enabled": false},
        "link": {"allow": ["private.cn"]},
        "email": {"severity": "high"},
    }}))
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let view: Value = ok.json().await.unwrap();
    let rules = &view["effective"]["behaviours"];
    assert_eq!(rules["card"]["enabled"], false);
    assert_eq!(
        rules["welcome"]["enabled"], false,
        "welcome stays off: {rules}"
    );
    assert_eq!(
        rules.as_object().unwrap().len(),
        14,
        "every behaviour is listed: {rules}"
    );
    child.kill().unwrap();
    let _ = child.wait();

    let report = stdout_json(&huixi(&["analyze", &file, "--db", &db, "--json"]));
    let got = alerts(&report);
    assert!(
        got.iter().all(|(id, _, _)| id != "card_personal"),
        "card is off: {got:?}"
    );
    assert!(
        got.iter().all(|(id, _, _)| id != "link_shop"),
        "the domain is allowed: {got:?}"
    );
    let email = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["msgid"] == "email")
        .unwrap();
    assert_eq!(email["severity"], "high");
}

/// The sample's 张伟 session hands the customer a WeChat id, offers a private discount and a private
/// transfer "别告诉公司": one 飞单 finding citing those messages, on the session and in the customer's
/// profile. No other sample session is one.
#[test]
fn the_samples_side_deal_session_is_one_finding_with_its_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let report = stdout_json(&huixi(&[
        "analyze",
        sample_archive().to_str().unwrap(),
        "--db",
        &sqlite_url(dir.path()),
        "--json",
    ]));
    let with: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["side_deal"].is_null())
        .collect();
    assert_eq!(with.len(), 1, "{with:?}");
    let deal = &with[0]["side_deal"];
    assert_eq!(deal["staff"], json!(["zhangwei"]));
    assert!(deal["score"].as_u64().unwrap() >= 50, "{deal}");
    let evidence: Vec<&str> = deal["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        evidence.contains(&"b_016") && evidence.contains(&"b_020"),
        "{deal}"
    );
    let profile = report["customers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["customer"] == "wmCustB")
        .unwrap();
    assert_eq!(
        profile["side_deals"][0]["session"], with[0]["session"],
        "{profile}"
    );
}

/// 拒绝存档: the sample's customer D agreed, then refused, with 孙浩; a refusal that came without
/// `tolist` is kept too, and the list says who, since when and with whom.
#[tokio::test(flavor = "multi_thread")]
async fn consents_list_who_refused_archiving_since_when_and_with_whom() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlite_url(dir.path());
    stdout_json(&huixi(&[
        "enqueue",
        sample_archive().to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    // A refusal as WeCom has sent it: the user only in the payload.
    let bare = dir.path().join("bare.jsonl");
    std::fs::write(
        &bare,
        json!({"msgid": "consent_bare", "action": "send", "msgtime": T0, "msgtype": "disagree",
               "disagree": {"userid": "wmNoEnvelope", "disagree_time": T0}})
        .to_string(),
    )
    .unwrap();
    let queued = stdout_json(&huixi(&[
        "enqueue",
        bare.to_str().unwrap(),
        "--db",
        &db,
        "--json",
    ]));
    assert_eq!(
        queued["rejected_lines"].as_array().map_or(0, Vec::len),
        0,
        "{queued}"
    );
    let a = token(&db, &["--tenant", "default"]);
    let (mut child, base) = api_only(&db);
    let http = reqwest::Client::new();
    let refused: Value = http
        .get(format!("{base}/v1/consents?state=disagree"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    let items = refused["items"].as_array().unwrap();
    let d = items
        .iter()
        .find(|c| c["customer"] == "wmCustD")
        .unwrap_or_else(|| panic!("{refused}"));
    assert_eq!(d["staff"], "sunhao");
    assert_eq!(d["since"], 1_763_608_140_000_i64);
    assert_eq!(d["msgid"], "d_057");
    assert_eq!(d["events"], 2, "it agreed first: {d}");
    assert!(
        items.iter().any(|c| c["customer"] == "wmNoEnvelope"),
        "{refused}"
    );
    assert!(items.iter().all(|c| c["state"] == "disagree"));
}
