//! WeCom's sensitive behaviours (敏感行为) as tenant rules: the twelve of its own engine — red packets,
//! phone numbers, e-mail addresses, 名片, QR codes, recalls, bank cards, ID numbers, files, links,
//! mini-programs and welcome messages — plus huixi's hand-offs (WeChat/QQ ids) and transfers. Each
//! is on or off with a severity, and the ones that need it an allow-list.
//!
//! The message-type rules here read what a staff member sends an external contact: a card whose
//! owner is outside the company, a link or mini-program the tenant did not allow, a file (a quote or
//! a contract more than others), an image whose QR code is a personal payment or contact code. Those
//! are what 飞单 — taking the deal to a private channel — looks like in an archive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Severity;
use crate::archive::{Event, Message, Role};

/// Every behaviour a tenant can turn on or off, by the name its settings use.
pub const NAMES: &[&str] = &[
    "redpacket",
    "transfer",
    "phone",
    "email",
    "bank_card",
    "id_card",
    "handoff",
    "card",
    "link",
    "weapp",
    "file",
    "qrcode",
    "revoke",
    "welcome",
];

/// One behaviour as a tenant watches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub enabled: bool,
    pub severity: Severity,
    /// What is allowed: partner companies whose cards may be sent (`card`), domains (`link`, and
    /// links in QR codes), mini-programs by name or username (`weapp`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Words in a file's name that make sending it matter more (`file`: 报价单, 合同), raised high.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marked: Vec<String>,
}

fn rule(severity: Severity) -> Rule {
    Rule {
        enabled: true,
        severity,
        allow: Vec::new(),
        marked: Vec::new(),
    }
}

/// A tenant's change to one rule: the fields it gives replace the default's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked: Option<Vec<String>>,
}

/// Every behaviour's rule, by name.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Behaviours(pub BTreeMap<String, Rule>);

impl Default for Behaviours {
    fn default() -> Self {
        let mut rules = BTreeMap::new();
        for name in NAMES {
            let mut r = rule(match *name {
                "phone" | "email" | "link" | "weapp" | "revoke" | "redpacket" => Severity::Medium,
                "file" | "welcome" => Severity::Low,
                _ => Severity::High,
            });
            match *name {
                // The archive does not mark a welcome message (欢迎语) as one: it reads as the
                // staff member's first text, so there is nothing to watch it by.
                "welcome" => r.enabled = false,
                // Articles of official accounts and the company's own WeCom pages are what staff
                // share every day.
                "link" => {
                    r.allow = vec!["mp.weixin.qq.com".into(), "work.weixin.qq.com".into()];
                }
                "file" => {
                    r.marked = ["报价单", "报价", "合同", "价目表", "底价", "客户名单"]
                        .map(String::from)
                        .to_vec();
                }
                _ => {}
            }
            rules.insert(name.to_string(), r);
        }
        Behaviours(rules)
    }
}

impl Behaviours {
    /// The defaults with a tenant's patches over them; names and impossible settings are refused.
    pub fn patched(patches: &BTreeMap<String, RulePatch>) -> Result<Behaviours, String> {
        let mut out = Behaviours::default();
        for (name, p) in patches {
            let Some(r) = out.0.get_mut(name) else {
                return Err(format!(
                    "unknown behaviour {name:?}; known: {}",
                    NAMES.join(", ")
                ));
            };
            if name == "welcome" && p.enabled == Some(true) {
                return Err(
                    "welcome: the archive does not mark welcome messages (欢迎语), so \
                            huixi cannot watch them; it stays off"
                        .into(),
                );
            }
            if let Some(e) = p.enabled {
                r.enabled = e;
            }
            if let Some(s) = p.severity {
                r.severity = s;
            }
            if let Some(a) = &p.allow {
                r.allow = a.iter().map(|s| s.trim().to_lowercase()).collect();
            }
            if let Some(m) = &p.marked {
                r.marked = m.clone();
            }
        }
        Ok(out)
    }

    /// The rule of `name` when it is on.
    pub fn on(&self, name: &str) -> Option<&Rule> {
        self.0.get(name).filter(|r| r.enabled)
    }
}

/// What a message-type rule found: the alert's kind, category, severity, word and text.
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub kind: &'static str,
    pub category: &'static str,
    pub severity: Severity,
    pub word: String,
    pub text: String,
}

/// Category of what takes a deal or a customer to a private channel.
pub const SIDE_DEAL: &str = "飞单";

/// The rules over one message's type: a card, link, mini-program, file or image (with the QR codes
/// read from its bytes, when they were available) that a staff member sent an external contact.
pub fn scan(m: &Message, rules: &Behaviours, qr_codes: &[String]) -> Vec<Behaviour> {
    let mut out = Vec::new();
    let outward = m.role() == Role::Staff && m.tolist.iter().any(|t| Role::of(t) == Role::Customer);
    if !outward {
        return out;
    }
    let found = |kind, category, severity, word: String, text: String| Behaviour {
        kind,
        category,
        severity,
        word,
        text,
    };
    match &m.event {
        Event::Card { corpname, userid } => {
            if let Some(r) = rules.on("card") {
                let external = Role::of(userid) == Role::Customer;
                let allowed = r
                    .allow
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(corpname.trim()));
                // 同一公司是 userid, 不同公司是 external_userid: a card of the staff member's own
                // company is an internal userid and nothing to watch.
                if corpname.trim().is_empty() && (external || userid.is_empty()) {
                    out.push(found(
                        "card",
                        SIDE_DEAL,
                        r.severity,
                        "个人微信名片".into(),
                        "名片：个人微信".into(),
                    ));
                } else if external && !allowed {
                    out.push(found(
                        "card",
                        SIDE_DEAL,
                        r.severity,
                        format!("他司名片：{corpname}"),
                        format!("名片：{corpname}"),
                    ));
                }
            }
        }
        Event::Link { url } => {
            if let Some(r) = rules.on("link") {
                if let Some(host) = outside_host(url, &r.allow) {
                    let title = m.text.as_deref().unwrap_or("");
                    out.push(found(
                        "link",
                        "外链",
                        r.severity,
                        host.clone(),
                        format!("链接 {host}：{title}"),
                    ));
                }
            }
        }
        Event::Weapp {
            displayname,
            username,
        } => {
            if let Some(r) = rules.on("weapp") {
                let allowed = r.allow.iter().any(|a| {
                    a.eq_ignore_ascii_case(displayname.trim()) || a.eq_ignore_ascii_case(username)
                });
                if !allowed {
                    let name = if displayname.is_empty() {
                        username
                    } else {
                        displayname
                    };
                    out.push(found(
                        "weapp",
                        "小程序",
                        r.severity,
                        name.clone(),
                        format!("小程序：{name}"),
                    ));
                }
            }
        }
        Event::Media { .. } if m.msgtype == "file" => {
            if let Some(r) = rules.on("file") {
                let name = m.text.as_deref().unwrap_or("").trim();
                let marked = r
                    .marked
                    .iter()
                    .any(|w| !w.is_empty() && name.contains(w.as_str()));
                out.push(found(
                    "file",
                    "文件外发",
                    if marked { Severity::High } else { r.severity },
                    name.to_string(),
                    format!("文件：{name}"),
                ));
            }
        }
        _ => {}
    }
    if let Some(r) = rules.on("qrcode") {
        let links = rules.0.get("link").map_or(&[][..], |l| &l.allow[..]);
        for payload in qr_codes {
            if let Some((category, severity, word)) = classify_qr(payload, r.severity, links) {
                out.push(found(
                    "qrcode",
                    category,
                    severity,
                    word.clone(),
                    format!("图片二维码：{word}"),
                ));
            }
        }
    }
    out
}

/// The host of `url` when it is not an allowed domain (or a subdomain of one).
fn outside_host(url: &str, allow: &[String]) -> Option<String> {
    let host = url::Url::parse(url.trim())
        .ok()?
        .host_str()?
        .trim_end_matches('.')
        .to_lowercase();
    let allowed = allow.iter().any(|d| {
        let d = d.trim_start_matches('.');
        host == d || host.ends_with(&format!(".{d}"))
    });
    (!allowed).then_some(host)
}

/// What a QR code's payload is, as a risk: a personal payment code (飞单), a personal WeChat contact
/// or group invitation (引流), or a link outside the allowed domains (外链). A WeCom contact code (the
/// company's own) and plain text are nothing to watch.
pub fn classify_qr(
    payload: &str,
    severity: Severity,
    allowed_domains: &[String],
) -> Option<(&'static str, Severity, String)> {
    let p = payload.trim();
    let lower = p.to_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|x| lower.starts_with(x));
    if starts(&[
        "wxp://",
        "https://wx.tenpay.com/",
        "https://payapp.weixin.qq.com/",
    ]) {
        return Some((SIDE_DEAL, Severity::High, "微信收款码".into()));
    }
    if starts(&[
        "https://qr.alipay.com/",
        "http://qr.alipay.com/",
        "alipays://",
    ]) {
        return Some((SIDE_DEAL, Severity::High, "支付宝收款码".into()));
    }
    if starts(&[
        "https://u.wechat.com/",
        "http://u.wechat.com/",
        "weixin://contacts/",
    ]) {
        return Some((
            "引流",
            severity.max(Severity::High),
            "个人微信二维码".into(),
        ));
    }
    if starts(&["https://weixin.qq.com/g/", "http://weixin.qq.com/g/"]) {
        return Some(("引流", Severity::Medium, "微信群二维码".into()));
    }
    if starts(&["https://work.weixin.qq.com/", "https://wework.qpic.cn/"]) {
        return None;
    }
    if starts(&["http://", "https://"]) {
        return outside_host(p, allowed_domains)
            .map(|host| ("外链", Severity::Medium, format!("二维码链接 {host}")));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(msgtype: &str, from: &str, to: &str, payload: serde_json::Value) -> Message {
        let line = serde_json::json!({"msgid": "m1", "action": "send", "from": from,
            "tolist": [to], "roomid": "", "msgtime": 1_795_136_400_000_i64,
            "msgtype": msgtype, msgtype: payload})
        .to_string();
        Message::parse(&line).unwrap()
    }

    fn words(m: &Message, rules: &Behaviours) -> Vec<(String, String)> {
        scan(m, rules, &[])
            .into_iter()
            .map(|b| (b.category.to_string(), b.word))
            .collect()
    }

    #[test]
    fn cards_of_people_outside_the_company_are_side_deals_and_a_colleagues_card_is_not() {
        let rules = Behaviours::default();
        // WeCom's documented card: corpname and userid.
        let personal = message(
            "card",
            "zhangsan",
            "wmCust",
            serde_json::json!({"corpname": "", "userid": "wmPrivate01"}),
        );
        assert_eq!(
            words(&personal, &rules),
            vec![("飞单".into(), "个人微信名片".into())]
        );
        let other = message(
            "card",
            "zhangsan",
            "wmCust",
            serde_json::json!({"corpname": "别家科技", "userid": "wmOther"}),
        );
        assert_eq!(words(&other, &rules)[0].1, "他司名片：别家科技");
        let colleague = message(
            "card",
            "zhangsan",
            "wmCust",
            serde_json::json!({"corpname": "会析科技", "userid": "lisi"}),
        );
        assert!(words(&colleague, &rules).is_empty());
        // A partner the tenant allows; a card the customer sends; a rule turned off.
        let mut patches = BTreeMap::new();
        patches.insert(
            "card".to_string(),
            RulePatch {
                allow: Some(vec!["别家科技".into()]),
                ..Default::default()
            },
        );
        assert!(words(&other, &Behaviours::patched(&patches).unwrap()).is_empty());
        let inbound = message(
            "card",
            "wmCust",
            "zhangsan",
            serde_json::json!({"corpname": "", "userid": "wmX"}),
        );
        assert!(words(&inbound, &rules).is_empty());
        patches.insert(
            "card".to_string(),
            RulePatch {
                enabled: Some(false),
                ..Default::default()
            },
        );
        assert!(words(&personal, &Behaviours::patched(&patches).unwrap()).is_empty());
    }

    #[test]
    fn links_and_mini_programs_outside_the_allow_lists() {
        let rules = Behaviours::default();
        let shop = message(
            "link",
            "zhangsan",
            "wmCust",
            serde_json::json!({"title": "店铺", "description": "", "link_url": "https://shop.example.cn/item?id=1", "image_url": ""}),
        );
        assert_eq!(
            words(&shop, &rules),
            vec![("外链".into(), "shop.example.cn".into())]
        );
        let article = message(
            "link",
            "zhangsan",
            "wmCust",
            serde_json::json!({"title": "公众号文章", "link_url": "https://mp.weixin.qq.com/s/abc"}),
        );
        assert!(words(&article, &rules).is_empty(), "an allowed domain");
        let app = message(
            "weapp",
            "zhangsan",
            "wmCust",
            serde_json::json!({"title": "下单", "description": "", "username": "gh_abc@app", "displayname": "私人小店"}),
        );
        assert_eq!(
            words(&app, &rules),
            vec![("小程序".into(), "私人小店".into())]
        );
        let mut patches = BTreeMap::new();
        patches.insert(
            "weapp".to_string(),
            RulePatch {
                allow: Some(vec!["私人小店".into()]),
                ..Default::default()
            },
        );
        assert!(words(&app, &Behaviours::patched(&patches).unwrap()).is_empty());
    }

    #[test]
    fn files_sent_out_and_marked_documents_higher() {
        let rules = Behaviours::default();
        let quote = message(
            "file",
            "zhangsan",
            "wmCust",
            serde_json::json!({"md5sum": "x", "filename": "2026报价单.xlsx", "fileext": "xlsx", "filesize": 1024, "sdkfileid": "f1"}),
        );
        let found = scan(&quote, &rules, &[]);
        assert_eq!(
            (found[0].category, found[0].severity),
            ("文件外发", Severity::High)
        );
        let photo = message(
            "file",
            "zhangsan",
            "wmCust",
            serde_json::json!({"filename": "说明.pdf", "fileext": "pdf", "sdkfileid": "f2"}),
        );
        assert_eq!(scan(&photo, &rules, &[])[0].severity, Severity::Low);
    }

    #[test]
    fn qr_payloads_are_classified() {
        let none: Vec<String> = Vec::new();
        let class = |p: &str| classify_qr(p, Severity::High, &none).map(|(c, _, w)| (c, w));
        assert_eq!(
            class("wxp://f2f0abcdef"),
            Some(("飞单", "微信收款码".into()))
        );
        assert_eq!(
            class("https://qr.alipay.com/fkx12345"),
            Some(("飞单", "支付宝收款码".into()))
        );
        assert_eq!(
            class("https://u.wechat.com/EAbc"),
            Some(("引流", "个人微信二维码".into()))
        );
        assert_eq!(
            class("https://weixin.qq.com/g/AbC"),
            Some(("引流", "微信群二维码".into()))
        );
        assert_eq!(class("https://work.weixin.qq.com/u/vc123"), None);
        assert_eq!(
            class("https://shop.example.cn/x").map(|c| c.0),
            Some("外链")
        );
        assert_eq!(class("就是一段文字"), None);
    }

    #[test]
    fn welcome_messages_stay_off_and_unknown_names_are_refused() {
        let mut patches = BTreeMap::new();
        patches.insert(
            "welcome".to_string(),
            RulePatch {
                enabled: Some(true),
                ..Default::default()
            },
        );
        assert!(Behaviours::patched(&patches)
            .unwrap_err()
            .contains("welcome"));
        let mut patches = BTreeMap::new();
        patches.insert("cards".to_string(), RulePatch::default());
        assert!(Behaviours::patched(&patches)
            .unwrap_err()
            .contains("unknown behaviour"));
        assert_eq!(Behaviours::default().0.len(), NAMES.len());
    }
}
