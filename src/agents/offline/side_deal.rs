//! 飞单: a staff member taking the deal, or the customer, to a private channel. No single alert says
//! it; together they do — a personal 名片 or payment code sent, a WeChat id handed over, "私下",
//! "走我个人", "别告诉公司", a private transfer. This weighs the session's alerts on what its staff
//! sent into one finding with its evidence and a score, so a manager reads one line per session
//! instead of scattered alerts.

use std::collections::HashMap;

use crate::agents::{SideDeal, SideDealSignal};
use crate::archive::{Role, Session};
use crate::sensitive::behaviour::SIDE_DEAL;
use crate::sensitive::{Alert, Severity};

/// A session is a suspected 飞单 from this score up: one rule hit that is 飞单 by itself (a personal
/// card or payment code), or two weaker signs together (a hand-off and a private-deal phrase).
pub const THRESHOLD: u32 = 50;

/// How much one alert on a staff member's message says of 飞单.
fn weight(a: &Alert) -> u32 {
    match (a.category.as_str(), a.kind.as_str()) {
        (SIDE_DEAL, _) => 60,
        (_, "handoff") => 35,
        ("违规", "sensitive") if a.severity == Severity::High => 30,
        ("违规", "sensitive") => 15,
        ("引流", "sensitive") if a.severity == Severity::High => 25,
        ("引流", "sensitive") => 10,
        ("引流", "qrcode") => 35,
        (_, "transfer") => 25,
        ("外链", _) => 15,
        ("小程序", _) => 10,
        ("文件外发", _) if a.severity == Severity::High => 10,
        _ => 0,
    }
}

pub fn assess(session: &Session, alerts: &[Alert]) -> Option<SideDeal> {
    let sender: HashMap<&str, &str> = session
        .messages
        .iter()
        .map(|m| (m.msgid.as_str(), m.from.as_str()))
        .collect();
    let mut signals: Vec<SideDealSignal> = Vec::new();
    let mut staff: Vec<String> = Vec::new();
    for a in alerts {
        let Some(from) = sender.get(a.msgid.as_str()) else {
            continue;
        };
        let w = weight(a);
        if w == 0 || Role::of(from) != Role::Staff {
            continue;
        }
        if !staff.iter().any(|s| s == from) {
            staff.push(from.to_string());
        }
        signals.push(SideDealSignal {
            msgid: a.msgid.clone(),
            kind: a.kind.clone(),
            category: a.category.clone(),
            word: a.word.clone(),
            weight: w,
        });
    }
    let score = signals.iter().map(|s| s.weight).sum::<u32>().min(100);
    if score < THRESHOLD {
        return None;
    }
    let mut evidence: Vec<String> = Vec::new();
    for s in &signals {
        if !evidence.contains(&s.msgid) {
            evidence.push(s.msgid.clone());
        }
    }
    Some(SideDeal {
        score,
        staff,
        signals,
        evidence,
    })
}
