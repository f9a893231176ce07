//! 会话轨迹: how a conversation went in numbers, with no model. Messages each way, how long customers
//! waited for staff (in working time, by the tenant's [`Calendar`]), and which customer messages were
//! left waiting past the tenant's threshold (超时未回复).
//!
//! A wait is measured over the whole conversation, not one session: a reply the next morning lands in a
//! new session (the idle gap split them) and still answers last night's question. A turn opens at the
//! first customer message after the last staff message and closes at the next staff message; in a group
//! chat, a reply from any staff member in the room closes it.

mod calendar;
mod rollup;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use calendar::{Calendar, Hours};
pub use rollup::{session_metrics, staff_days, SessionMetrics, StaffDay};

use crate::agents::{EmotionLabel, SessionResult};
use crate::archive::{Action, Event, Message, Role, Session};
use crate::sensitive::{mask_pii, Alert, Severity};

pub const TIMEOUT_KIND: &str = "response_timeout";
pub const TIMEOUT_CATEGORY: &str = "超时未回复";

/// A customer waiting for staff: from the customer's first unanswered message to the next staff reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Turn {
    pub session: String,
    /// The customer message that opened the turn.
    pub msgid: String,
    pub customer: String,
    /// Who answered; for a turn nobody answered, each staff member of the session owes it.
    pub staff: String,
    /// Local date of the customer's message, `YYYY-MM-DD`.
    pub day: String,
    pub asked_at: i64,
    /// When the reply fell due by the tenant's calendar.
    pub due_at: i64,
    pub answered_msgid: Option<String>,
    pub answered_at: Option<i64>,
    /// Working time waited, for answered turns.
    pub wait_ms: Option<i64>,
    pub first_in_session: bool,
}

impl Turn {
    /// 超时: answered after it fell due, or still unanswered when the archive reaches past it.
    /// `horizon` is the newest message time the store holds for the tenant: the archive's "now".
    pub fn overdue(&self, horizon: i64) -> bool {
        match self.answered_at {
            Some(at) => at > self.due_at,
            None => horizon >= self.due_at,
        }
    }
}

/// Messages one staff member sent and received in one session on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub session: String,
    pub staff: String,
    pub day: String,
    /// Messages the staff member sent.
    pub sent: u32,
    /// Customer messages in the session.
    pub received: u32,
    /// The session's customer emotion was negative.
    pub negative: bool,
    /// The session's alerts by category, on the row of the session's first day only, so that a session
    /// crossing midnight counts its alerts once.
    pub alerts: BTreeMap<String, u32>,
}

/// What [`measure`] found in one conversation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationMetrics {
    pub turns: Vec<Turn>,
    pub traffic: Vec<Traffic>,
    /// 超时未回复 alerts, one per overdue turn.
    pub timeouts: Vec<Alert>,
}

/// Messages that ask for or give an answer: said by a customer or a staff member, not recalled, not a
/// consent event or recall notice.
fn talk(m: &Message) -> Option<Role> {
    if m.action != Action::Send || matches!(m.event, Event::Consent { .. } | Event::Revoke { .. }) {
        return None;
    }
    match m.role() {
        Role::Robot => None,
        role => Some(role),
    }
}

/// Words that close a talk rather than ask: a customer who writes only these is not waiting for anyone.
const ACKNOWLEDGEMENTS: &[&str] = &[
    "非常感谢",
    "谢谢你",
    "谢谢您",
    "谢谢",
    "感谢",
    "多谢",
    "好的",
    "收到",
    "明白",
    "了解",
    "知道了",
    "没问题",
    "很满意",
    "满意",
    "可以",
    "行",
    "嗯",
    "哦",
    "好",
    "ok",
    "OK",
    "Ok",
    "再见",
    "拜拜",
    "辛苦了",
    "辛苦",
    "啦",
    "了",
    "的",
    "呢",
    "哈",
];

/// Whether a customer message asks for an answer. "收到，谢谢" does not: raising 超时未回复 for it
/// would bury the real ones.
fn asks(m: &Message) -> bool {
    let Some(text) = m.text.as_deref() else {
        // Pictures, voice, files: someone has to look at them.
        return true;
    };
    let mut rest: String = text
        .chars()
        .filter(|c| c.is_alphanumeric() || ('\u{4e00}'..='\u{9fff}').contains(c))
        .collect();
    for w in ACKNOWLEDGEMENTS {
        rest = rest.replace(w, "");
    }
    !rest.is_empty()
}

/// Turns, traffic and timeouts of a conversation's sessions (ordered by start, as sessionized), with
/// the results and alerts analysis gave them.
pub fn measure(
    sessions: &[Session],
    results: &[SessionResult],
    alerts: &[Alert],
    hours: &Hours,
    horizon: i64,
) -> ConversationMetrics {
    let mut out = ConversationMetrics::default();
    let mut open: Option<(&Session, &Message)> = None;
    let mut first_seen: BTreeSet<&str> = BTreeSet::new();
    let messages = sessions
        .iter()
        .flat_map(|s| s.messages.iter().map(move |m| (s, m)));
    for (session, m) in messages {
        match talk(m) {
            Some(Role::Customer) if open.is_none() && asks(m) => open = Some((session, m)),
            Some(Role::Staff) => {
                if let Some((s, asked)) = open.take() {
                    let first = first_seen.insert(s.id.as_str());
                    let t = turn(hours, s, asked, m.from.clone(), Some(m), first);
                    out.record(t, asked, horizon);
                }
            }
            _ => {}
        }
    }
    if let Some((s, asked)) = open {
        let first = first_seen.insert(s.id.as_str());
        // Nobody answered: every staff member in the session owes the reply.
        for staff in s.participants_in(Role::Staff) {
            let t = turn(hours, s, asked, staff.clone(), None, first);
            out.record(t, asked, horizon);
        }
    }

    for (session, result) in sessions.iter().zip(results) {
        let negative = result
            .emotion
            .customer
            .as_ref()
            .is_some_and(|e| e.label == EmotionLabel::Negative);
        let mut categories: BTreeMap<String, u32> = BTreeMap::new();
        for a in alerts
            .iter()
            .chain(&out.timeouts)
            .filter(|a| a.session == session.id)
        {
            *categories.entry(a.category.clone()).or_default() += 1;
        }
        let first_day = hours.day(session.start).to_string();
        let staff: Vec<&String> = session.participants_in(Role::Staff).collect();
        // (staff, day) → (sent, received)
        let mut rows: BTreeMap<(&str, String), (u32, u32)> = BTreeMap::new();
        for m in &session.messages {
            let day = hours.day(m.msgtime).to_string();
            match talk(m) {
                Some(Role::Staff) => rows.entry((m.from.as_str(), day)).or_default().0 += 1,
                Some(Role::Customer) => {
                    for s in &staff {
                        rows.entry((s.as_str(), day.clone())).or_default().1 += 1;
                    }
                }
                _ => {}
            }
        }
        for ((staff, day), (sent, received)) in rows {
            out.traffic.push(Traffic {
                session: session.id.clone(),
                staff: staff.to_string(),
                alerts: if day == first_day {
                    categories.clone()
                } else {
                    BTreeMap::new()
                },
                day,
                sent,
                received,
                negative,
            });
        }
    }
    out
}

impl ConversationMetrics {
    /// Keeps a turn, and raises its 超时未回复 if it is overdue: once per question, though a question
    /// nobody answered in a group is a turn for each staff member (those turns come one after another).
    fn record(&mut self, t: Turn, asked: &Message, horizon: i64) {
        let alerted = self.timeouts.last().is_some_and(|a| a.msgid == t.msgid);
        if t.overdue(horizon) && !alerted {
            self.timeouts.push(timeout_alert(
                &t.session,
                &t.msgid,
                t.answered_msgid.as_deref(),
                asked.text.as_deref(),
            ));
        }
        self.turns.push(t);
    }
}

/// The 超时未回复 alert of an overdue turn: on the customer's message, with the late reply (if any) as
/// evidence beside it, and the message text masked.
pub fn timeout_alert(
    session: &str,
    msgid: &str,
    answered_msgid: Option<&str>,
    text: Option<&str>,
) -> Alert {
    let mut evidence = vec![msgid.to_string()];
    evidence.extend(answered_msgid.map(str::to_string));
    Alert {
        session: session.to_string(),
        msgid: msgid.to_string(),
        kind: TIMEOUT_KIND.into(),
        category: TIMEOUT_CATEGORY.into(),
        severity: Severity::Medium,
        word: if answered_msgid.is_some() {
            "late_reply".into()
        } else {
            "no_reply".into()
        },
        text: text.map(mask_pii).unwrap_or_default(),
        start: 0,
        end: 0,
        evidence,
        occurrences: 1,
    }
}

fn turn(
    hours: &Hours,
    session: &Session,
    asked: &Message,
    staff: String,
    answer: Option<&Message>,
    first_in_session: bool,
) -> Turn {
    Turn {
        session: session.id.clone(),
        msgid: asked.msgid.clone(),
        customer: asked.from.clone(),
        staff,
        day: hours.day(asked.msgtime).to_string(),
        asked_at: asked.msgtime,
        due_at: hours.due(asked.msgtime),
        answered_msgid: answer.map(|m| m.msgid.clone()),
        answered_at: answer.map(|m| m.msgtime),
        wait_ms: answer.map(|m| hours.working_ms(asked.msgtime, m.msgtime)),
        first_in_session,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::SessionResult;
    use crate::archive::sessionize;

    /// 2026-11-25 (a Wednesday) at `hhmm`, Beijing time, in epoch ms.
    fn at(hhmm: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-11-25T{hhmm}:00+08:00"))
            .unwrap()
            .timestamp_millis()
    }

    fn group(id: &str, from: &str, hhmm: &str, text: &str) -> Message {
        let members = ["wmC1", "wmC2", "staffA", "staffB"];
        let to: Vec<&str> = members.iter().copied().filter(|m| *m != from).collect();
        Message::parse(
            &serde_json::json!({"msgid": id, "action": "send", "from": from, "tolist": to,
                "roomid": "wrRoom", "msgtime": at(hhmm), "msgtype": "text", "text": {"content": text}})
            .to_string(),
        )
        .unwrap()
    }

    fn measure_all(messages: Vec<Message>, horizon: i64) -> ConversationMetrics {
        let sessions = sessionize("t", messages, 30 * 60_000);
        let offline = crate::agents::offline::OfflineAnalysers::load().0;
        let results: Vec<SessionResult> =
            sessions.iter().map(|s| offline.analyse(s, &[])).collect();
        let hours = Calendar::default().hours().unwrap();
        measure(&sessions, &results, &[], &hours, horizon)
    }

    #[test]
    fn in_a_group_a_reply_from_any_staff_member_answers_and_silence_is_owed_by_all() {
        let m = measure_all(
            vec![
                group("g1", "wmC1", "10:00", "请问报表怎么导出？"),
                group("g2", "wmC2", "10:01", "我也想知道"),
                group("g3", "staffB", "10:04", "在导出页面点右上角"),
                group("g4", "wmC2", "10:20", "还有一个问题，发票呢？"),
            ],
            at("11:00"),
        );
        // The first question waited for staffB, who answered for the room; both customer messages
        // before the answer are one turn, timed from the first.
        let answered: Vec<&Turn> = m.turns.iter().filter(|t| t.answered_at.is_some()).collect();
        assert_eq!(answered.len(), 1);
        assert_eq!(
            (answered[0].msgid.as_str(), answered[0].staff.as_str()),
            ("g1", "staffB")
        );
        assert_eq!(answered[0].wait_ms, Some(4 * 60_000));
        // The last question has no answer by 11:00, past its 10:50 deadline: both staff owe it,
        // and it raises one alert.
        let owed: Vec<&str> = m
            .turns
            .iter()
            .filter(|t| t.msgid == "g4")
            .map(|t| t.staff.as_str())
            .collect();
        assert_eq!(owed, ["staffA", "staffB"]);
        assert_eq!(m.timeouts.len(), 1);
        assert_eq!(m.timeouts[0].word, "no_reply");
        let s = session_metrics(&m.turns[0].session, &m.turns, &m.traffic, at("11:00"));
        assert_eq!((s.turns, s.answered, s.unanswered), (2, 1, 1));
        assert_eq!(s.customer_messages, 3);
        assert_eq!(s.staff_messages, 1);
        // Before the deadline it is waiting, not overdue.
        let early = measure_all(
            vec![
                group("g1", "wmC1", "10:00", "请问报表怎么导出？"),
                group("g2", "staffA", "10:02", "稍等"),
                group("g4", "wmC2", "10:20", "发票呢？"),
            ],
            at("10:40"),
        );
        assert!(early.timeouts.is_empty());
    }

    #[test]
    fn thanks_and_acknowledgements_wait_for_nobody() {
        let m = measure_all(
            vec![
                group("g1", "wmC1", "10:00", "请问报表怎么导出？"),
                group("g2", "staffA", "10:02", "在导出页面点右上角"),
                group("g3", "wmC1", "10:03", "收到，很满意，谢谢！"),
                group("g4", "wmC2", "10:04", "好的👌"),
            ],
            at("12:00"),
        );
        assert_eq!(m.turns.len(), 1, "{:?}", m.turns);
        assert!(m.timeouts.is_empty());
        let ask = |t: &str| asks(&group("x", "wmC1", "10:00", t));
        assert!(ask("好的，那价格呢"));
        assert!(ask("谢谢，发票什么时候开？"));
        assert!(!ask("嗯嗯 OK"));
    }
}
