//! Sessionization: which messages belong to one conversation episode.
//!
//! A one-to-one chat is keyed by the unordered pair of its participants, a group chat by its `roomid`;
//! within a key, a gap longer than the idle limit starts a new session. The session id is a hash of the
//! tenant, the key and the first message's msgid, so the same messages always give the same ids whatever
//! order or files they arrived in.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::hash_parts;
use serde::{Deserialize, Serialize};

use super::{Action, Message, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    Single,
    Group,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Single => "single",
            SessionKind::Group => "group",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub conversation: String,
    pub kind: SessionKind,
    /// Everyone who sent or was sent a message in the session, sorted.
    pub participants: Vec<String>,
    pub start: i64,
    pub end: i64,
    /// Ordered by (msgtime, msgid).
    pub messages: Vec<Message>,
    /// What the QR codes in the session's images say, by msgid: read from the image bytes when the
    /// media store has them (an image without them is skipped, never an error).
    pub qr_codes: std::collections::BTreeMap<String, Vec<String>>,
}

impl Session {
    /// The participants of one role: the session's customers, or its staff.
    pub fn participants_in(&self, role: Role) -> impl Iterator<Item = &String> {
        self.participants
            .iter()
            .filter(move |p| Role::of(p) == role)
    }
}

/// The conversation a message belongs to; `None` for events outside any chat (device switches).
pub fn conversation_key(m: &Message) -> Option<String> {
    if m.action == Action::Switch {
        return None;
    }
    // A consent event without its chat envelope belongs to no conversation: it is kept, and read by
    // the consent list, but starts no session of one person.
    if m.tolist.is_empty() && !m.is_group() {
        return None;
    }
    if m.is_group() {
        return Some(format!("group:{}", m.roomid));
    }
    let people: BTreeSet<&str> = std::iter::once(m.from.as_str())
        .chain(m.tolist.iter().map(String::as_str))
        .collect();
    Some(format!(
        "single:{}",
        people.into_iter().collect::<Vec<_>>().join("|")
    ))
}

/// Splits messages into sessions. Messages may come in any order; the result is ordered by conversation
/// key, then start time. A gap of exactly `idle_gap_ms` still continues the session.
pub fn sessionize(tenant: &str, messages: Vec<Message>, idle_gap_ms: i64) -> Vec<Session> {
    let mut by_key: BTreeMap<String, Vec<Message>> = BTreeMap::new();
    for m in messages {
        if let Some(key) = conversation_key(&m) {
            by_key.entry(key).or_default().push(m);
        }
    }
    let mut sessions = Vec::new();
    for (key, mut msgs) in by_key {
        msgs.sort_by(|a, b| (a.msgtime, &a.msgid).cmp(&(b.msgtime, &b.msgid)));
        let mut current: Vec<Message> = Vec::new();
        for m in msgs {
            if let Some(last) = current.last() {
                if m.msgtime - last.msgtime > idle_gap_ms {
                    sessions.push(close(tenant, &key, std::mem::take(&mut current)));
                }
            }
            current.push(m);
        }
        if !current.is_empty() {
            sessions.push(close(tenant, &key, current));
        }
    }
    sessions
}

fn close(tenant: &str, key: &str, messages: Vec<Message>) -> Session {
    let first = &messages[0];
    // Ten bytes of the hash: short enough to read, far from colliding within a tenant.
    let id = hash_parts([tenant, key, first.msgid.as_str()])[..20].to_string();
    let participants: BTreeSet<String> = messages
        .iter()
        .flat_map(|m| std::iter::once(m.from.clone()).chain(m.tolist.iter().cloned()))
        .collect();
    Session {
        id: format!("s_{id}"),
        conversation: key.to_string(),
        kind: if first.is_group() {
            SessionKind::Group
        } else {
            SessionKind::Single
        },
        participants: participants.into_iter().collect(),
        start: first.msgtime,
        end: messages.last().map_or(first.msgtime, |m| m.msgtime),
        messages,
        qr_codes: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, from: &str, to: &str, room: &str, t: i64) -> Message {
        Message::parse(&format!(
            r#"{{"msgid":"{id}","action":"send","from":"{from}","tolist":["{to}"],"roomid":"{room}","msgtime":{t},"msgtype":"text","text":{{"content":"x"}}}}"#
        ))
        .unwrap()
    }

    const GAP: i64 = 30 * 60 * 1000;

    #[test]
    fn single_chat_is_keyed_by_unordered_pair() {
        let s = sessionize(
            "t",
            vec![
                msg("1", "alice", "wmBob", "", 0),
                msg("2", "wmBob", "alice", "", 1000),
            ],
            GAP,
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].conversation, "single:alice|wmBob");
        assert_eq!(s[0].participants, vec!["alice", "wmBob"]);
        assert_eq!(s[0].kind, SessionKind::Single);
    }

    #[test]
    fn gap_of_exactly_the_limit_continues_and_one_more_ms_splits() {
        let s = sessionize(
            "t",
            vec![msg("1", "a", "wmB", "", 0), msg("2", "a", "wmB", "", GAP)],
            GAP,
        );
        assert_eq!(s.len(), 1);
        let s = sessionize(
            "t",
            vec![
                msg("1", "a", "wmB", "", 0),
                msg("2", "a", "wmB", "", GAP + 1),
            ],
            GAP,
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].start, GAP + 1);
    }

    #[test]
    fn out_of_order_input_gives_the_same_sessions_and_ids() {
        let msgs = vec![
            msg("1", "a", "wmB", "", 0),
            msg("2", "wmB", "a", "", 60_000),
            msg("3", "a", "wmB", "", 10 * GAP),
            msg("4", "a", "wmB", "", 10 * GAP + 5),
        ];
        let mut reversed = msgs.clone();
        reversed.reverse();
        let ids = |v: Vec<Session>| -> Vec<(String, Vec<String>)> {
            v.into_iter()
                .map(|s| (s.id, s.messages.into_iter().map(|m| m.msgid).collect()))
                .collect()
        };
        let a = ids(sessionize("t", msgs, GAP));
        let b = ids(sessionize("t", reversed, GAP));
        assert_eq!(a, b);
        assert_eq!(a[0].1, vec!["1", "2"]);
        assert_eq!(a[1].1, vec!["3", "4"]);
    }

    #[test]
    fn group_chat_is_keyed_by_room_not_by_sender() {
        let s = sessionize(
            "t",
            vec![
                msg("1", "a", "wmB", "room1", 0),
                msg("2", "wmC", "a", "room1", 10),
                msg("3", "a", "wmB", "", 20),
            ],
            GAP,
        );
        assert_eq!(s.len(), 2);
        let group = s.iter().find(|s| s.kind == SessionKind::Group).unwrap();
        assert_eq!(group.conversation, "group:room1");
        assert_eq!(group.messages.len(), 2);
    }

    #[test]
    fn session_ids_differ_by_tenant() {
        let a = sessionize("t1", vec![msg("1", "a", "wmB", "", 0)], GAP);
        let b = sessionize("t2", vec![msg("1", "a", "wmB", "", 0)], GAP);
        assert_ne!(a[0].id, b[0].id);
    }

    #[test]
    fn switch_events_join_no_session() {
        let sw = Message::parse(r#"{"msgid":"s","action":"switch","time":5,"user":"a"}"#).unwrap();
        assert!(sessionize("t", vec![sw], GAP).is_empty());
    }
}
