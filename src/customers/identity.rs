//! Who a customer says they are: phone numbers and names they write. Only the customer's own messages
//! count: staff write their own phone or the hotline to many customers, which says nothing about who
//! the customer is. Values are kept as hashes (compared) and masked forms (shown).

use sha2::{Digest, Sha256};

use super::Identifier;
use crate::archive::Message;
use crate::digest::hex;
use crate::sensitive::{detect_pii, phone_digits, MatchKind};

/// Phrases after which people write their own name.
const NAME_MARKERS: &[&str] = &[
    "我的名字是",
    "我的名字叫",
    "我叫",
    "本人姓名",
    "姓名是",
    "姓名：",
    "姓名:",
    "联系人：",
    "联系人:",
    "联系人是",
];

/// Words that follow 我叫 without being a name.
const NOT_NAMES: &[&str] = &["什么", "一下", "客服", "老板", "经理", "同事", "朋友"];

pub fn identifiers(messages: &[&Message]) -> Vec<Identifier> {
    let mut out: Vec<Identifier> = Vec::new();
    for m in messages {
        let Some(text) = m.text.as_deref() else {
            continue;
        };
        for hit in detect_pii(text) {
            if hit.kind != MatchKind::Phone {
                continue;
            }
            let digits = phone_digits(&hit.matched_text);
            let digits = digits
                .strip_prefix("86")
                .filter(|d| d.len() == 11)
                .unwrap_or(&digits)
                .to_string();
            let masked = format!("{}****{}", &digits[..3], &digits[digits.len() - 4..]);
            push(&mut out, "phone", &digits, masked, &m.msgid);
        }
        if let Some(name) = name_in(text) {
            let mut chars = name.chars();
            let masked = chars.next().into_iter().chain(chars.map(|_| '*')).collect();
            push(&mut out, "name", &name, masked, &m.msgid);
        }
    }
    out
}

fn push(out: &mut Vec<Identifier>, kind: &str, value: &str, masked: String, msgid: &str) {
    let hash = hex(&Sha256::digest(format!("{kind}:{value}").as_bytes()));
    if out.iter().any(|i| i.hash == hash && i.msgid == msgid) {
        return;
    }
    out.push(Identifier {
        kind: kind.into(),
        hash,
        masked,
        msgid: msgid.into(),
    });
}

/// Two or three Han characters right after a name marker: 我叫王小明 → 王小明.
fn name_in(text: &str) -> Option<String> {
    for marker in NAME_MARKERS {
        let Some(at) = text.find(marker) else {
            continue;
        };
        let rest = text[at + marker.len()..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
            .take(4)
            .collect();
        let len = name.chars().count();
        if (2..=3).contains(&len) && !NOT_NAMES.iter().any(|w| name.starts_with(w)) {
            return Some(name);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_a_marker_and_are_two_or_three_han() {
        assert_eq!(
            name_in("你好，我叫王小明，想了解一下").as_deref(),
            Some("王小明")
        );
        assert_eq!(name_in("联系人：李雷").as_deref(), Some("李雷"));
        assert_eq!(name_in("我叫什么不重要"), None);
        assert_eq!(name_in("我叫Tom"), None);
        // Four Han characters run on into the sentence: not taken as a name.
        assert_eq!(name_in("我叫张三想问价格"), None);
    }
}
