//! Sales opportunity from buying cues (`lexicons/opportunity.txt`: need, price_ask, requirement,
//! quote, bargain, purchase, won, lost, objection) plus prices and quantities written as numbers. The
//! stage is the furthest one the cues reached, unless the talk ends in 成交 or 战败; a chat with no
//! buying cue at all (service, after-sales, small talk) has no opportunity.

use std::collections::HashMap;

use super::datafile::{error, records, weight};
use crate::agents::{Opportunity, Signal, Stage, StageStep, StageTrack};
use crate::archive::{Message, Role};
use crate::sensitive::{Engine, Entry, Lexicon, LineError, MatchKind, Severity};

pub struct OpportunityCues {
    engine: Engine,
    weights: HashMap<String, f64>,
}

const SIGNALS: &[&str] = &[
    "need",
    "price_ask",
    "requirement",
    "quantity",
    "quote",
    "bargain",
    "purchase",
    "won",
    "lost",
    "objection",
    "ignore",
    // The name of `purchase` before offline@3, still read in a tenant's own file.
    "closing",
];

/// Signals that only mean something when the customer says them: staff asking "多少钱" or writing
/// "不需要了" says nothing of the customer's intent. Quotes, purchase steps and payment are anyone's.
fn customer_only(kind: &str) -> bool {
    matches!(
        kind,
        "need"
            | "price_ask"
            | "requirement"
            | "quantity"
            | "price"
            | "bargain"
            | "lost"
            | "objection"
    )
}

/// Words of a customer's after-sales talk: claims, repairs, returns, complaints about what they have.
const SERVICE: &[&str] = &[
    "理赔",
    "退保",
    "退款",
    "退费",
    "退货",
    "维修",
    "保修",
    "报修",
    "售后",
    "补发",
    "发错",
    "投诉",
    "坏了",
    "故障",
    "登不上",
    "没收到",
    "发票",
    "开票",
    "专票",
    "价保",
    "改签",
    "退卡",
    "退课",
    "退团",
    "批改",
    "核销",
    "定损",
    "赎回",
    "复诊",
    "集合",
    "上牌",
    "次品",
    "不合格",
    "补货",
    "余额",
    "改地址",
    "违章",
    "手续费",
    "重复扣",
    "质保",
    "回单",
    "对账",
    "能退",
    "退吗",
    "退多少",
    "什么时候到账",
    "什么时候结",
];

/// Words that put a payment or an order in the past, before the talk: after-sales is about it.
const PAST: &[&str] = &[
    "上个月",
    "上月",
    "上周",
    "去年",
    "之前",
    "当时",
    "那天",
    "上次",
    "前阵子",
];

/// A 战败 cue this strong ends a deal even in a talk with no buying cue before it ("这边就先不报了").
const STRONG_LOST: f64 = 2.5;

impl OpportunityCues {
    pub fn parse(source: &str, text: &str) -> (OpportunityCues, Vec<LineError>) {
        let mut entries = Vec::new();
        let mut weights = HashMap::new();
        let mut errors = Vec::new();
        for (line, fields) in records(text) {
            let (cue, signal) = match fields.as_slice() {
                [c, s, ..] if !c.is_empty() => (*c, *s),
                _ => {
                    errors.push(error(source, line, "expected cue,signal[,weight]"));
                    continue;
                }
            };
            if !SIGNALS.contains(&signal) {
                errors.push(error(
                    source,
                    line,
                    format!("signal {signal:?} is not one of {}", SIGNALS.join(", ")),
                ));
                continue;
            }
            match weight(source, line, fields.get(2), 1.0) {
                Ok(w) => {
                    weights.insert(cue.to_string(), w);
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
            let signal = if signal == "closing" {
                "purchase"
            } else {
                signal
            };
            entries.push(Entry {
                word: cue.to_string(),
                category: signal.to_string(),
                severity: Severity::Low,
                pinyin: false,
            });
        }
        let engine = Engine::build(&Lexicon {
            entries,
            whitelist: Vec::new(),
        });
        (OpportunityCues { engine, weights }, errors)
    }

    pub fn assess(&self, messages: &[Message]) -> Opportunity {
        let mut signals: Vec<(Signal, f64)> = Vec::new();
        let mut asked_price = false;
        for m in messages {
            let Some(text) = m.text.as_deref() else {
                continue;
            };
            let role = m.role();
            let before = signals.len();
            let mut push = |kind: &str, cue: &str, w: f64| {
                if role == Role::Customer || !customer_only(kind) {
                    signals.push((signal(kind, cue, m), w));
                }
            };
            for hit in self.engine.scan(text) {
                if hit.kind != MatchKind::Lexicon || hit.category == "ignore" {
                    continue;
                }
                let w = self.weights.get(&hit.word).copied().unwrap_or(1.0);
                push(&hit.category, &hit.matched_text, w);
            }
            if let Some(price) = find_price(text) {
                // A number with a currency from staff is a quote; from the customer it is a budget.
                let kind = if role == Role::Staff {
                    "quote"
                } else {
                    "price"
                };
                push(kind, &price, 1.0);
            } else if role == Role::Staff {
                // Staff rarely write the currency: "一共860", "每斤360", "3650一吨", "一万二";
                // after the customer asked what it costs, any amount in the answer is the price.
                let spans = amounts(text);
                let bare = bare_price(text, &spans)
                    .or_else(|| spans.first().filter(|_| asked_price).copied());
                if let Some((start, end)) = bare {
                    push("quote", &text[start..end], 1.0);
                }
            }
            if role == Role::Customer {
                if let Some(offer) = find_counter_offer(text) {
                    push("bargain", &offer, 1.0);
                }
                // After the cues of the same message: "新车也在他们那边提了" ends the deal even
                // though "提了" alone would be 成交.
                if let Some(cue) = bought_elsewhere(text) {
                    push("lost", cue, STRONG_LOST);
                }
            }
            if let Some(q) = find_quantity(text) {
                push("quantity", &q, 0.8);
            }
            asked_price |= signals[before..].iter().any(|(s, _)| s.kind == "price_ask");
        }
        let has_customer = messages.iter().any(|m| m.role() == Role::Customer);
        // A faint 战败 cue ("算了", "不用了") is a lost deal only where there was a deal: after a
        // buying cue. In a service chat it is just the end of the talk.
        let mut interest = false;
        signals.retain(|(s, w)| {
            let keep = s.kind != "lost" || interest || *w >= STRONG_LOST;
            interest |= !matches!(s.kind.as_str(), "lost" | "objection");
            keep
        });
        // An after-sales talk (a claim, a repair, a refund) is not a deal: "交了", "到账了" or "配置"
        // there are about the service. Only a cue of buying something makes it one.
        let service = messages.iter().any(|m| {
            m.role() == Role::Customer
                && m.text
                    .as_deref()
                    .is_some_and(|t| SERVICE.iter().any(|w| t.contains(w)))
        });
        let buys = signals.iter().any(|(s, _)| {
            matches!(
                s.kind.as_str(),
                "need" | "price_ask" | "bargain" | "purchase"
            )
        });
        if service && !buys {
            // A deal closed in the same talk still counts ("合同盖章了" before "发票开专票"); a
            // payment told as past ("上个月就付了") is what the service is about.
            let past: Vec<&str> = messages
                .iter()
                .filter(|m| {
                    m.text
                        .as_deref()
                        .is_some_and(|t| PAST.iter().any(|w| t.contains(w)))
                })
                .map(|m| m.msgid.as_str())
                .collect();
            signals.retain(|(s, w)| {
                s.kind == "objection"
                    || (s.kind == "won" && *w >= 3.0 && !past.contains(&s.msgid.as_str()))
            });
        }
        let (stage, moves) = if has_customer {
            stage_moves(&signals)
        } else {
            (Stage::None, Vec::new())
        };
        let buying: f64 = signals
            .iter()
            .filter(|(s, _)| !matches!(s.kind.as_str(), "objection" | "lost"))
            .map(|(_, w)| w)
            .sum();
        let mut evidence: Vec<String> = Vec::new();
        for (s, _) in &signals {
            if !evidence.contains(&s.msgid) {
                evidence.push(s.msgid.clone());
            }
        }
        let confidence = confidence(stage, &signals);
        Opportunity {
            detected: stage != Stage::None,
            stage,
            stage_label: stage.label().to_string(),
            score: ((1.0 - (-buying / 3.0).exp()) * 100.0).round() / 100.0,
            signals: signals.into_iter().map(|(s, _)| s).collect(),
            evidence,
            moves,
            confidence: Some(confidence),
            chunks: Vec::new(),
        }
    }
}

/// The stage and every move to it, each citing the message that made it.
fn stage_moves(signals: &[(Signal, f64)]) -> (Stage, Vec<StageStep>) {
    let mut moves: Vec<StageStep> = Vec::new();
    let mut track = StageTrack::default();
    for (s, _) in signals {
        track.push(&s.kind);
        let now = track.stage();
        if moves.last().map_or(now != Stage::None, |m| m.stage != now) {
            moves.push(StageStep {
                stage: now,
                msgid: s.msgid.clone(),
            });
        }
    }
    (track.stage(), moves)
}

/// Sure when the stage rests on strong cues or when nothing at all hints at a deal; unsure when one
/// faint cue decided it.
fn confidence(stage: Stage, signals: &[(Signal, f64)]) -> f64 {
    let behind: f64 = signals
        .iter()
        .filter(|(s, _)| Stage::reached_by(&s.kind) == stage)
        .map(|(_, w)| w)
        .sum();
    let c = if stage == Stage::None {
        if signals.is_empty() {
            0.9
        } else {
            0.6
        }
    } else {
        0.5 + 0.45 * (1.0 - (-behind / 1.5).exp())
    };
    (c * 100.0).round() / 100.0
}

fn signal(kind: &str, text: &str, m: &Message) -> Signal {
    Signal {
        kind: kind.to_string(),
        text: text.to_string(),
        msgid: m.msgid.clone(),
    }
}

/// A number followed by a currency unit or preceded by ¥: "980元", "¥1,200", "3.5万".
fn find_price(text: &str) -> Option<String> {
    find_number_with(text, &["元", "块", "万元", "万", "rmb", "RMB"], true)
}

/// Words just before a number that make it an amount of money: "一共860", "报价8500", "人均980",
/// "费用是一万二", "现在是4980".
const PRICE_BEFORE: &[&str] = &[
    "价",
    "共",
    "费",
    "人均",
    "只要",
    "仅需",
    "才",
    "现在是",
    "算您",
    "收您",
    "优惠到",
    "便宜到",
    "降到",
    "总额",
    "合计",
    "金额",
    "首付",
    "月供",
    "尾款",
];

/// Units after a number that make it a count, a time, a size or a share, not a price.
const NOT_MONEY_AFTER: &[&str] = &[
    "次", "节", "天", "晚", "人", "个", "周", "月", "年", "号", "点", "分", "岁", "期", "斤", "吨",
    "米", "颗", "把", "份", "盒", "套", "台", "日", "小时", "%", "折", "层", "楼", "公里", "km",
    "张", "件", "箱", "位", "家", "款", "条", "页", "秒", "度", "辆", "车", "平", "届", "级", "班",
    "课", "G", "g", "kg", "ml", "寸", "cm", "mm", "路", "单", "起", "以内", "以上", "以下", "多",
    "左右",
];

/// What a number followed by one of these is a price of: "3650一吨", "1200一位", "6000一年".
const PER_UNIT_AFTER: &[char] = &['一', '每', '/'];

/// An amount of money written by staff without a currency: the first of the [`amounts`] spans that
/// a price word stands before or that is priced per unit ("8500一车").
fn bare_price(text: &str, spans: &[(usize, usize)]) -> Option<(usize, usize)> {
    spans.iter().copied().find(|&(start, end)| {
        let before = &text[..start];
        // The last four characters before the number.
        let window = before
            .char_indices()
            .rev()
            .nth(3)
            .map_or(before, |(i, _)| &before[i..]);
        let priced_before =
            PRICE_BEFORE.iter().any(|w| window.contains(w)) || one_of_unit_before(before);
        let per_unit = text[end..]
            .chars()
            .next()
            .is_some_and(|a| PER_UNIT_AFTER.contains(&a));
        priced_before || per_unit
    })
}

/// Where else a customer can have bought it: another shop, a friend, themselves.
const ELSEWHERE: &[&str] = &[
    "别家",
    "那边",
    "他们那",
    "其他家",
    "另一家",
    "另外一家",
    "隔壁",
    "公立",
    "在银行",
    "银行那",
    "网上",
    "朋友那",
    "朋友家",
    "同学那",
    "自己找",
    "自己搭",
    "自己弄",
];
/// Having bought, booked, signed or chosen: the verb, then 了 within a few characters.
const GOT: &[char] = &[
    '买', '订', '定', '做', '办', '提', '装', '签', '报', '选', '找', '搬',
];

/// A customer telling they got it elsewhere: "种牙我还是去公立医院做了", "重疾险我在银行那边买了",
/// "旧车卖给二手车商了 新车也在他们那边提了". Not when they point at the company ("在你们那边买
/// 了", "我朋友买了你们的课").
fn bought_elsewhere(text: &str) -> Option<&'static str> {
    if YOURS.iter().any(|w| text.contains(w)) {
        return None;
    }
    let place = ELSEWHERE.iter().find(|w| text.contains(*w))?;
    let chars: Vec<char> = text.chars().collect();
    // "再少点我就定了" is a promise, not a purchase.
    let got = chars.iter().enumerate().any(|(i, c)| {
        GOT.contains(c)
            && chars[i + 1..].iter().take(3).any(|&n| n == '了')
            && !(i > 0 && chars[i - 1] == '就')
    });
    got.then_some(place)
}

/// A customer naming the company as the place: "在你们那边买了" is 成交 ("谢谢你们" is not a place).
const YOURS: &[&str] = &[
    "在你们",
    "你们的",
    "你们那",
    "你们这",
    "你们家",
    "你家",
    "找你们",
    "跟你们",
    "贵司",
    "贵公司",
    "您这",
];

/// Words that make a customer's number a counter-offer: "100斤能不能330", "860 800吧".
const BARGAIN_WITH_NUMBER: &[&str] = &[
    "能不能",
    "能到",
    "行不行",
    "行吗",
    "可以吗",
    "吧",
    "低于",
    "最多",
    "便宜",
];

/// A customer's counter-offer: a number that may be money and a word asking for it.
fn find_counter_offer(text: &str) -> Option<String> {
    if !BARGAIN_WITH_NUMBER.iter().any(|w| text.contains(w)) {
        return None;
    }
    // Arabic numbers only: "便宜一百多" tells a difference, not an offer.
    amounts(text)
        .into_iter()
        .find(|&(start, _)| text[start..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|(start, end)| text[start..end].to_string())
}

/// Spans of numbers that may be amounts of money: at least two digits (not a leading zero, at most
/// six before the point), or a Chinese numeral with 百, 千 or 万 ("两千八", "十二万八"); not glued to
/// a model name ("HRB400", "第3") and not followed by a unit of count, time or size.
fn amounts(text: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let arabic = c.is_ascii_digit();
        if !arabic && !is_chinese_digit(c) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < chars.len() {
            let d = chars[j].1;
            let more = if arabic {
                d.is_ascii_digit()
                    || (d == '.' && chars.get(j + 1).is_some_and(|n| n.1.is_ascii_digit()))
            } else {
                // Two digits in a row end a Chinese numeral: "两千八一个" is 两千八, then 一个.
                "十百千万".contains(d) || (is_chinese_digit(d) && !is_chinese_digit(chars[j - 1].1))
            };
            if !more {
                break;
            }
            j += 1;
        }
        let end = chars.get(j).map_or(text.len(), |(e, _)| *e);
        let number = &text[start..end];
        i = j;
        let big = if arabic {
            let digits = number.split('.').next().unwrap_or("");
            (2..=6).contains(&digits.len()) && !digits.starts_with('0')
        } else {
            number.chars().any(|d| "百千万".contains(d)) && number.chars().count() >= 2
        };
        let glued = text[..start]
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphanumeric() || "φ第+:：-#x×".contains(p));
        let after = &text[end..];
        if big && !glued && !NOT_MONEY_AFTER.iter().any(|u| after.starts_with(u)) {
            spans.push((start, end));
        }
    }
    spans
}

/// "一位2280", "每斤360", "单盒129", "一次480", "一个人2980", "两位5960": one, each or a count of a
/// unit just before the number (a count needs a measure word: "两位", not "两箱子").
fn one_of_unit_before(before: &str) -> bool {
    let mut back = before.chars().rev();
    let (Some(unit), Some(mut one)) = (back.next(), back.next()) else {
        return false;
    };
    if !('\u{4e00}'..='\u{9fff}').contains(&unit) || "共".contains(unit) {
        return false;
    }
    // "一个人", "每个月": the measure word between.
    if one == '个' {
        match back.next() {
            Some(c) => one = c,
            None => return false,
        }
    }
    "一每单".contains(one) || (is_chinese_digit(one) && "位人次套台份".contains(unit))
}

fn is_chinese_digit(c: char) -> bool {
    "一二两三四五六七八九十".contains(c)
}

/// A number followed by a unit of quantity: "50个账号", "20套", "100人".
fn find_quantity(text: &str) -> Option<String> {
    find_number_with(
        text,
        &[
            "个账号",
            "个人",
            "个员工",
            "个孩子",
            "个",
            "套",
            "台",
            "件",
            "份",
            "箱",
            "人",
            "位",
            "岁",
            "厘米",
            "平米",
            "课时",
            "账号",
            "席",
            "张",
            "把",
            "斤",
            "吨",
            "平",
            "度",
            "单",
            "辆",
            "间",
            "盒",
            "瓶",
        ],
        false,
    )
}

fn find_number_with(text: &str, units: &[&str], currency_prefix: bool) -> Option<String> {
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_ascii_digit() {
            continue;
        }
        let mut end = start + c.len_utf8();
        while let Some(&(i, d)) = chars.peek() {
            if d.is_ascii_digit() || d == '.' || d == ',' {
                end = i + d.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        let rest = &text[end..];
        if let Some(unit) = units.iter().find(|u| rest.starts_with(**u)) {
            return Some(text[start..end + unit.len()].to_string());
        }
        let prefixed = text[..start].ends_with('¥') || text[..start].ends_with('￥');
        if currency_prefix && prefixed {
            let begin = text[..start]
                .char_indices()
                .last()
                .map_or(start, |(i, _)| i);
            return Some(text[begin..end].to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_quantities_need_units() {
        assert_eq!(find_price("每个账号每年980元").as_deref(), Some("980元"));
        assert_eq!(find_price("打完折¥1,200").as_deref(), Some("¥1,200"));
        assert_eq!(find_price("我们有50个人"), None);
        assert_eq!(find_quantity("我们要50个账号").as_deref(), Some("50个账号"));
        assert_eq!(find_quantity("2026年"), None);
    }

    #[test]
    fn buying_elsewhere_is_told_by_a_place_and_a_verb_done() {
        let cases = [
            ("种牙我还是去公立医院做了 谢谢你们哈", Some("公立")),
            ("重疾险我在银行那边买了", Some("那边")),
            ("重疾险在银行买了", Some("在银行")),
            ("旧车卖给二手车商了 新车也在他们那边提了", Some("那边")),
            ("在你们那边买了两台", None),
            ("我朋友买了你们的课，推荐我来的", None),
            ("银行卡已经办好了", None),
            ("我和朋友商量定了，就报这个班", None),
            ("朋友推荐的 说你家的茶不错", None),
            ("我朋友也想买", None),
            ("那边怎么样", None),
            ("隔壁琴行才3800，再少点我就定了", None),
        ];
        for (text, want) in cases {
            assert_eq!(bought_elsewhere(text), want, "{text}");
        }
    }

    #[test]
    fn staff_prices_need_no_currency_but_a_price_word() {
        let prices = [
            ("原价5400，早鸟价4980", Some("5400")),
            ("报价8500一车，时效3天", Some("8500")),
            ("今天的出厂价3650一吨", Some("3650")),
            ("每斤360，50斤起", Some("360")),
            ("一位2280，两位4560", Some("2280")),
            ("方案费用一万二，分三次付", Some("一万二")),
            ("标准版一年两千八一个坐席", Some("两千八")),
            ("老师加场地一次1200，按月结", Some("1200")),
            ("一个人2980，两位5960", Some("2980")),
            ("按您说的套餐，两位5960", Some("5960")),
            ("两箱100", None),
            ("一月15号发货", None),
            ("早上6点半，人民广场地铁3号口", None),
            ("下周三下午3点可以吗", None),
            ("一共12次课，每周2次", None),
            ("型号HRB400", None),
            ("2026年的新款", None),
        ];
        for (text, want) in prices {
            let got = bare_price(text, &amounts(text)).map(|(a, b)| &text[a..b]);
            assert_eq!(got, want, "{text}");
        }
        let offers = [
            ("100斤能不能330", Some("330")),
            ("860 800吧", Some("860")),
            ("周六9点吧", None),
            ("10号可以吗", None),
        ];
        for (text, want) in offers {
            assert_eq!(find_counter_offer(text).as_deref(), want, "{text}");
        }
    }
}
