//! A session's contribution to each of its customers' profiles, taken from its analysis (offline or
//! model) and its messages.

use std::collections::HashMap;

use super::identity::identifiers;
use super::{Contribution, Fact, Mood, Said, Seen};
use crate::agents::{SessionResult, Stage};
use crate::archive::{Message, Role, Session, SessionKind};
use crate::sensitive::mask_pii;

/// Facts keep a short excerpt; the msgid leads to the whole message.
const EXCERPT_CHARS: usize = 60;
/// Enough of what a customer says in one session to match tags, without copying a whole archive.
const SAID_MESSAGES: usize = 200;
const SAID_CHARS: usize = 200;

/// One contribution per customer of the session: in a one-to-one chat the external contact, in a group
/// each external contact who spoke (a silent group member has shown nothing).
pub fn contributions(session: &Session, result: &SessionResult) -> Vec<Contribution> {
    let customers: Vec<&String> = session
        .participants_in(Role::Customer)
        .filter(|p| {
            session.kind == SessionKind::Single || session.messages.iter().any(|m| &m.from == *p)
        })
        .collect();
    let staff: Vec<String> = session.participants_in(Role::Staff).cloned().collect();
    let by_id: HashMap<&str, &Message> = session
        .messages
        .iter()
        .map(|m| (m.msgid.as_str(), m))
        .collect();
    customers
        .into_iter()
        .map(|customer| {
            let facts = facts(result, &by_id, customer);
            let (stage, stage_evidence) = stage(session, result, &facts);
            let own: Vec<&Message> = session
                .messages
                .iter()
                .filter(|m| &m.from == customer)
                .collect();
            let spoke = |ids: &[String]| {
                session.kind == SessionKind::Single
                    || ids
                        .iter()
                        .any(|id| by_id.get(id.as_str()).is_some_and(|m| &m.from == customer))
            };
            Contribution {
                customer: customer.clone(),
                session: session.id.clone(),
                kind: session.kind,
                start: session.start,
                end: session.end,
                staff: staff.clone(),
                competitors: result
                    .competitors
                    .iter()
                    .filter(|c| spoke(&c.evidence))
                    .map(|c| Seen {
                        name: c.name.clone(),
                        evidence: c.evidence.clone(),
                    })
                    .collect(),
                emotion: result.emotion.customer.as_ref().map(|e| Mood {
                    label: e.label,
                    score: e.score,
                    evidence: e.evidence.clone(),
                }),
                stage,
                stage_evidence,
                identifiers: identifiers(&own),
                said: own
                    .iter()
                    .filter_map(|m| {
                        let text = m.text.as_deref()?;
                        Some(Said {
                            msgid: m.msgid.clone(),
                            text: mask_pii(&shorten(text, SAID_CHARS)),
                        })
                    })
                    .take(SAID_MESSAGES)
                    .collect(),
                facts,
                side_deal: result.side_deal.clone(),
            }
        })
        .collect()
}

/// The customer's own buying signals, and the prices staff quoted them.
fn facts(result: &SessionResult, by_id: &HashMap<&str, &Message>, customer: &str) -> Vec<Fact> {
    let Some(opportunity) = &result.opportunity else {
        return Vec::new();
    };
    let mut out: Vec<Fact> = opportunity
        .signals
        .iter()
        .filter_map(|s| {
            let m = by_id.get(s.msgid.as_str())?;
            let theirs = m.from == customer
                || (matches!(s.kind.as_str(), "quote" | "purchase" | "won")
                    && m.role() == Role::Staff);
            theirs.then(|| Fact {
                kind: s.kind.clone(),
                cue: s.text.clone(),
                text: mask_pii(&shorten(
                    m.text.as_deref().unwrap_or_default(),
                    EXCERPT_CHARS,
                )),
                msgid: s.msgid.clone(),
                at: m.msgtime,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.at, &a.msgid).cmp(&(b.at, &b.msgid)));
    out
}

/// The stage for this customer with the messages that show it. A one-to-one chat takes the session's
/// stage (the analyser saw the whole talk); in a group only this customer's signals count.
fn stage(session: &Session, result: &SessionResult, facts: &[Fact]) -> (Stage, Vec<String>) {
    let session_stage = result.opportunity.as_ref().map_or(Stage::None, |o| o.stage);
    let from_facts = match Stage::of_signals(facts.iter().map(|f| f.kind.as_str())) {
        Stage::None => Stage::InitialContact,
        s => s,
    };
    let stage = match session.kind {
        SessionKind::Single => session_stage,
        SessionKind::Group => from_facts,
    };
    let evidence: Vec<String> = match stage {
        Stage::Lost | Stage::Won => facts
            .iter()
            .rev()
            .find(|f| Stage::reached_by(&f.kind) == stage)
            .map(|f| vec![f.msgid.clone()])
            .unwrap_or_default(),
        _ => {
            let mut ids: Vec<String> = facts
                .iter()
                .filter(|f| Stage::reached_by(&f.kind) == stage)
                .map(|f| f.msgid.clone())
                .collect();
            ids.dedup();
            ids
        }
    };
    // A stage with no signal behind it (初步接触) is shown by the first message of the session.
    let evidence = if evidence.is_empty() {
        session
            .messages
            .first()
            .map(|m| vec![m.msgid.clone()])
            .unwrap_or_default()
    } else {
        evidence
    };
    (stage, evidence)
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}
