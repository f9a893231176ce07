//! Turns and traffic rolled up per session and per staff member per day: the figures a manager reads.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Traffic, Turn};

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SessionMetrics {
    pub session: String,
    pub staff: Vec<String>,
    pub customer_messages: u32,
    pub staff_messages: u32,
    /// Customer turns (questions waiting for staff) that opened in the session.
    pub turns: usize,
    pub answered: usize,
    /// Working seconds from the session's first customer turn to its reply.
    pub first_response_secs: Option<i64>,
    pub mean_response_secs: Option<f64>,
    pub p90_response_secs: Option<i64>,
    /// Turns answered after they fell due or not answered by then (超时未回复).
    pub overdue: usize,
    /// Overdue turns with no reply at all yet.
    pub unanswered: usize,
    pub negative_customer: bool,
    pub alerts_by_category: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StaffDay {
    pub staff: String,
    pub day: String,
    pub sessions: usize,
    pub customer_messages: u32,
    pub staff_messages: u32,
    pub turns: usize,
    pub answered: usize,
    /// Mean over the sessions of the day of the wait for the staff member's first reply.
    pub first_response_secs: Option<f64>,
    pub mean_response_secs: Option<f64>,
    pub p90_response_secs: Option<i64>,
    pub overdue: usize,
    pub unanswered: usize,
    pub negative_sessions: usize,
    /// Share of the day's sessions whose customer emotion was negative.
    pub negative_share: f64,
    pub alerts_by_category: BTreeMap<String, u32>,
}

/// The 90th percentile by nearest rank.
fn p90(waits: &mut [i64]) -> Option<i64> {
    if waits.is_empty() {
        return None;
    }
    waits.sort_unstable();
    let rank = (waits.len() * 9).div_ceil(10);
    Some(waits[rank - 1])
}

fn mean(values: &[i64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<i64>() as f64 / values.len() as f64)
}

fn secs(ms: i64) -> i64 {
    ms / 1000
}

/// What a set of turns says, the same for a session and for a staff member's day.
struct Waits {
    turns: usize,
    answered: usize,
    mean: Option<f64>,
    p90: Option<i64>,
    overdue: usize,
    unanswered: usize,
}

impl Waits {
    fn of(turns: &[&Turn], horizon: i64) -> Waits {
        let mut waits: Vec<i64> = turns.iter().filter_map(|t| t.wait_ms.map(secs)).collect();
        let overdue: Vec<&&Turn> = turns.iter().filter(|t| t.overdue(horizon)).collect();
        Waits {
            turns: turns.len(),
            answered: turns.iter().filter(|t| t.answered_at.is_some()).count(),
            mean: mean(&waits),
            p90: p90(&mut waits),
            overdue: overdue.len(),
            unanswered: overdue.iter().filter(|t| t.answered_at.is_none()).count(),
        }
    }
}

/// Figures of one session from its conversation's turns and traffic.
pub fn session_metrics(
    session: &str,
    turns: &[Turn],
    traffic: &[Traffic],
    horizon: i64,
) -> SessionMetrics {
    let rows: Vec<&Traffic> = traffic.iter().filter(|t| t.session == session).collect();
    // An unanswered turn is owed by each staff member in a group: count the question once.
    let mut seen = BTreeSet::new();
    let turns: Vec<&Turn> = turns
        .iter()
        .filter(|t| t.session == session && seen.insert(t.msgid.as_str()))
        .collect();
    let w = Waits::of(&turns, horizon);
    let mut customer_by_day: BTreeMap<&str, u32> = BTreeMap::new();
    for r in &rows {
        // Every staff row of a day repeats the day's customer messages.
        let e = customer_by_day.entry(r.day.as_str()).or_default();
        *e = (*e).max(r.received);
    }
    let mut alerts = BTreeMap::new();
    for r in &rows {
        for (c, n) in &r.alerts {
            let e: &mut u32 = alerts.entry(c.clone()).or_default();
            *e = (*e).max(*n);
        }
    }
    SessionMetrics {
        session: session.to_string(),
        staff: rows
            .iter()
            .map(|r| r.staff.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        customer_messages: customer_by_day.values().sum(),
        staff_messages: rows.iter().map(|r| r.sent).sum(),
        turns: w.turns,
        answered: w.answered,
        first_response_secs: turns
            .iter()
            .find(|t| t.first_in_session)
            .and_then(|t| t.wait_ms.map(secs)),
        mean_response_secs: w.mean,
        p90_response_secs: w.p90,
        overdue: w.overdue,
        unanswered: w.unanswered,
        negative_customer: rows.iter().any(|r| r.negative),
        alerts_by_category: alerts,
    }
}

/// Figures per staff member per day, ordered by staff then day.
pub fn staff_days(turns: &[Turn], traffic: &[Traffic], horizon: i64) -> Vec<StaffDay> {
    #[derive(Default)]
    struct Acc<'a> {
        sessions: BTreeSet<&'a str>,
        negative: BTreeSet<&'a str>,
        received: u32,
        sent: u32,
        turns: Vec<&'a Turn>,
        alerts: BTreeMap<String, u32>,
    }
    let mut acc: BTreeMap<(&str, &str), Acc> = BTreeMap::new();
    for r in traffic {
        let a = acc.entry((r.staff.as_str(), r.day.as_str())).or_default();
        a.sessions.insert(&r.session);
        if r.negative {
            a.negative.insert(&r.session);
        }
        a.received += r.received;
        a.sent += r.sent;
        for (c, n) in &r.alerts {
            *a.alerts.entry(c.clone()).or_default() += n;
        }
    }
    for t in turns.iter().filter(|t| !t.staff.is_empty()) {
        acc.entry((t.staff.as_str(), t.day.as_str()))
            .or_default()
            .turns
            .push(t);
    }
    acc.into_iter()
        .map(|((staff, day), a)| {
            let w = Waits::of(&a.turns, horizon);
            let firsts: Vec<i64> = a
                .turns
                .iter()
                .filter(|t| t.first_in_session)
                .filter_map(|t| t.wait_ms.map(secs))
                .collect();
            let sessions = a.sessions.len();
            StaffDay {
                staff: staff.to_string(),
                day: day.to_string(),
                sessions,
                customer_messages: a.received,
                staff_messages: a.sent,
                turns: w.turns,
                answered: w.answered,
                first_response_secs: mean(&firsts),
                mean_response_secs: w.mean,
                p90_response_secs: w.p90,
                overdue: w.overdue,
                unanswered: w.unanswered,
                negative_sessions: a.negative.len(),
                negative_share: if sessions == 0 {
                    0.0
                } else {
                    a.negative.len() as f64 / sessions as f64
                },
                alerts_by_category: a.alerts,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::p90;

    #[test]
    fn p90_is_the_nearest_rank() {
        assert_eq!(p90(&mut []), None);
        assert_eq!(p90(&mut [5]), Some(5));
        let mut ten: Vec<i64> = (1..=10).rev().collect();
        assert_eq!(p90(&mut ten), Some(9));
        let mut eleven: Vec<i64> = (1..=11).collect();
        assert_eq!(p90(&mut eleven), Some(10));
    }
}
