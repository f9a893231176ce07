//! The staff member's score for a session, 0–100, from four things a service manager checks: how fast
//! the customer was answered (30), courtesy (20), what the sensitive engine caught staff saying (30), and
//! how the customer felt (20). Every lost point has a note and the msgid behind it.

use crate::agents::{Emotion, ScoreBreakdown, StaffScore};
use crate::archive::{Message, Role};
use crate::sensitive::{Alert, Severity};

const POLITE: &[&str] = &[
    "您",
    "请",
    "谢谢",
    "感谢",
    "抱歉",
    "不好意思",
    "麻烦",
    "稍等",
    "辛苦",
    "欢迎",
];

pub fn score(
    messages: &[Message],
    alerts: &[Alert],
    customer: Option<&Emotion>,
) -> Option<StaffScore> {
    let staff: Vec<&Message> = messages
        .iter()
        .filter(|m| m.role() == Role::Staff)
        .collect();
    if staff.is_empty() {
        return None;
    }
    let mut notes = Vec::new();
    let mut evidence = Vec::new();

    // Response times: for each customer message, the wait until the next staff message.
    let mut waits: Vec<(i64, &str)> = Vec::new();
    let mut waiting_since: Option<&Message> = None;
    let mut unanswered = 0;
    for m in messages {
        match m.role() {
            Role::Customer => {
                if waiting_since.is_none() {
                    waiting_since = Some(m);
                }
            }
            Role::Staff => {
                if let Some(asked) = waiting_since.take() {
                    waits.push(((m.msgtime - asked.msgtime) / 1000, m.msgid.as_str()));
                }
            }
            Role::Robot => {}
        }
    }
    if let Some(asked) = waiting_since {
        unanswered += 1;
        notes.push("客户最后的消息没有得到回复".to_string());
        evidence.push(asked.msgid.clone());
    }
    let first_response_secs = waits.first().map(|w| w.0);
    let median_response_secs = median(waits.iter().map(|w| w.0).collect());
    let mut responsiveness = match median_response_secs {
        None => 30.0,
        Some(s) if s <= 60 => 30.0,
        Some(s) if s <= 300 => 24.0,
        Some(s) if s <= 900 => 15.0,
        Some(s) if s <= 1800 => 8.0,
        Some(_) => 3.0,
    };
    if let Some((slowest, msgid)) = waits.iter().max_by_key(|w| w.0) {
        if *slowest > 300 {
            notes.push(format!("最慢一次回复用了{}分钟", slowest / 60));
            evidence.push(msgid.to_string());
        }
    }
    if unanswered > 0 {
        responsiveness = (responsiveness - 5.0_f64).max(0.0);
    }

    let texts: Vec<&str> = staff.iter().filter_map(|m| m.text.as_deref()).collect();
    let polite_share = if texts.is_empty() {
        1.0
    } else {
        texts
            .iter()
            .filter(|t| POLITE.iter().any(|p| t.contains(p)))
            .count() as f64
            / texts.len() as f64
    };
    // Half of the messages being courteous earns full marks: nobody says 您 in every line.
    let politeness = 8.0 + 12.0 * (polite_share / 0.5).min(1.0);
    if polite_share < 0.25 {
        notes.push("礼貌用语偏少".to_string());
    }

    let staff_ids: Vec<&str> = staff.iter().map(|m| m.msgid.as_str()).collect();
    let mut compliance: f64 = 30.0;
    for a in alerts
        .iter()
        .filter(|a| staff_ids.contains(&a.msgid.as_str()))
    {
        let penalty = match (a.kind.as_str(), a.severity) {
            ("revoke", _) => 5.0,
            (_, Severity::High) => 15.0,
            (_, Severity::Medium) => 8.0,
            (_, Severity::Low) => 3.0,
        };
        compliance -= penalty;
        notes.push(format!("{}：{}（{}）", a.category, a.word, a.kind));
        if !evidence.contains(&a.msgid) {
            evidence.push(a.msgid.clone());
        }
    }
    let compliance = compliance.max(0.0);

    let outcome = customer.map_or(10.0, |e| 10.0 + 10.0 * e.score);
    if customer.is_some_and(|e| e.score < 0.0) {
        notes.push("客户情绪偏负面".to_string());
        evidence.extend(
            customer
                .into_iter()
                .flat_map(|e| e.evidence.iter().cloned())
                .take(2),
        );
    }

    let breakdown = ScoreBreakdown {
        responsiveness,
        politeness: round1(politeness),
        compliance,
        outcome: round1(outcome),
    };
    let mut people: Vec<String> = staff.iter().map(|m| m.from.clone()).collect();
    people.sort();
    people.dedup();
    Some(StaffScore {
        score: round1(
            breakdown.responsiveness
                + breakdown.politeness
                + breakdown.compliance
                + breakdown.outcome,
        ),
        staff: people,
        breakdown,
        first_response_secs,
        median_response_secs,
        unanswered,
        notes,
        evidence,
        chunks: Vec::new(),
    })
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
