//! The staff member's score for a session, 0–100, by the rubric of `agents/staff_score.toml`: how fast
//! the customer was answered (响应及时, 30), courtesy and no rudeness (礼貌专业, 20), what the sensitive
//! engine caught staff saying (合规, 30), and how the customer came out of it (客户结果, 20). As in a
//! service team's QA sheet, a red line crossed (a high-severity violation by staff: diverting the
//! customer, private deals, guaranteed returns, abuse) caps the whole score, whatever else went well.
//! Every lost point has a note and the msgid behind it.

use crate::agents::{Emotion, EmotionLabel, ScoreBreakdown, StaffScore};
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

/// The highest a session scores once staff crossed a red line.
const RED_LINE_CAP: f64 = 35.0;
/// The highest a session scores when staff were rude or dismissive to the customer.
const RUDE_CAP: f64 = 45.0;
/// 客户结果 of a customer who leaves neither pleased nor upset: served, but nothing in the words shows
/// the problem solved or the mood improved, which the rubric's full 20 asks for.
const OUTCOME_NEUTRAL: f64 = 12.0;
/// 礼貌专业 of plain, correct answers with no courtesy words.
const PLAIN_POLITENESS: f64 = 16.0;
/// Words that make a customer's last message one that needed an answer; "好的" and "谢谢" do not.
const ASKS: &[&str] = &[
    "?",
    "？",
    "吗",
    "呢",
    "怎么",
    "什么",
    "多少",
    "哪",
    "能不能",
    "可不可以",
    "是不是",
    "有没有",
    "几",
];

pub fn score(
    messages: &[Message],
    alerts: &[Alert],
    customer: Option<&Emotion>,
    staff_emotion: Option<&Emotion>,
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
    // A customer who ends the talk with "好的" needs no reply; one who ends it with a question does.
    let asked_last = waiting_since.filter(|m| {
        messages
            .iter()
            .filter(|n| n.role() == Role::Customer && n.msgtime >= m.msgtime)
            .filter_map(|n| n.text.as_deref())
            .any(|t| ASKS.iter().any(|a| t.contains(a)))
    });
    if let Some(asked) = asked_last {
        unanswered += 1;
        notes.push("客户最后的问题没有得到回复".to_string());
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
    // Plain, correct answers are professional; courtesy words add the rest, rudeness takes it away.
    // A quarter of the messages being courteous earns full marks: nobody says 您 in every line.
    let rude = staff_emotion.map_or(0, |e| e.negative_messages);
    let mut politeness = PLAIN_POLITENESS
        + (20.0 - PLAIN_POLITENESS) * (polite_share / 0.25).min(1.0)
        - 8.0 * rude as f64;
    politeness = politeness.max(0.0);
    if rude > 0 {
        notes.push(format!("{rude}条消息语气生硬或不耐烦"));
        evidence.extend(
            staff_emotion
                .into_iter()
                .flat_map(|e| e.evidence.iter().cloned())
                .take(2),
        );
    } else if polite_share == 0.0 && texts.len() >= 3 {
        notes.push("没有使用礼貌用语".to_string());
    }

    let staff_ids: Vec<&str> = staff.iter().map(|m| m.msgid.as_str()).collect();
    let mut compliance: f64 = 30.0;
    let mut red_line: Option<&Alert> = None;
    for a in alerts
        .iter()
        .filter(|a| staff_ids.contains(&a.msgid.as_str()))
    {
        let penalty = match (a.kind.as_str(), a.severity) {
            ("revoke", _) => 5.0,
            // Complaint words in a staff message are staff naming the complaint ("您的投诉我们已
            // 登记"), not staff misbehaving.
            _ if a.category == "客诉" => 2.0,
            (_, Severity::High) => {
                red_line.get_or_insert(a);
                30.0
            }
            (_, Severity::Medium) => 10.0,
            (_, Severity::Low) => 3.0,
        };
        compliance -= penalty;
        notes.push(format!("{}：{}（{}）", a.category, a.word, a.kind));
        if !evidence.contains(&a.msgid) {
            evidence.push(a.msgid.clone());
        }
    }
    let compliance = compliance.max(0.0);

    // A customer who leaves neutral was served; one who leaves pleased, better; one who leaves angry
    // costs most of this part, though staff who handled an angry customer well keep the rest.
    let outcome = customer.map_or(OUTCOME_NEUTRAL, |e| {
        if e.score >= 0.0 {
            OUTCOME_NEUTRAL + (20.0 - OUTCOME_NEUTRAL) * e.score
        } else {
            OUTCOME_NEUTRAL + 10.0 * e.score
        }
    });
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
    let mut total =
        breakdown.responsiveness + breakdown.politeness + breakdown.compliance + breakdown.outcome;
    if let Some(a) = red_line {
        total = total.min(RED_LINE_CAP);
        notes.insert(
            0,
            format!(
                "触犯红线（{}：{}），总分封顶{RED_LINE_CAP}",
                a.category, a.word
            ),
        );
    } else if rude > 0 && staff_emotion.is_some_and(|e| e.label == EmotionLabel::Negative) {
        total = total.min(RUDE_CAP);
        notes.insert(0, format!("对客户态度恶劣，总分封顶{RUDE_CAP}"));
    }
    Some(StaffScore {
        score: round1(total),
        staff: people,
        breakdown,
        first_response_secs,
        median_response_secs,
        unanswered,
        notes,
        evidence,
        // Timing and the sensitive engine are readings; courtesy and the outcome are read from the
        // words, so the score is as sure as the customer's emotion behind the outcome part.
        confidence: Some(customer.and_then(|e| e.confidence).unwrap_or(0.7).min(0.95)),
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
