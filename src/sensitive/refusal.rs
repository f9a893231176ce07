//! Hits that their own clause takes back. Words of an offer — 返点, 包过, 私人微信, 阴阳合同 — turn up
//! as often in a refusal ("个人返点这种绝对不行", "阴阳合同是违法的") as in the offer itself; flagging
//! those buries the real offers. Only categories that name an offer are read this way: a complaint or
//! an insult is one whatever surrounds it ("我不能接受，我要投诉").
//!
//! A customer asking for the thing ("你们能包过吗", "你私人微信多少") still raises the alert: the
//! alert is raised as the message arrives, before anyone knows whether staff will refuse, and the
//! session's analysis must find the same alert again.

use super::Match;

/// The lexicon categories whose words name something offered or asked for.
const OFFER_CATEGORIES: &[&str] = &["违规", "引流"];

/// Words that refuse or warn against what the clause names.
const REFUSALS: &[&str] = &[
    "不行",
    "不能",
    "不可以",
    "不允许",
    "禁止",
    "严禁",
    "违法",
    "违规的",
    "违反",
    "明令",
    "做不了",
    "办不了",
    "不做",
    "从来不",
    "从不",
    "绝不",
    "绝对不",
    "切勿",
    "请勿",
    "谨防",
    "小心",
    "警惕",
    "不提供",
    "不接受",
    "不支持",
    "没有哪个",
];

/// True when the hit at `hit` in `text` is refused in its own clause. The hit's own words do not
/// count (不开发票 is an offer, not a refusal).
pub fn taken_back(text: &str, hit: &Match) -> bool {
    if !OFFER_CATEGORIES.contains(&hit.category.as_str()) {
        return false;
    }
    let (bs, be) = (hit.byte_start, hit.byte_end);
    let (before, after) = (&text[..bs], &text[be..]);
    // The hit's clause, before and after it.
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| is_clause_end(*c))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let stop = after.find(is_clause_end).unwrap_or(after.len());
    let (b, a) = (&before[start..], &after[..stop]);
    refuses(b) || refuses(a)
}

/// A refusal word in `s`, not the middle of an A不A question ("能不能", "可不可以", "行不行").
fn refuses(s: &str) -> bool {
    REFUSALS.iter().any(|w| {
        s.match_indices(w).any(|(i, _)| {
            let Some(after_not) = w.strip_prefix('不').and_then(|r| r.chars().next()) else {
                return true;
            };
            !s[..i].ends_with(after_not)
        })
    })
}

fn is_clause_end(c: char) -> bool {
    matches!(
        c,
        '，' | ','
            | '、'
            | '；'
            | ';'
            | '：'
            | ':'
            | '。'
            | '！'
            | '？'
            | '!'
            | '?'
            | '\n'
            | '…'
            | '~'
            | '～'
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensitive::{Engine, Lexicon};

    fn check(lexicon: &str, cases: &[(&str, bool)]) {
        let (lex, errors) = Lexicon::parse("test", lexicon);
        assert!(errors.is_empty(), "{errors:?}");
        let engine = Engine::build(&lex);
        for (text, want) in cases {
            let hits = engine.scan(text);
            assert!(!hits.is_empty(), "{text}: no hit to read");
            let got = hits.iter().any(|h| taken_back(text, h));
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn offers_refused_in_their_clause_are_taken_back_and_offers_are_not() {
        check(
            "返点,违规,high\n包过,违规,medium\n私人微信,引流,high\n不开发票,违规,medium\n投诉,客诉,medium\n",
            &[
                ("王经理，个人返点这种绝对不行", true),
                ("谁跟您说包过您反而要小心", true),
                ("公司规定不能加私人微信哦", true),
                // The refusal is in another clause: the offer stands.
                ("返点给你三个，不能让公司知道", false),
                ("这单我私下给你返点", false),
                // The hit's own words are not a refusal.
                ("不开发票的话便宜两百", false),
                // A customer's ask is raised: nobody knows yet whether staff will refuse.
                ("你们考研班能包过吗", false),
                ("老师你私人微信多少，我加一下", false),
                ("能不能留个私人微信？", false),
                ("可不可以包过", false),
                // Complaints are not offers: a refusal beside one does not take it back.
                ("我不能接受，我要投诉", false),
            ],
        );
    }

    #[test]
    fn any_text_around_a_hit_is_read_without_panicking() {
        // Hits at the very start and end, multi-byte separators on both sides.
        check(
            "返点,违规,high\n",
            &[
                ("返点", false),
                ("？返点？", false),
                ("～返点不行", true),
                ("返点…不行", false),
            ],
        );
    }
}
