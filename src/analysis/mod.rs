//! The analysis of one conversation, between one load and one commit, and pure: what the store
//! holds of the conversation ([`StoredConversation`]) and the tenant's configuration in, everything to
//! write ([`ConversationOutput`]) out, with no I/O in between. `analyze`, the queue workers and the
//! API's re-analysis all run it; a test of it needs no database.
//!
//! It comes in steps so that the model path can slot its calls between them: [`sessions`] rebuilds
//! the sessions, [`input_hash`] says what each is made from, [`reuse`] takes a stored reading whose
//! inputs are unchanged, [`read_offline`] reads one afresh, and [`finish`] measures the conversation
//! (turns, traffic, 超时未回复) and its customers' contributions. [`run`] is the offline path whole.

use std::collections::BTreeSet;

use crate::agents::offline::OfflineAnalysers;
use crate::agents::{Passage, SessionResult};
use crate::archive::{sessionize, Session, SessionKind};
use crate::customers::{contributions, Contribution};
use crate::digest::hash_parts;
use crate::sensitive::{scan_session, Alert, Engine, RiskRules};
use crate::store::StoredConversation;
use crate::trajectory::{
    self, session_metrics, ConversationMetrics, Hours, SessionMetrics, TIMEOUT_KIND,
};

/// How a tenant's conversations are analysed.
pub struct Config<'a> {
    pub tenant: &'a str,
    pub idle_gap_ms: i64,
    pub rules: &'a RiskRules,
    pub engine: &'a Engine,
    pub offline: &'a OfflineAnalysers,
    /// The model analysers' fingerprint, or `offline`.
    pub model: &'a str,
    pub hours: &'a Hours,
}

/// A session's reading: reused from the store, or made now (with the hash to store it under).
pub enum Reading {
    Unchanged(SessionResult, Vec<Alert>),
    Fresh {
        hash: String,
        result: SessionResult,
        alerts: Vec<Alert>,
    },
}

/// A session as stored, without its messages.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    pub id: String,
    pub kind: SessionKind,
    pub participants: Vec<String>,
    pub start: i64,
    pub end: i64,
    pub message_count: usize,
}

#[derive(Debug)]
pub struct SessionOut {
    pub session: SessionMeta,
    /// The hash to store a fresh reading under; `None` for a reused one.
    pub write: Option<String>,
    pub result: SessionResult,
    /// Its alerts, without 超时未回复 (those are the conversation's, in the metrics).
    pub alerts: Vec<Alert>,
}

/// Everything one conversation's analysis produced.
#[derive(Debug)]
pub struct ConversationOutput {
    pub tenant: String,
    pub conversation: String,
    /// In order of start.
    pub sessions: Vec<SessionOut>,
    /// Stored sessions that no longer exist (a late message merged them into another).
    pub gone: Vec<String>,
    pub metrics: ConversationMetrics,
    pub contributions: Vec<Contribution>,
    /// A hash of the metrics and contributions, and whether it differs from the stored one.
    pub extras: String,
    pub extras_changed: bool,
    pub session_metrics: Vec<SessionMetrics>,
    /// Local dates the sessions have messages on.
    pub days: BTreeSet<String>,
}

impl ConversationOutput {
    /// Every customer in the conversation.
    pub fn customers(&self) -> BTreeSet<String> {
        self.contributions
            .iter()
            .map(|c| c.customer.clone())
            .collect()
    }

    /// The session alerts and the conversation's 超时未回复, as the report lists them.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.sessions
            .iter()
            .flat_map(|s| &s.alerts)
            .chain(&self.metrics.timeouts)
    }
}

/// The conversation's sessions, rebuilt from all its stored messages (a message arriving late in
/// another file may bridge two sessions into one).
pub fn sessions(cfg: &Config, stored: &StoredConversation) -> Vec<Session> {
    let mut sessions = sessionize(cfg.tenant, stored.messages.clone(), cfg.idle_gap_ms);
    if !stored.qr_codes.is_empty() {
        for s in &mut sessions {
            for m in &s.messages {
                if let Some(codes) = stored.qr_codes.get(&m.msgid) {
                    s.qr_codes.insert(m.msgid.clone(), codes.clone());
                }
            }
        }
    }
    sessions
}

/// What a session's reading is made from: its messages, the analysers, the lexicon, the rules, and the
/// knowledge-base passages shown to the model. A session is read again only when this changes.
pub fn input_hash(cfg: &Config, session: &Session, passages: &[Passage]) -> String {
    let rules = rules_part(cfg);
    let head = config_parts(cfg, &rules);
    let passages = passages
        .iter()
        .map(|p| format!("{}{}", p.id, p.text))
        .collect::<Vec<_>>();
    // What an image's QR codes say is part of its message: a code read after the session was
    // analysed makes it read again.
    let codes: Vec<String> = session
        .qr_codes
        .iter()
        .map(|(id, c)| format!("qr:{id}:{}", c.join("\n")))
        .collect();
    hash_parts(
        head.into_iter()
            .chain(session.messages.iter().map(|m| m.raw.as_str()))
            .chain(codes.iter().map(String::as_str))
            .chain(passages.iter().map(String::as_str)),
    )
}

/// What every session's input hash holds of the tenant's configuration, hashed alone: it changes
/// exactly when a change of configuration makes sessions read again.
pub fn config_fingerprint(cfg: &Config) -> String {
    let rules = rules_part(cfg);
    hash_parts(config_parts(cfg, &rules))
}

fn rules_part(cfg: &Config) -> String {
    // The behaviours in their default form say nothing, so that a tenant that never touched them
    // keeps the hashes it had before they existed.
    let behaviours = if cfg.rules.behaviours == crate::sensitive::behaviour::Behaviours::default() {
        String::new()
    } else {
        serde_json::to_string(&cfg.rules.behaviours).unwrap_or_default()
    };
    format!(
        "{}:{}:{}{behaviours}",
        cfg.rules.redpacket_threshold_fen, cfg.rules.transfer_threshold_fen, cfg.idle_gap_ms
    )
}

fn config_parts<'a>(cfg: &'a Config, rules: &'a str) -> [&'a str; 4] {
    [
        cfg.offline.fingerprint(),
        cfg.model,
        cfg.engine.fingerprint(),
        rules,
    ]
}

/// The stored reading of a session, if it was made from the same inputs (and is readable).
pub fn reuse(
    stored: &StoredConversation,
    session: &Session,
    hash: &str,
) -> Option<(SessionResult, Vec<Alert>)> {
    let s = stored.sessions.get(&session.id)?;
    if s.input_hash != hash {
        return None;
    }
    let result = serde_json::from_str(&s.result).ok()?;
    let alerts = s
        .alerts
        .iter()
        .filter(|a| a.kind != TIMEOUT_KIND)
        .cloned()
        .collect();
    Some((result, alerts))
}

/// A session read afresh by the offline analysers: its alerts, then everything else.
pub fn read_offline(cfg: &Config, session: &Session) -> (SessionResult, Vec<Alert>) {
    read_session(cfg.engine, cfg.rules, cfg.offline, session)
}

/// [`read_offline`] for one session outside any conversation (an eval case).
pub fn read_session(
    engine: &Engine,
    rules: &RiskRules,
    offline: &OfflineAnalysers,
    session: &Session,
) -> (SessionResult, Vec<Alert>) {
    let alerts = scan_session(engine, rules, session);
    let result = offline.analyse(session, &alerts);
    (result, alerts)
}

/// Measures the conversation over its sessions and their readings: turns, traffic, 超时未回复 by the
/// archive's horizon, and each customer's contribution.
pub fn finish(
    cfg: &Config,
    conversation: &str,
    stored: &StoredConversation,
    sessions: Vec<Session>,
    readings: Vec<Reading>,
) -> ConversationOutput {
    debug_assert!(sessions.iter().all(|s| s.conversation == conversation));
    let mut results = Vec::with_capacity(readings.len());
    let mut alerts = Vec::new();
    let mut writes = Vec::with_capacity(readings.len());
    for r in readings {
        let (write, result, mut a) = match r {
            Reading::Unchanged(result, a) => (None, result, a),
            Reading::Fresh {
                hash,
                result,
                alerts,
            } => (Some(hash), result, alerts),
        };
        a.retain(|a| a.kind != TIMEOUT_KIND);
        writes.push((write, a.len()));
        alerts.extend(a);
        results.push(result);
    }
    let horizon = stored.horizon;
    let metrics = trajectory::measure(&sessions, &results, &alerts, cfg.hours, horizon);
    let session_metrics = sessions
        .iter()
        .map(|s| session_metrics(&s.id, &metrics.turns, &metrics.traffic, horizon))
        .collect();
    let days = metrics.traffic.iter().map(|t| t.day.clone()).collect();
    let contributions: Vec<Contribution> = sessions
        .iter()
        .zip(&results)
        .flat_map(|(s, r)| contributions(s, r))
        .collect();
    let extras = extras_hash(&metrics, &contributions);
    let gone = stored
        .sessions
        .keys()
        .filter(|id| !sessions.iter().any(|s| &s.id == *id))
        .cloned()
        .collect();
    let mut alerts = alerts.into_iter();
    let out_sessions = sessions
        .into_iter()
        .zip(results)
        .zip(writes)
        .map(|((s, result), (write, n))| SessionOut {
            session: SessionMeta {
                message_count: s.messages.len(),
                id: s.id,
                kind: s.kind,
                participants: s.participants,
                start: s.start,
                end: s.end,
            },
            write,
            result,
            alerts: alerts.by_ref().take(n).collect(),
        })
        .collect();
    ConversationOutput {
        tenant: cfg.tenant.to_string(),
        conversation: conversation.to_string(),
        extras_changed: stored.extras.as_deref() != Some(extras.as_str()),
        sessions: out_sessions,
        gone,
        metrics,
        contributions,
        extras,
        session_metrics,
        days,
    }
}

/// The offline analysis of a conversation, whole.
pub fn run(cfg: &Config, conversation: &str, stored: &StoredConversation) -> ConversationOutput {
    let sessions = sessions(cfg, stored);
    let readings = sessions
        .iter()
        .map(|s| {
            let hash = input_hash(cfg, s, &[]);
            match reuse(stored, s, &hash) {
                Some((result, alerts)) => Reading::Unchanged(result, alerts),
                None => {
                    let (result, alerts) = read_offline(cfg, s);
                    Reading::Fresh {
                        hash,
                        result,
                        alerts,
                    }
                }
            }
        })
        .collect();
    finish(cfg, conversation, stored, sessions, readings)
}

/// The hash of what a conversation's commit writes beyond its sessions, in a fixed order.
fn extras_hash(m: &ConversationMetrics, contributions: &[Contribution]) -> String {
    fn json<T: serde::Serialize>(items: &[T]) -> String {
        serde_json::to_string(items).expect("analysis output serializes")
    }
    let parts = [
        json(&m.turns),
        json(&m.traffic),
        json(&m.timeouts),
        json(contributions),
    ];
    hash_parts(parts.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Message;
    use crate::store::StoredSession;
    use crate::trajectory::Calendar;

    fn message(id: &str, from: &str, to: &str, t: i64, text: &str) -> Message {
        let line = serde_json::json!({"msgid": id, "action": "send", "from": from, "tolist": [to],
            "roomid": "", "msgtime": t, "msgtype": "text", "text": {"content": text}})
        .to_string();
        Message::parse(&line).unwrap()
    }

    fn stored(messages: Vec<Message>) -> StoredConversation {
        let horizon = messages.iter().map(|m| m.msgtime).max().unwrap_or(0);
        StoredConversation {
            messages,
            horizon,
            ..StoredConversation::default()
        }
    }

    /// The core is a function: the same stored conversation gives the same output, and an output fed
    /// back as the store's content gives one that writes nothing.
    #[test]
    fn a_conversation_read_back_from_its_own_output_writes_nothing() {
        let (offline, _) = OfflineAnalysers::load();
        let engine = Engine::build(&crate::sensitive::Lexicon::starter());
        let hours = Calendar::default().hours().unwrap();
        let cfg = Config {
            tenant: "t",
            idle_gap_ms: 30 * 60_000,
            rules: &RiskRules::default(),
            engine: &engine,
            offline: &offline,
            model: "offline",
            hours: &hours,
        };
        let t0 = 1_795_136_400_000;
        let mut input = stored(vec![
            message(
                "m1",
                "wmCust",
                "zhangsan",
                t0,
                "你好，加我微信聊，怎么收费？",
            ),
            message("m2", "zhangsan", "wmCust", t0 + 60_000, "标准版每年980元"),
            message("m3", "wmCust", "zhangsan", t0 + 3_600_000, "还在吗？"),
        ]);
        let first = run(&cfg, "single:wmCust|zhangsan", &input);
        assert_eq!(first.sessions.len(), 2, "the hour-long gap splits the chat");
        assert!(first.sessions.iter().all(|s| s.write.is_some()));
        assert!(first.extras_changed);
        assert!(
            first.alerts().any(|a| a.msgid == "m1"),
            "the hand-off is caught"
        );
        let again = run(&cfg, "single:wmCust|zhangsan", &input);
        assert_eq!(again.extras, first.extras);

        for s in &first.sessions {
            input.sessions.insert(
                s.session.id.clone(),
                StoredSession {
                    input_hash: s.write.clone().unwrap(),
                    result: serde_json::to_string(&s.result).unwrap(),
                    alerts: s.alerts.clone(),
                },
            );
        }
        input.extras = Some(first.extras.clone());
        let rerun = run(&cfg, "single:wmCust|zhangsan", &input);
        assert!(rerun.sessions.iter().all(|s| s.write.is_none()));
        assert!(!rerun.extras_changed);
        assert!(rerun.gone.is_empty());
        let ids = |o: &ConversationOutput| o.alerts().map(|a| a.msgid.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&rerun), ids(&first));

        // A late message bridging the gap merges the sessions: the second one is gone.
        input.messages.insert(
            2,
            message("m2b", "zhangsan", "wmCust", t0 + 1_850_000, "在的"),
        );
        input.messages.sort_by_key(|m| m.msgtime);
        let bridged = run(&cfg, "single:wmCust|zhangsan", &input);
        assert_eq!(bridged.sessions.len(), 1);
        assert_eq!(bridged.gone, vec![first.sessions[1].session.id.clone()]);
    }
}
