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
        for m in messages {
            let Some(text) = m.text.as_deref() else {
                continue;
            };
            let role = m.role();
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
            }
            if let Some(q) = find_quantity(text) {
                push("quantity", &q, 0.8);
            }
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
            signals.retain(|(s, _)| s.kind == "objection");
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
}
