//! Private data and off-platform hand-offs, found without any lexicon: mainland mobile numbers (with
//! separators, full-width digits, +86, or written in Chinese numerals), Luhn-valid bank-card numbers, and
//! WeChat/QQ ids given after a hand-off trigger (加我, VX, 薇, 扣扣 …). Also the 脱敏 masking that every
//! stored alert and every model request goes through.

use std::sync::LazyLock;

use daachorse::{
    CharwiseDoubleArrayAhoCorasick, CharwiseDoubleArrayAhoCorasickBuilder, MatchKind as DaaKind,
};

use super::lexicon::Severity;
use super::matcher::{located, Match, MatchKind};
use super::normalize::Normalized;

/// [`digit_of`] for every BMP character, 255 for "not a digit": one lookup per character on the hot
/// path instead of a dozen range comparisons (every chat line is scanned for phone numbers).
static DIGITS: LazyLock<Box<[u8; 0x10000]>> = LazyLock::new(|| {
    let mut table = Box::new([255u8; 0x10000]);
    for (code, slot) in table.iter_mut().enumerate() {
        if let Some(d) = char::from_u32(code as u32).and_then(digit_of) {
            *slot = d;
        }
    }
    table
});

/// The value of a character used to write a digit, in any of the ways people write phone numbers.
fn digit_value(c: char) -> Option<u8> {
    match DIGITS.get(c as usize) {
        Some(255) | None => None,
        Some(d) => Some(*d),
    }
}

fn digit_of(c: char) -> Option<u8> {
    Some(match c {
        '0'..='9' => c as u8 - b'0',
        '０'..='９' => (c as u32 - '０' as u32) as u8,
        '〇' | '零' | '⓪' => 0,
        '一' | '壹' | '幺' => 1,
        '二' | '贰' | '两' => 2,
        '三' | '叁' => 3,
        '四' | '肆' => 4,
        '五' | '伍' => 5,
        '六' | '陆' => 6,
        '七' | '柒' => 7,
        '八' | '捌' => 8,
        '九' | '玖' => 9,
        '①'..='⑨' => (c as u32 - '①' as u32 + 1) as u8,
        _ => return None,
    })
}

/// Characters people put between the digits of one number.
fn joiner(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '·' | '—' | '－' | '　' | '．' | '\u{2002}'..='\u{200b}'
    )
}

/// One run of digits with the original byte offset and length of each digit.
struct Run {
    digits: Vec<(usize, usize, u8)>,
}

impl Run {
    fn value(&self, from: usize, to: usize) -> String {
        self.digits[from..to]
            .iter()
            .map(|d| (b'0' + d.2) as char)
            .collect()
    }
    fn ascii_only(&self, text: &str) -> bool {
        self.digits.iter().all(|(b, l, _)| {
            text[*b..*b + *l]
                .chars()
                .all(|c| c.is_ascii_digit() || ('０'..='９').contains(&c))
        })
    }
}

fn digit_runs(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut current: Vec<(usize, usize, u8)> = Vec::new();
    let mut joiners = 0;
    for (i, c) in text.char_indices() {
        if let Some(d) = digit_value(c) {
            current.push((i, c.len_utf8(), d));
            joiners = 0;
        } else if joiner(c) && !current.is_empty() && joiners < 2 {
            joiners += 1;
        } else if !current.is_empty() {
            // Runs too short to be a phone or card are common (prices, dates): reuse the buffer.
            if current.len() >= 5 {
                runs.push(Run {
                    digits: std::mem::take(&mut current),
                });
            } else {
                current.clear();
            }
            joiners = 0;
        }
    }
    if current.len() >= 5 {
        runs.push(Run { digits: current });
    }
    runs
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0;
    for (i, d) in digits.bytes().rev().enumerate() {
        let mut v = (d - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

fn is_mobile(d: &str) -> bool {
    d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9')
}

/// Digits `from..to` of a run, located in the original text as a detection of `kind`; `extra` bytes
/// after the last digit belong to it too (the X that ends an ID number).
fn span(text: &str, run: &Run, from: usize, to: usize, kind: MatchKind, extra: usize) -> Match {
    let (word, severity) = match kind {
        MatchKind::BankCard => ("bank_card", Severity::High),
        MatchKind::IdCard => ("id_card", Severity::High),
        _ => ("phone", Severity::Medium),
    };
    let (bs, _, _) = run.digits[from];
    let (be, len, _) = run.digits[to - 1];
    located(text, bs, be + len + extra, word, "隐私", severity, kind)
}

/// Whether `yyyymmdd` is a date someone alive could be born on.
fn birth_date(year: u32, month: u32, day: u32) -> bool {
    (1850..=2030).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day)
}

/// The first two digits of a mainland ID: a province-level region (11 北京 … 65 新疆, 71 台湾,
/// 81 香港, 82 澳门).
fn region(d: &[u8]) -> bool {
    matches!(d[0] * 10 + d[1], 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81 | 82)
}

/// An 18-character resident ID: 17 digits and a check character (0–9 or X) by ISO 7064 MOD 11-2,
/// with a region and a birth date that can be.
pub fn id_card_18(digits: &[u8], check: char) -> bool {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    if digits.len() != 17 || !region(digits) {
        return false;
    }
    let n = |r: std::ops::Range<usize>| digits[r].iter().fold(0u32, |a, d| a * 10 + u32::from(*d));
    if !birth_date(n(6..10), n(10..12), n(12..14)) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(*d) * w)
        .sum();
    char::from(CHECK[(sum % 11) as usize]) == check.to_ascii_uppercase()
}

/// The 15-digit ID issued before 1999: region, a birth date as yymmdd (19yy), three digits; no check
/// digit, so it is believed only where the text says 身份证.
fn id_card_15(digits: &[u8]) -> bool {
    let n = |r: std::ops::Range<usize>| digits[r].iter().fold(0u32, |a, d| a * 10 + u32::from(*d));
    digits.len() == 15 && region(digits) && birth_date(1900 + n(6..8), n(8..10), n(10..12))
}

/// Phones, ID numbers and bank cards.
fn numbers(text: &str, out: &mut Vec<Match>) {
    let mut says_id: Option<bool> = None;
    for run in digit_runs(text) {
        let n = run.digits.len();
        let all = run.value(0, n);
        let digits: Vec<u8> = run.digits.iter().map(|d| d.2).collect();
        if run.ascii_only(text) {
            let (last, len, _) = run.digits[n - 1];
            let after = text[last + len..].chars().next();
            if n == 17 {
                if let Some(x) = after.filter(|c| matches!(c, 'X' | 'x' | 'Ｘ' | 'ｘ')) {
                    if id_card_18(&digits, 'X') {
                        out.push(span(text, &run, 0, n, MatchKind::IdCard, x.len_utf8()));
                        continue;
                    }
                }
            }
            if n == 18 && id_card_18(&digits[..17], char::from(b'0' + digits[17])) {
                out.push(span(text, &run, 0, n, MatchKind::IdCard, 0));
                continue;
            }
            if n == 15
                && id_card_15(&digits)
                && *says_id.get_or_insert_with(|| text.contains("身份证") || text.contains("证件"))
            {
                out.push(span(text, &run, 0, n, MatchKind::IdCard, 0));
                continue;
            }
        }
        // +86 / 0086 prefixes belong to the number but not to what is masked.
        let phone_from = if is_mobile(&all) {
            Some(0)
        } else if n == 13 && all.starts_with("86") && is_mobile(&all[2..]) {
            Some(2)
        } else if n == 15 && all.starts_with("0086") && is_mobile(&all[4..]) {
            Some(4)
        } else {
            None
        };
        if let Some(from) = phone_from {
            out.push(span(text, &run, from, n, MatchKind::Phone, 0));
        } else if (16..=19).contains(&n)
            && run.ascii_only(text)
            && matches!(all.as_bytes()[0], b'3'..=b'6')
            && luhn(&all)
        {
            out.push(span(text, &run, 0, n, MatchKind::BankCard, 0));
        }
    }
}

/// E-mail addresses: `local@domain.tld`, ASCII, with `@` or a full-width `＠`.
fn emails(text: &str, out: &mut Vec<Match>) {
    let local = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '%' | '+' | '-');
    let label = |c: char| c.is_ascii_alphanumeric() || c == '-';
    for (at, sign) in text.match_indices(['@', '＠']) {
        let start = text[..at]
            .char_indices()
            .rev()
            .take_while(|(_, c)| local(*c))
            .last()
            .map(|(i, _)| i);
        let Some(start) = start else { continue };
        let from = at + sign.len();
        let domain_len: usize = text[from..]
            .chars()
            .take_while(|c| label(*c) || *c == '.')
            .map(char::len_utf8)
            .sum();
        let domain = text[from..from + domain_len].trim_end_matches('.');
        let end = from + domain.len();
        let labels: Vec<&str> = domain.split('.').collect();
        // At least a name and a TLD of two letters or more; no empty label; no local part that
        // starts with a dot.
        let tld = labels.last().copied().unwrap_or("");
        if labels.len() < 2
            || labels.iter().any(|l| l.is_empty())
            || tld.len() < 2
            || !tld.bytes().all(|b| b.is_ascii_alphabetic())
            || text[start..at].starts_with('.')
        {
            continue;
        }
        if out.iter().any(|o| o.byte_start < end && start < o.byte_end) {
            continue;
        }
        out.push(located(
            text,
            start,
            end,
            "email",
            "隐私",
            Severity::Medium,
            MatchKind::Email,
        ));
    }
}

const WECHAT_TRIGGERS: &[&str] = &[
    "加我",
    "加微",
    "微信",
    "微信号",
    "威信",
    "薇信",
    "薇",
    "v信",
    "vx",
    "wx",
    "加v",
    "私聊",
    "wechat",
    "weixin",
    "绿泡泡",
];
const QQ_TRIGGERS: &[&str] = &["qq", "扣扣", "企鹅", "q号"];

static TRIGGERS: LazyLock<CharwiseDoubleArrayAhoCorasick<u32>> = LazyLock::new(|| {
    // Overlapping search: in "加v信" both "加v" and "v信" must be tried, since the id follows the latter.
    CharwiseDoubleArrayAhoCorasickBuilder::new()
        .match_kind(DaaKind::Standard)
        .build(WECHAT_TRIGGERS.iter().chain(QQ_TRIGGERS))
        .expect("static triggers")
});

/// An id written after a trigger: `[A-Za-z0-9_-]+` in ASCII or full-width, after at most a few
/// separators or filler words (是, 号, 为, 码, colons, spaces).
fn id_after(text: &str, from: usize) -> Option<(usize, usize, String)> {
    let mut start = None;
    for (skipped, (i, c)) in text[from..].char_indices().enumerate() {
        if skipped > 6 {
            return None;
        }
        let folded = fold_ascii(c);
        if folded.is_ascii_alphanumeric() {
            start = Some(from + i);
            break;
        }
        if !(super::normalize::fold_char(c).is_none()
            || matches!(c, '是' | '号' | '為' | '为' | '码' | '碼'))
        {
            return None;
        }
    }
    let start = start?;
    let mut end = start;
    let mut id = String::new();
    for (i, c) in text[start..].char_indices() {
        let f = fold_ascii(c);
        if f.is_ascii_alphanumeric() || f == '_' || f == '-' {
            id.push(f.to_ascii_lowercase());
            end = start + i + c.len_utf8();
        } else {
            break;
        }
    }
    Some((start, end, id))
}

fn fold_ascii(c: char) -> char {
    if ('\u{ff01}'..='\u{ff5e}').contains(&c) {
        char::from_u32(c as u32 - 0xfee0).unwrap_or(c)
    } else {
        c
    }
}

fn handoffs(text: &str, out: &mut Vec<Match>) {
    if !has_id_candidate(text) {
        return;
    }
    let mut norm = Normalized::default();
    norm.fill(text);
    handoffs_in(text, &norm, out);
}

/// Whether a text holds a run of five or more ASCII or full-width letters, digits, `_` or `-`: the
/// shortest id worth reporting. Most chat lines hold none, and then no trigger needs looking for.
fn has_id_candidate(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        let f = fold_ascii(c);
        if f.is_ascii_alphanumeric() || f == '_' || f == '-' {
            run += 1;
            if run >= 5 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn handoffs_in(text: &str, norm: &Normalized, out: &mut Vec<Match>) {
    for m in TRIGGERS.find_overlapping_iter(&norm.text) {
        let trigger = &norm.text[m.start()..m.end()];
        let (bs, be) = norm.original_range(text, m.start(), m.end());
        let latin = trigger
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if latin
            && text[..bs]
                .chars()
                .next_back()
                .is_some_and(|c| fold_ascii(c).is_ascii_alphabetic())
        {
            continue;
        }
        let Some((is, ie, id)) = id_after(text, be) else {
            continue;
        };
        let qq = QQ_TRIGGERS.contains(&trigger);
        let digits = id.bytes().all(|b| b.is_ascii_digit());
        let kind = if qq && digits && (5..=11).contains(&id.len()) && !id.starts_with('0') {
            MatchKind::QqId
        } else if !qq && (6..=20).contains(&id.len()) && id.as_bytes()[0].is_ascii_alphabetic() {
            MatchKind::WechatId
        } else {
            continue;
        };
        if out.iter().any(|o| o.byte_start < ie && is < o.byte_end) {
            continue;
        }
        let word = if kind == MatchKind::QqId {
            "qq_id"
        } else {
            "wechat_id"
        };
        out.push(located(text, is, ie, word, "引流", Severity::High, kind));
    }
}

/// Private data and hand-off ids in a text already normalized by the caller (the engine's scan), so
/// the text is normalized once for both lexicon and hand-off triggers. Not sorted.
pub(super) fn detect_in(text: &str, norm: &Normalized) -> Vec<Match> {
    let mut out = Vec::new();
    numbers(text, &mut out);
    if text.contains(['@', '＠']) {
        emails(text, &mut out);
    }
    // The normalized text has letters folded to ASCII lower case, so the id pre-check is a byte loop.
    // It drops `_`/`-` and joins across separators, which can only let more texts through, never fewer.
    let mut run = 0;
    let candidate = norm.text.bytes().any(|b| {
        run = if b.is_ascii_alphanumeric() {
            run + 1
        } else {
            0
        };
        run >= 5
    });
    if candidate {
        handoffs_in(text, norm, &mut out);
    }
    out
}

/// Private data and hand-off ids in a text, ordered by start.
pub fn detect(text: &str) -> Vec<Match> {
    let mut out = Vec::new();
    numbers(text, &mut out);
    if text.contains(['@', '＠']) {
        emails(text, &mut out);
    }
    handoffs(text, &mut out);
    super::matcher::char_offsets(text, &mut out);
    out
}

/// The digits of a phone found by [`detect`], however they were written (separators, full-width,
/// Chinese numerals): what tells that two mentions are one number.
pub fn phone_digits(matched: &str) -> String {
    matched
        .chars()
        .filter_map(digit_value)
        .map(|d| char::from(b'0' + d))
        .collect()
}

/// 脱敏: phones keep their first 3 and last 4 digits (138****5678), cards their first and last 4
/// (6222 **** **** 0123), ID numbers their first 3 and last 4, e-mail addresses the first character
/// and the domain, hand-off ids their first 2 characters. Everything else is left as it was.
pub fn mask(text: &str) -> String {
    let found = detect(text);
    if found.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in &found {
        if m.byte_start < at {
            continue;
        }
        out.push_str(&text[at..m.byte_start]);
        let piece = &text[m.byte_start..m.byte_end];
        match m.kind {
            MatchKind::Phone => {
                let mut nth = 0;
                for c in piece.chars() {
                    if digit_value(c).is_some() {
                        out.push(if (3..7).contains(&nth) { '*' } else { c });
                        nth += 1;
                    } else {
                        out.push(c);
                    }
                }
            }
            MatchKind::BankCard => {
                let digits: Vec<char> = piece
                    .chars()
                    .filter(|c| digit_value(*c).is_some())
                    .collect();
                let first: String = digits[..4].iter().collect();
                let last: String = digits[digits.len() - 4..].iter().collect();
                out.push_str(&format!("{first} **** **** {last}"));
            }
            MatchKind::IdCard => {
                let n = piece.chars().count();
                for (i, c) in piece.chars().enumerate() {
                    out.push(if i < 3 || i + 4 >= n { c } else { '*' });
                }
            }
            MatchKind::Email => {
                let at = piece.find(['@', '＠']).unwrap_or(0);
                let mut chars = piece[..at].chars();
                out.extend(chars.next());
                out.push_str("***");
                out.push_str(&piece[at..]);
            }
            _ => {
                for (i, c) in piece.chars().enumerate() {
                    out.push(if i < 2 { c } else { '*' });
                }
            }
        }
        at = m.byte_end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, String)> {
        detect(text)
            .into_iter()
            .map(|m| (m.word, m.matched_text))
            .collect()
    }

    #[test]
    fn phones_in_every_written_form() {
        for (text, expect) in [
            ("电话13812345678", "13812345678"),
            ("打138 1234 5678找我", "138 1234 5678"),
            ("138-1234-5678", "138-1234-5678"),
            ("１３８１２３４５６７８", "１３８１２３４５６７８"),
            ("+86 13812345678", "13812345678"),
            ("一三九零零零零一二三四", "一三九零零零零一二三四"),
            ("幺三八幺二三四五六七八", "幺三八幺二三四五六七八"),
            ("壹叁捌壹贰叁肆伍陆柒捌", "壹叁捌壹贰叁肆伍陆柒捌"),
        ] {
            assert_eq!(
                found(text),
                vec![("phone".to_string(), expect.to_string())],
                "{text}"
            );
        }
        assert!(found("订单号 20241125138123456789")
            .iter()
            .all(|(w, _)| w != "phone"));
        assert!(found("一二三").is_empty());
    }

    #[test]
    fn bank_cards_must_pass_luhn() {
        assert_eq!(
            found("卡号6222021234567890128"),
            vec![("bank_card".into(), "6222021234567890128".into())]
        );
        assert_eq!(found("6222 0212 3456 7890 128")[0].0, "bank_card");
        assert!(found("卡号6222021234567890127").is_empty());
    }

    /// The check digits are computed by ISO 7064 MOD 11-2; these numbers are invented.
    #[test]
    fn id_numbers_need_their_check_digit_a_region_and_a_birth_date() {
        assert_eq!(
            found("身份证号11010519491231002X给你"),
            vec![("id_card".into(), "11010519491231002X".into())]
        );
        assert_eq!(
            found("证件 440524188001010014"),
            vec![("id_card".into(), "440524188001010014".into())]
        );
        // One check digit off, an impossible month, an unknown region: not IDs.
        assert!(found("11010519491231003X")
            .iter()
            .all(|(w, _)| w != "id_card"));
        assert!(found("110105194913310021")
            .iter()
            .all(|(w, _)| w != "id_card"));
        assert!(found("990105194912310021")
            .iter()
            .all(|(w, _)| w != "id_card"));
        // The legacy 15-digit form only where the text speaks of an ID.
        assert_eq!(found("老身份证 110105491231002")[0].0, "id_card");
        assert!(found("订单 110105491231002").is_empty());
        assert_eq!(mask("11010519491231002X"), "110***********002X");
    }

    #[test]
    fn emails_with_a_dot_and_a_letter_tld() {
        assert_eq!(
            found("发我邮箱 zhang.san+crm@mail.example.com 谢谢"),
            vec![("email".into(), "zhang.san+crm@mail.example.com".into())]
        );
        assert_eq!(found("lisi＠qq.com")[0].0, "email");
        for not in ["@所有人 开会", "a@b", "x@host.c", "价格@100.00", "我@你"] {
            assert!(found(not).is_empty(), "{not}");
        }
        assert_eq!(mask("邮箱 zhang@example.com"), "邮箱 z***@example.com");
    }

    #[test]
    fn masks_keep_what_a_manager_needs() {
        assert_eq!(mask("电话13812345678"), "电话138****5678");
        assert_eq!(mask("打138 1234 5678"), "打138 **** 5678");
        assert_eq!(
            mask("卡号6222021234567890128。"),
            "卡号6222 **** **** 0128。"
        );
        assert_eq!(mask("卡号4111111111111111"), "卡号4111 **** **** 1111");
        assert_eq!(mask("我的ＶＸ：wq_sales888"), "我的ＶＸ：wq*********");
        assert_eq!(mask("没有隐私"), "没有隐私");
    }

    #[test]
    fn handoff_ids_after_triggers() {
        assert_eq!(
            found("加我微信：abc_12345"),
            vec![("wechat_id".into(), "abc_12345".into())]
        );
        assert_eq!(
            found("我的ＶＸ：wq_sales888"),
            vec![("wechat_id".into(), "wq_sales888".into())]
        );
        assert_eq!(
            found("扣扣 123456789"),
            vec![("qq_id".into(), "123456789".into())]
        );
        assert_eq!(
            found("加 v 信是 Zhang_San01"),
            vec![("wechat_id".into(), "Zhang_San01".into())]
        );
        assert!(found("我们支持微信登录").is_empty());
        assert!(found("qqmusic会员").is_empty());
    }
}
