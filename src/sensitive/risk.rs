//! Risky behaviour over a whole session, on top of per-message matching: every lexicon or private-data
//! hit becomes an alert, and so do things only the session shows — a recall of a message that had a hit
//! (the sender knew it should not have been said), and red packets or transfers above the tenant's limit.
//!
//! Alert text is always masked (脱敏): alerts are stored and shown to managers, and must not carry a
//! customer's phone or card number in clear.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::behaviour::{self, Behaviours};
use super::refusal;
use super::{mask_pii, Engine, MatchKind, Severity};
use crate::archive::{Event, Session};

/// One thing a manager should look at, pointing at the messages that show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    pub session: String,
    pub msgid: String,
    /// `sensitive` (lexicon), `pii` (phone, bank card), `handoff` (WeChat/QQ id), `revoke`, `redpacket`,
    /// `transfer`.
    pub kind: String,
    pub category: String,
    pub severity: Severity,
    /// The lexicon entry or built-in detector that fired.
    pub word: String,
    /// The message text, masked.
    pub text: String,
    /// Character offsets of the hit in the message text (0, 0 for whole-message alerts).
    pub start: usize,
    pub end: usize,
    /// Every msgid that supports the alert (the hit itself; for a revoke, also the message revoked).
    pub evidence: Vec<String>,
    /// How many times the word occurs in the message: one alert per word per message, however often
    /// it is repeated (1 for whole-message alerts).
    #[serde(default = "one")]
    pub occurrences: usize,
}

fn one() -> usize {
    1
}

/// A tenant's rules: limits for money moving inside a chat, and which behaviours it watches.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskRules {
    pub redpacket_threshold_fen: i64,
    pub transfer_threshold_fen: i64,
    pub behaviours: Behaviours,
}

impl Default for RiskRules {
    fn default() -> Self {
        RiskRules {
            redpacket_threshold_fen: 20_000,
            transfer_threshold_fen: 100_000,
            behaviours: Behaviours::default(),
        }
    }
}

/// The rule a text detection answers to; `None` for the lexicon, which the tenant edits itself.
fn rule_of(kind: MatchKind) -> Option<&'static str> {
    Some(match kind {
        MatchKind::Lexicon => return None,
        MatchKind::Phone => "phone",
        MatchKind::BankCard => "bank_card",
        MatchKind::IdCard => "id_card",
        MatchKind::Email => "email",
        MatchKind::WechatId | MatchKind::QqId => "handoff",
    })
}

/// Longest alert text kept; the msgid leads to the full message.
const ALERT_TEXT_CHARS: usize = 200;
/// Alerts one message can raise from its words: a message that repeats 加我微信 a thousand times is
/// one thing for a manager to look at, not a thousand (nor a thousand webhooks). Beyond this many
/// different words, the most severe are kept.
pub const MAX_WORD_ALERTS_PER_MESSAGE: usize = 16;

/// What a message with hits showed, for a later recall of it: the highest severity, the words hit and
/// the masked text.
pub type Flag = (Severity, Vec<String>, String);

pub fn scan_session(engine: &Engine, rules: &RiskRules, session: &Session) -> Vec<Alert> {
    scan_messages(
        engine,
        rules,
        &session.id,
        &session.messages,
        &HashMap::new(),
        &session.qr_codes,
    )
}

/// The alerts of `messages`, in order, as part of session `session_id` (empty for messages scanned
/// as they arrive, before any session holds them). `earlier` flags messages that came before these
/// (a recall may take back a message stored minutes ago).
pub fn scan_messages<'a>(
    engine: &Engine,
    rules: &RiskRules,
    session_id: &str,
    messages: impl IntoIterator<Item = &'a crate::archive::Message>,
    earlier: &HashMap<String, Flag>,
    qr_codes: &std::collections::BTreeMap<String, Vec<String>>,
) -> Vec<Alert> {
    let on = |name: &str| rules.behaviours.on(name);
    let mut alerts = Vec::new();
    // msgid -> flag, for recalls that come later among these messages.
    let mut flagged: HashMap<&str, Flag> = HashMap::new();
    for m in messages {
        let alert =
            |kind: &str, category: &str, severity, word: &str, text: &str, span: (usize, usize)| {
                Alert {
                    session: session_id.to_string(),
                    msgid: m.msgid.clone(),
                    kind: kind.into(),
                    category: category.into(),
                    severity,
                    word: word.into(),
                    text: text.chars().take(ALERT_TEXT_CHARS).collect(),
                    start: span.0,
                    end: span.1,
                    evidence: vec![m.msgid.clone()],
                    occurrences: 1,
                }
            };
        if let Some(text) = &m.text {
            let mut hits = engine.scan(text);
            // Detectors the tenant turned off drop out; the others take the tenant's severity.
            hits.retain_mut(|h| match rule_of(h.kind) {
                None => true,
                Some(name) => match on(name) {
                    Some(r) => {
                        h.severity = r.severity;
                        true
                    }
                    None => false,
                },
            });
            // An offer's words in a clause that refuses it are not an offer (`refusal`).
            hits.retain(|h| h.kind != MatchKind::Lexicon || !refusal::taken_back(text, h));
            // Text reordered by a bidi override is scanned as it shows too; such hits point at the
            // message (offsets 0, 0), since they have no span in the stored order.
            if let Some(visual) = super::normalize::visual_order(text) {
                for mut hit in engine.scan(&visual) {
                    hit.start = 0;
                    hit.end = 0;
                    hits.push(hit);
                }
            }
            if !hits.is_empty() {
                let masked = mask_pii(text);
                // One alert per word per message, at its first occurrence; the most severe words
                // first when there are too many (a stable sort keeps text order among equals).
                let mut seen: Vec<(&str, &str)> = Vec::new();
                let mut distinct: Vec<&super::Match> = Vec::new();
                let mut counts: Vec<usize> = Vec::new();
                for hit in &hits {
                    let key = (hit.category.as_str(), hit.word.as_str());
                    match seen.iter().position(|k| *k == key) {
                        Some(i) => counts[i] += 1,
                        None => {
                            seen.push(key);
                            distinct.push(hit);
                            counts.push(1);
                        }
                    }
                }
                let count_of = |hit: &super::Match| {
                    let key = (hit.category.as_str(), hit.word.as_str());
                    seen.iter().position(|k| *k == key).map_or(1, |i| counts[i])
                };
                if distinct.len() > MAX_WORD_ALERTS_PER_MESSAGE {
                    distinct.sort_by_key(|h| std::cmp::Reverse(h.severity));
                    distinct.truncate(MAX_WORD_ALERTS_PER_MESSAGE);
                    distinct.sort_by_key(|h| h.start);
                }
                for hit in distinct {
                    let kind = match hit.kind {
                        MatchKind::Lexicon => "sensitive",
                        MatchKind::Phone
                        | MatchKind::BankCard
                        | MatchKind::IdCard
                        | MatchKind::Email => "pii",
                        MatchKind::WechatId | MatchKind::QqId => "handoff",
                    };
                    let mut a = alert(
                        kind,
                        &hit.category,
                        hit.severity,
                        &hit.word,
                        &masked,
                        (hit.start, hit.end),
                    );
                    a.occurrences = count_of(hit);
                    alerts.push(a);
                }
                let entry =
                    flagged
                        .entry(m.msgid.as_str())
                        .or_insert((Severity::Low, Vec::new(), masked));
                for hit in &hits {
                    entry.0 = entry.0.max(hit.severity);
                    if !entry.1.contains(&hit.word) {
                        entry.1.push(hit.word.clone());
                    }
                }
            }
            if let Some(fen) = transfer_amount_fen(text).filter(|_| on("transfer").is_some()) {
                if fen >= rules.transfer_threshold_fen {
                    let masked = mask_pii(text);
                    alerts.push(alert(
                        "transfer",
                        "资金往来",
                        Severity::High,
                        "transfer",
                        &masked,
                        (0, 0),
                    ));
                }
            }
        }
        match &m.event {
            Event::RedPacket {
                external,
                total_amount_fen,
                total_count,
            } if *total_amount_fen >= rules.redpacket_threshold_fen
                && on("redpacket").is_some() =>
            {
                let text = format!(
                    "{}红包 ¥{}.{:02}（{}个）{}",
                    if *external { "互通" } else { "" },
                    total_amount_fen / 100,
                    total_amount_fen % 100,
                    total_count,
                    m.text.as_deref().unwrap_or("")
                );
                let severity = if *total_amount_fen >= 5 * rules.redpacket_threshold_fen {
                    Severity::High
                } else {
                    Severity::Medium
                };
                alerts.push(alert(
                    "redpacket",
                    "资金往来",
                    severity,
                    "redpacket",
                    &text,
                    (0, 0),
                ));
            }
            Event::Revoke { pre_msgid } if on("revoke").is_some() => {
                let flag = flagged
                    .get(pre_msgid.as_str())
                    .or_else(|| earlier.get(pre_msgid));
                if let Some((severity, words, text)) = flag {
                    let mut a = alert(
                        "revoke",
                        "撤回敏感消息",
                        (*severity).max(Severity::Medium),
                        &words.join("、"),
                        text,
                        (0, 0),
                    );
                    a.evidence.push(pre_msgid.clone());
                    alerts.push(a);
                }
            }
            _ => {}
        }
        let qr = qr_codes.get(&m.msgid).map_or(&[][..], Vec::as_slice);
        for b in behaviour::scan(m, &rules.behaviours, qr) {
            alerts.push(alert(
                b.kind,
                b.category,
                b.severity,
                &b.word,
                &mask_pii(&b.text),
                (0, 0),
            ));
        }
    }
    alerts
}

/// An amount of money moved by transfer that a text announces ("转账5000元", "给你打款 2.5万"), in fen.
/// Only amounts tied to a transfer verb count: a price quote is not a transfer.
fn transfer_amount_fen(text: &str) -> Option<i64> {
    const VERBS: &[&str] = &[
        "转账",
        "转给你",
        "转你",
        "打款",
        "汇款",
        "打钱",
        "转钱",
        "私转",
    ];
    let pos = VERBS
        .iter()
        .filter_map(|v| text.find(v).map(|p| p + v.len()))
        .min()?;
    // Look for the first number within a short window after the verb, or just before it.
    let window_start = text[..pos]
        .char_indices()
        .rev()
        .nth(12)
        .map_or(0, |(i, _)| i);
    let tail: String = text[window_start..].chars().take(40).collect();
    parse_amount_fen(&tail)
}

/// First money amount in a text: digits with an optional decimal part, then 万/w/k or 元/块, or after ¥.
fn parse_amount_fen(text: &str) -> Option<i64> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || chars[i] == '.' || chars[i] == ',')
            {
                i += 1;
            }
            let number: String = chars[start..i].iter().filter(|c| **c != ',').collect();
            let value: f64 = number.trim_end_matches('.').parse().ok()?;
            let unit = chars.get(i).copied();
            let before = start.checked_sub(1).map(|j| chars[j]);
            let multiplier = match unit {
                Some('万') | Some('w') | Some('W') => Some(10_000.0),
                Some('k') | Some('K') | Some('千') => Some(1_000.0),
                Some('元') | Some('块') => Some(1.0),
                _ if matches!(before, Some('¥') | Some('￥')) => Some(1.0),
                _ => None,
            };
            if let Some(mul) = multiplier {
                return Some((value * mul * 100.0).round() as i64);
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_amounts_need_a_transfer_verb_and_a_unit() {
        assert_eq!(transfer_amount_fen("我先转账5000元给你"), Some(500_000));
        assert_eq!(
            transfer_amount_fen("私下给你打款 2.5万，别走公司"),
            Some(2_500_000)
        );
        assert_eq!(transfer_amount_fen("转你¥1,200"), Some(120_000));
        assert_eq!(transfer_amount_fen("这套课程5000元"), None);
        assert_eq!(transfer_amount_fen("转账的事明天再说"), None);
    }

    #[test]
    fn a_word_repeated_in_one_message_is_one_alert_and_a_message_has_a_bounded_number() {
        use crate::archive::{sessionize, Message};
        let message = |id: &str, text: &str| {
            let line = serde_json::json!({"msgid": id, "action": "send", "from": "wmCust",
                "tolist": ["staff"], "roomid": "", "msgtime": 1_795_136_400_000_i64,
                "msgtype": "text", "text": {"content": text}})
            .to_string();
            Message::parse(&line).unwrap()
        };
        let engine = Engine::build(&crate::sensitive::Lexicon::starter());
        let flood = "加我微信".repeat(25_000);
        let session = sessionize("t", vec![message("m1", &flood)], 60_000).remove(0);
        let alerts = scan_session(&engine, &RiskRules::default(), &session);
        let words: Vec<&str> = alerts.iter().map(|a| a.word.as_str()).collect();
        let mut unique = words.clone();
        unique.dedup();
        assert!(!alerts.is_empty(), "the word is still caught");
        assert_eq!(words.len(), unique.len(), "one alert per word: {words:?}");
        let wechat = alerts.iter().find(|a| a.word == "加我微信").unwrap();
        assert_eq!(wechat.occurrences, 25_000, "the alert counts the repeats");
        assert_eq!(
            (wechat.start, wechat.end),
            (0, 4),
            "at the first occurrence"
        );
        assert!(alerts.len() <= MAX_WORD_ALERTS_PER_MESSAGE);
        // Many different words: the bound holds, and the most severe are the ones kept.
        let (lex, _) = crate::sensitive::Lexicon::parse(
            "t",
            &(0..40)
                .map(|i| format!("词{i:02},c,{}\n", if i % 10 == 9 { "high" } else { "low" }))
                .collect::<String>(),
        );
        let engine = Engine::build(&lex);
        let text: String = (0..40).map(|i| format!("词{i:02} ")).collect();
        let session = sessionize("t", vec![message("m2", &text)], 60_000).remove(0);
        let alerts = scan_session(&engine, &RiskRules::default(), &session);
        assert_eq!(alerts.len(), MAX_WORD_ALERTS_PER_MESSAGE);
        let high = alerts
            .iter()
            .filter(|a| a.severity == Severity::High)
            .count();
        assert_eq!(high, 4, "all four high-severity words are among those kept");
    }

    #[test]
    fn text_reversed_by_a_bidi_override_is_caught_as_it_shows() {
        use crate::archive::{sessionize, Message};
        let line = serde_json::json!({"msgid": "m1", "action": "send", "from": "staff",
            "tolist": ["wmCust"], "roomid": "", "msgtime": 1_795_136_400_000_i64,
            "msgtype": "text", "text": {"content": "好的\u{202e}信微我加\u{202c}，谢谢"}})
        .to_string();
        let session = sessionize("t", vec![Message::parse(&line).unwrap()], 60_000).remove(0);
        let engine = Engine::build(&crate::sensitive::Lexicon::starter());
        let alerts = scan_session(&engine, &RiskRules::default(), &session);
        assert!(alerts.iter().any(|a| a.word.contains("微信")), "{alerts:?}");
        assert_eq!(
            super::super::normalize::visual_order("a\u{202e}cba\u{202c}d").as_deref(),
            Some("aabc\u{202c}d")
        );
    }
}
