//! One archived message: the envelope every msgtype shares, the text a message contributes to analysis,
//! and the typed event it carries when it is not just text (a red packet's amount, a revoke's target).
//!
//! The payload is read from `serde_json::Value` by hand rather than derived, so an error can name the exact
//! field that is missing or mistyped, and so the dozens of msgtypes WeCom adds over time never fail a line.

use serde::Serialize;
use serde_json::{Map, Value};

/// What the archive says happened to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Send,
    Recall,
    /// A staff member switched the device they are logged in on; it has no chat and joins no session.
    Switch,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Send => "send",
            Action::Recall => "recall",
            Action::Switch => "switch",
        }
    }
}

/// Who a participant id belongs to, by WeCom's id conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// External contacts (customers): `wm…` (WeChat users) and `wo…` (other external ids).
    Customer,
    /// Group robots: `wb…`.
    Robot,
    /// Everything else is an internal userid.
    Staff,
}

impl Role {
    pub fn of(id: &str) -> Role {
        if id.starts_with("wm") || id.starts_with("wo") {
            Role::Customer
        } else if id.starts_with("wb") {
            Role::Robot
        } else {
            Role::Staff
        }
    }
}

/// The non-text meaning of a message, kept typed for the risk rules and for the store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Text-bearing messages: everything is in [`Message::text`].
    Text,
    /// `redpacket` (internal) or `external_redpacket` (互通红包); WeCom gives the amount in fen (分).
    RedPacket {
        external: bool,
        total_amount_fen: i64,
        total_count: i64,
    },
    /// A recall: the message it takes back.
    Revoke { pre_msgid: String },
    /// `agree` / `disagree`: the external contact's consent to archiving.
    Consent {
        agree: bool,
        userid: String,
        time: i64,
    },
    /// Image, voice, video, file, emotion, … : content lives in WeCom's media store under `sdkfileid`.
    Media {
        sdkfileid: Option<String>,
        size: Option<i64>,
    },
    /// `card` (名片): whose contact card was sent. A personal WeChat card has no `corpname`.
    Card { corpname: String, userid: String },
    /// `link`: where it leads (its title and description are the text).
    Link { url: String },
    /// `weapp` (小程序): which mini-program.
    Weapp {
        displayname: String,
        username: String,
    },
    /// A known msgtype with nothing more to type than its text (meeting, vote, calendar, …).
    Other,
    /// A msgtype this version does not know; the raw payload is kept in the store.
    Unknown,
}

/// One line of the archive, parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub msgid: String,
    pub action: Action,
    pub from: String,
    pub tolist: Vec<String>,
    /// Empty for one-to-one chats.
    pub roomid: String,
    /// Milliseconds since the epoch.
    pub msgtime: i64,
    pub msgtype: String,
    /// What the message says, for text-bearing types (text, link titles, file names, chat records, …).
    pub text: Option<String>,
    pub event: Event,
    /// The whole line as received, so nothing WeCom sent is lost even when this version ignores it.
    #[serde(skip)]
    pub raw: String,
}

/// Why a line is not a message. Always names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a JSON object")]
    NotObject,
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: expected {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `action`: unknown action {0:?} (expected send, recall or switch)")]
    UnknownAction(String),
    #[error(
        "field `{field}`: {value} is not a time between 2000-01-01 and 2100-01-01 \
         (milliseconds since 1970)"
    )]
    OutOfRange { field: &'static str, value: i64 },
}

/// The times an archive can hold, in epoch milliseconds: WeCom did not exist before the first, and a
/// value past the second is a unit mistake or garbage. Inside it every date and gap computation is
/// exact (no overflow, no time outside what a calendar can show).
const TIMES: std::ops::Range<i64> = 946_684_800_000..4_102_444_800_000;

impl Message {
    /// Parses a line that comes from outside (an archive file, the ingest API): [`Message::parse`],
    /// and a time inside what an archive can hold.
    pub fn parse_input(line: &str) -> Result<Message, ParseError> {
        let m = Message::parse(line)?;
        match TIMES.contains(&m.msgtime) {
            true => Ok(m),
            false => Err(ParseError::OutOfRange {
                field: if m.action == Action::Switch {
                    "time"
                } else {
                    "msgtime"
                },
                value: m.msgtime,
            }),
        }
    }
}

impl Message {
    /// Parses one archive line.
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let value: Value =
            serde_json::from_str(line).map_err(|e| ParseError::NotJson(e.to_string()))?;
        let obj = value.as_object().ok_or(ParseError::NotObject)?;
        let msgid = required_str(obj, "msgid")?;
        let action = match required_str(obj, "action")?.as_str() {
            "send" => Action::Send,
            "recall" => Action::Recall,
            "switch" => Action::Switch,
            other => return Err(ParseError::UnknownAction(other.to_string())),
        };
        if action == Action::Switch {
            // Switch events carry `time` and `user` instead of the chat envelope.
            let time = match obj.get("time") {
                Some(_) => required_i64(obj, "time")?,
                None => required_i64(obj, "msgtime")?,
            };
            return Ok(Message {
                msgid,
                action,
                from: required_str(obj, "user")?,
                tolist: Vec::new(),
                roomid: String::new(),
                msgtime: time,
                msgtype: "switch".into(),
                text: None,
                event: Event::Other,
                raw: line.to_string(),
            });
        }
        let msgtype = required_str(obj, "msgtype")?;
        // A consent event names its external contact in its payload; WeCom has sent them without
        // the chat envelope's `from` or `tolist`, and a refusal must not be lost for that.
        let consent = matches!(msgtype.as_str(), "agree" | "disagree");
        let consent_user = || {
            payload_object(&msgtype, obj)
                .and_then(|p| p.get("userid"))
                .and_then(Value::as_str)
                .filter(|u| !u.is_empty())
                .map(str::to_string)
        };
        let from = match (obj.get("from"), consent) {
            (None | Some(Value::Null), true) => {
                consent_user().ok_or(ParseError::Missing(if msgtype == "agree" {
                    "agree.userid"
                } else {
                    "disagree.userid"
                }))?
            }
            _ => required_str(obj, "from")?,
        };
        let tolist = match obj.get("tolist") {
            None | Some(Value::Null) if consent => Vec::new(),
            None | Some(Value::Null) => return Err(ParseError::Missing("tolist")),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(ParseError::WrongType {
                    field: "tolist",
                    expected: "an array of strings",
                })?,
            Some(_) => {
                return Err(ParseError::WrongType {
                    field: "tolist",
                    expected: "an array of strings",
                })
            }
        };
        let roomid = match obj.get("roomid") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ParseError::WrongType {
                    field: "roomid",
                    expected: "a string",
                })
            }
        };
        let msgtime = required_i64(obj, "msgtime")?;
        let (text, event) = payload(&msgtype, obj)?;
        Ok(Message {
            msgid,
            action,
            from,
            tolist,
            roomid,
            msgtime,
            msgtype,
            text: text.filter(|t| !t.trim().is_empty()),
            event,
            raw: line.to_string(),
        })
    }

    pub fn role(&self) -> Role {
        Role::of(&self.from)
    }

    pub fn is_group(&self) -> bool {
        !self.roomid.is_empty()
    }
}

fn required_str(obj: &Map<String, Value>, field: &'static str) -> Result<String, ParseError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ParseError::Missing(field)),
        Some(Value::String(s)) if s.is_empty() => Err(ParseError::Missing(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ParseError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn required_i64(obj: &Map<String, Value>, field: &'static str) -> Result<i64, ParseError> {
    let wrong = ParseError::WrongType {
        field,
        expected: "an integer (milliseconds)",
    };
    match obj.get(field) {
        None | Some(Value::Null) => Err(ParseError::Missing(field)),
        Some(Value::Number(n)) => n.as_i64().ok_or(wrong),
        // Some export tools write 64-bit integers as strings to survive JavaScript.
        Some(Value::String(s)) => s.trim().parse().map_err(|_| wrong),
        Some(_) => Err(wrong),
    }
}

/// The payload object of a msgtype. WeCom names it after the msgtype except for a few types whose payload
/// key differs (`docmsg` → `doc`, `markdown`/`news`/`qydiskfile` → `info`, `external_redpacket` →
/// `redpacket`); both spellings are accepted.
fn payload_object<'a>(
    msgtype: &str,
    obj: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    let alias = match msgtype {
        "docmsg" => Some("doc"),
        "markdown" | "news" | "qydiskfile" => Some("info"),
        "external_redpacket" => Some("redpacket"),
        "voip_doc_share" => Some("voip_doc_share"),
        _ => None,
    };
    obj.get(msgtype)
        .or_else(|| alias.and_then(|a| obj.get(a)))
        .and_then(Value::as_object)
}

fn payload(msgtype: &str, obj: &Map<String, Value>) -> Result<(Option<String>, Event), ParseError> {
    let empty = Map::new();
    let known = KNOWN_MSGTYPES.contains(&msgtype);
    let p = payload_object(msgtype, obj);
    if known && p.is_none() && !matches!(msgtype, "meeting_voice_call" | "voiptext") {
        return Err(ParseError::Missing(payload_field_name(msgtype)));
    }
    let p = p.unwrap_or(&empty);
    let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let i = |k: &str| p.get(k).and_then(value_i64);
    let media = || Event::Media {
        sdkfileid: p
            .get("sdkfileid")
            .and_then(Value::as_str)
            .map(str::to_string),
        size: i("filesize")
            .or_else(|| i("voice_size"))
            .or_else(|| i("imagesize")),
    };
    let out = match msgtype {
        "text" => (Some(s("content")), Event::Text),
        "markdown" => (Some(s("content")), Event::Text),
        "link" => (
            Some(join(&[s("title"), s("description")])),
            Event::Link { url: s("link_url") },
        ),
        "weapp" => (
            Some(join(&[s("title"), s("description")])),
            Event::Weapp {
                displayname: s("displayname"),
                username: s("username"),
            },
        ),
        "card" => (
            Some(s("corpname")),
            Event::Card {
                corpname: s("corpname"),
                userid: s("userid"),
            },
        ),
        "location" => (Some(join(&[s("title"), s("address")])), Event::Other),
        "file" => (Some(s("filename")), media()),
        "image" | "voice" | "video" | "emotion" | "meeting_voice_call" | "voip_doc_share" => {
            (None, media())
        }
        "chatrecord" => (Some(chatrecord_text(p)), Event::Text),
        "mixed" => (Some(mixed_text(p)), Event::Text),
        "news" => (Some(news_text(p)), Event::Text),
        "docmsg" => (Some(s("title")), Event::Other),
        "todo" => (Some(join(&[s("title"), s("content")])), Event::Other),
        "vote" => {
            let items = string_array(p.get("voteitem"));
            (Some(join(&[s("votetitle"), items.join(" ")])), Event::Other)
        }
        "collect" => (Some(join(&[s("room_name"), s("title")])), Event::Other),
        "calendar" => (
            Some(join(&[s("title"), s("place"), s("remarks")])),
            Event::Other,
        ),
        "meeting" => (Some(join(&[s("topic"), s("remarks")])), Event::Other),
        "sphfeed" => (Some(join(&[s("sph_name"), s("feed_desc")])), Event::Other),
        "qydiskfile" => (Some(s("filename")), Event::Other),
        "voiptext" => (None, Event::Other),
        "redpacket" | "external_redpacket" => (
            Some(s("wish")),
            Event::RedPacket {
                external: msgtype == "external_redpacket",
                total_amount_fen: i("totalamount").ok_or(ParseError::Missing(
                    if msgtype == "redpacket" {
                        "redpacket.totalamount"
                    } else {
                        "external_redpacket.totalamount"
                    },
                ))?,
                total_count: i("totalcnt").unwrap_or(1),
            },
        ),
        "revoke" => (
            None,
            Event::Revoke {
                pre_msgid: p
                    .get("pre_msgid")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or(ParseError::Missing("revoke.pre_msgid"))?
                    .to_string(),
            },
        ),
        "agree" | "disagree" => (
            None,
            Event::Consent {
                agree: msgtype == "agree",
                userid: s("userid"),
                time: i(if msgtype == "agree" {
                    "agree_time"
                } else {
                    "disagree_time"
                })
                .unwrap_or(0),
            },
        ),
        _ => (None, Event::Unknown),
    };
    Ok(out)
}

/// Every msgtype the archive documents. Types not listed here are kept raw as [`Event::Unknown`].
pub const KNOWN_MSGTYPES: &[&str] = &[
    "text",
    "image",
    "voice",
    "video",
    "file",
    "link",
    "card",
    "location",
    "emotion",
    "weapp",
    "chatrecord",
    "revoke",
    "agree",
    "disagree",
    "redpacket",
    "external_redpacket",
    "meeting_voice_call",
    "voip_doc_share",
    "voiptext",
    "mixed",
    "markdown",
    "news",
    "calendar",
    "todo",
    "vote",
    "collect",
    "meeting",
    "docmsg",
    "sphfeed",
    "qydiskfile",
];

fn payload_field_name(msgtype: &str) -> &'static str {
    KNOWN_MSGTYPES
        .iter()
        .find(|t| **t == msgtype)
        .copied()
        .unwrap_or("payload")
}

fn value_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn string_array(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn join(parts: &[String]) -> String {
    parts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Chat-record and mixed items carry their own payload as a JSON *string* in `content`.
fn embedded_text(item: &Map<String, Value>) -> String {
    let content = item.get("content");
    let parsed = content
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    let inner = parsed.as_ref().or(content);
    match inner {
        Some(Value::Object(o)) => o
            .get("content")
            .or_else(|| o.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn items(p: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    p.get("item")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn chatrecord_text(p: &Map<String, Value>) -> String {
    let mut parts = vec![p
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()];
    parts.extend(items(p).map(embedded_text));
    join(&parts)
}

fn mixed_text(p: &Map<String, Value>) -> String {
    let texts: Vec<String> = items(p)
        .filter(|it| {
            matches!(
                it.get("type").and_then(Value::as_str),
                Some("text") | Some("markdown") | Some("link")
            )
        })
        .map(embedded_text)
        .collect();
    join(&texts)
}

fn news_text(p: &Map<String, Value>) -> String {
    let parts: Vec<String> = items(p)
        .flat_map(|it| {
            ["title", "description"]
                .map(|k| it.get(k).and_then(Value::as_str).unwrap_or("").to_string())
        })
        .collect();
    join(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(msgtype: &str, payload_key: &str, payload: &str) -> String {
        format!(
            r#"{{"msgid":"m1","action":"send","from":"zhangsan","tolist":["wmABC"],"roomid":"","msgtime":1700000000000,"msgtype":"{msgtype}","{payload_key}":{payload}}}"#
        )
    }

    #[test]
    fn text_message_contributes_its_content() {
        let m = Message::parse(&line("text", "text", r#"{"content":"你好"}"#)).unwrap();
        assert_eq!(m.text.as_deref(), Some("你好"));
        assert_eq!(m.event, Event::Text);
        assert_eq!(m.role(), Role::Staff);
        assert_eq!(Role::of("wmABC"), Role::Customer);
        assert_eq!(Role::of("woXYZ"), Role::Customer);
        assert_eq!(Role::of("wbRobot"), Role::Robot);
    }

    #[test]
    fn every_documented_msgtype_parses() {
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            ("text", "text", r#"{"content":"在吗"}"#, Some("在吗")),
            (
                "image",
                "image",
                r#"{"md5sum":"x","filesize":10,"sdkfileid":"f"}"#,
                None,
            ),
            (
                "voice",
                "voice",
                r#"{"md5sum":"x","voice_size":10,"play_length":3,"sdkfileid":"f"}"#,
                None,
            ),
            (
                "video",
                "video",
                r#"{"md5sum":"x","filesize":10,"play_length":3,"sdkfileid":"f"}"#,
                None,
            ),
            (
                "file",
                "file",
                r#"{"md5sum":"x","filename":"报价单.xlsx","fileext":"xlsx","filesize":10,"sdkfileid":"f"}"#,
                Some("报价单.xlsx"),
            ),
            (
                "link",
                "link",
                r#"{"title":"产品介绍","description":"新品","link_url":"https://e.x","image_url":""}"#,
                Some("产品介绍 新品"),
            ),
            (
                "card",
                "card",
                r#"{"corpname":"某公司","userid":"u"}"#,
                Some("某公司"),
            ),
            (
                "location",
                "location",
                r#"{"longitude":1.0,"latitude":2.0,"address":"上海市","title":"门店","zoom":15}"#,
                Some("门店 上海市"),
            ),
            (
                "emotion",
                "emotion",
                r#"{"type":1,"width":10,"height":10,"imagesize":5,"md5sum":"x","sdkfileid":"f"}"#,
                None,
            ),
            (
                "weapp",
                "weapp",
                r#"{"title":"下单","description":"小程序","username":"u","displayname":"d"}"#,
                Some("下单 小程序"),
            ),
            (
                "chatrecord",
                "chatrecord",
                r#"{"title":"聊天记录","item":[{"type":"ChatRecordText","msgtime":1,"content":"{\"content\":\"价格多少\"}","from_chatroom":false}]}"#,
                Some("聊天记录 价格多少"),
            ),
            (
                "todo",
                "todo",
                r#"{"title":"回访","content":"周五回访客户"}"#,
                Some("回访 周五回访客户"),
            ),
            (
                "vote",
                "vote",
                r#"{"votetitle":"选哪个","voteitem":["A","B"],"votetype":101,"voteid":"v"}"#,
                Some("选哪个 A B"),
            ),
            (
                "collect",
                "collect",
                r#"{"room_name":"群","creator":"c","create_time":"t","title":"报名","details":[]}"#,
                Some("群 报名"),
            ),
            (
                "calendar",
                "calendar",
                r#"{"title":"拜访","creatorname":"c","attendeename":["a"],"starttime":1,"endtime":2,"place":"会议室","remarks":"带合同"}"#,
                Some("拜访 会议室 带合同"),
            ),
            (
                "meeting",
                "meeting",
                r#"{"topic":"方案沟通","starttime":1,"endtime":2,"address":"","remarks":"","meetingtype":102,"meetingid":1,"status":1}"#,
                Some("方案沟通"),
            ),
            (
                "docmsg",
                "doc",
                r#"{"title":"合同草稿","doc_creator":"c","link_url":"https://d"}"#,
                Some("合同草稿"),
            ),
            (
                "markdown",
                "info",
                r#"{"content":"**通知**"}"#,
                Some("**通知**"),
            ),
            (
                "news",
                "info",
                r#"{"item":[{"title":"活动","description":"五折","url":"u","picurl":"p"}]}"#,
                Some("活动 五折"),
            ),
            (
                "mixed",
                "mixed",
                r#"{"item":[{"type":"text","content":"{\"content\":\"看图\"}"},{"type":"image","content":"{\"md5sum\":\"x\"}"}]}"#,
                Some("看图"),
            ),
            (
                "sphfeed",
                "sphfeed",
                r#"{"feed_type":4,"sph_name":"官方号","feed_desc":"新品发布"}"#,
                Some("官方号 新品发布"),
            ),
            (
                "meeting_voice_call",
                "meeting_voice_call",
                r#"{"endtime":1,"sdkfileid":"f"}"#,
                None,
            ),
            (
                "voip_doc_share",
                "voip_doc_share",
                r#"{"filename":"a.pdf","md5sum":"x","filesize":3,"sdkfileid":"f"}"#,
                None,
            ),
            (
                "voiptext",
                "voiptext",
                r#"{"callduration":10,"invitetype":1}"#,
                None,
            ),
            (
                "qydiskfile",
                "info",
                r#"{"filename":"手册.pdf"}"#,
                Some("手册.pdf"),
            ),
        ];
        for (msgtype, key, payload, text) in cases {
            let m = Message::parse(&line(msgtype, key, payload))
                .unwrap_or_else(|e| panic!("{msgtype}: {e}"));
            assert_eq!(m.msgtype, *msgtype);
            assert_eq!(m.text.as_deref(), *text, "{msgtype}");
            assert_ne!(m.event, Event::Unknown, "{msgtype}");
        }
    }

    #[test]
    fn red_packet_keeps_amount_in_fen() {
        let m = Message::parse(&line(
            "redpacket",
            "redpacket",
            r#"{"type":1,"wish":"恭喜发财","totalcnt":1,"totalamount":88800}"#,
        ))
        .unwrap();
        assert_eq!(
            m.event,
            Event::RedPacket {
                external: false,
                total_amount_fen: 88800,
                total_count: 1
            }
        );
        let m = Message::parse(&line(
            "external_redpacket",
            "redpacket",
            r#"{"type":1,"wish":"","totalcnt":2,"totalamount":100}"#,
        ))
        .unwrap();
        assert!(matches!(
            m.event,
            Event::RedPacket {
                external: true,
                total_amount_fen: 100,
                ..
            }
        ));
    }

    #[test]
    fn revoke_names_the_message_it_takes_back() {
        let raw = r#"{"msgid":"m2","action":"recall","from":"zhangsan","tolist":["wmABC"],"roomid":"","msgtime":1700000000001,"msgtype":"revoke","revoke":{"pre_msgid":"m1"}}"#;
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.action, Action::Recall);
        assert_eq!(
            m.event,
            Event::Revoke {
                pre_msgid: "m1".into()
            }
        );
    }

    #[test]
    fn consent_events_record_who_and_whether() {
        let m = Message::parse(&line(
            "agree",
            "agree",
            r#"{"userid":"wmABC","agree_time":1700}"#,
        ))
        .unwrap();
        assert_eq!(
            m.event,
            Event::Consent {
                agree: true,
                userid: "wmABC".into(),
                time: 1700
            }
        );
        let m = Message::parse(&line(
            "disagree",
            "disagree",
            r#"{"userid":"wmABC","disagree_time":1800}"#,
        ))
        .unwrap();
        assert_eq!(
            m.event,
            Event::Consent {
                agree: false,
                userid: "wmABC".into(),
                time: 1800
            }
        );
    }

    #[test]
    fn unknown_msgtype_is_kept_raw_not_rejected() {
        let raw = line("hologram", "hologram", r#"{"x":1}"#);
        let m = Message::parse(&raw).unwrap();
        assert_eq!(m.event, Event::Unknown);
        assert_eq!(m.raw, raw);
    }

    #[test]
    fn switch_event_has_user_and_time() {
        let m = Message::parse(
            r#"{"msgid":"s1","action":"switch","time":1554119421840,"user":"XuJinSheng"}"#,
        )
        .unwrap();
        assert_eq!(m.action, Action::Switch);
        assert_eq!(m.from, "XuJinSheng");
        assert_eq!(m.msgtime, 1554119421840);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Message::parse(r#"{"msgid":"m1","action":"send","from":"a","tolist":["b"],"msgtype":"text","text":{"content":"x"}}"#).unwrap_err();
        assert_eq!(e.to_string(), "missing required field `msgtime`");
        let e = Message::parse(r#"{"msgid":"m1","action":"send","from":"a","tolist":"b","msgtime":1,"msgtype":"text","text":{"content":"x"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `tolist`: expected an array of strings"
        );
        let e = Message::parse(r#"{"msgid":"m1","action":"send","from":"a","tolist":["b"],"msgtime":"soon","msgtype":"text","text":{"content":"x"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `msgtime`: expected an integer (milliseconds)"
        );
        let e = Message::parse(r#"{"msgid":"m1","action":"send","from":"a","tolist":["b"],"msgtime":1700000000000,"msgtype":"text"}"#).unwrap_err();
        assert_eq!(e.to_string(), "missing required field `text`");
        let e = Message::parse("{not json").unwrap_err();
        assert!(matches!(e, ParseError::NotJson(_)));
        let e = Message::parse(r#"{"msgid":"m1","action":"forward"}"#).unwrap_err();
        assert!(e.to_string().contains("forward"));
    }

    #[test]
    fn a_msgtime_outside_any_calendar_is_rejected_naming_the_field() {
        for t in [
            "8210266876799999",
            "9223372036854775807",
            "-9223372036854775808",
            "-1",
        ] {
            let line = format!(
                r#"{{"msgid":"m1","action":"send","from":"a","tolist":["b"],"msgtime":{t},"msgtype":"text","text":{{"content":"x"}}}}"#
            );
            assert!(
                Message::parse(&line).is_ok(),
                "stored messages read back as they are"
            );
            let e = Message::parse_input(&line).unwrap_err();
            assert!(e.to_string().starts_with("field `msgtime`: "), "{e}");
            assert!(e.to_string().contains(t), "{e}");
        }
    }

    #[test]
    fn msgtime_as_string_is_accepted() {
        let m = Message::parse(r#"{"msgid":"m1","action":"send","from":"a","tolist":["b"],"msgtime":"1700000000000","msgtype":"text","text":{"content":"x"}}"#).unwrap();
        assert_eq!(m.msgtime, 1_700_000_000_000);
    }
}
