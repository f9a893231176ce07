//! Sales opportunity from buying cues (`cue,signal,weight`: need, price_ask, quote, bargain, quantity,
//! purchase, objection, closing) plus prices and quantities written as numbers. The stage is the furthest
//! one the cues reached; a session that ends on a strong objection after no purchase is lost.

use std::collections::HashMap;

use super::datafile::{error, records, weight};
use crate::agents::{Opportunity, Signal, Stage};
use crate::archive::{Message, Role};
use crate::sensitive::{Engine, Entry, Lexicon, LineError, MatchKind, Severity};

pub struct OpportunityCues {
    engine: Engine,
    weights: HashMap<String, f64>,
}

const SIGNALS: &[&str] = &[
    "need",
    "price_ask",
    "quote",
    "bargain",
    "quantity",
    "purchase",
    "objection",
    "closing",
];

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
        let mut signals: Vec<(Signal, f64, Role)> = Vec::new();
        for m in messages {
            let Some(text) = m.text.as_deref() else {
                continue;
            };
            let role = m.role();
            for hit in self.engine.scan(text) {
                if hit.kind != MatchKind::Lexicon {
                    continue;
                }
                let w = self.weights.get(&hit.word).copied().unwrap_or(1.0);
                signals.push((signal(&hit.category, &hit.matched_text, m), w, role));
            }
            if let Some(price) = find_price(text) {
                // A number with a currency from staff is a quote; from the customer it is a budget.
                let kind = if role == Role::Staff {
                    "quote"
                } else {
                    "price"
                };
                signals.push((signal(kind, &price, m), 1.0, role));
            }
            if let Some(q) = find_quantity(text) {
                signals.push((signal("quantity", &q, m), 0.8, role));
            }
        }
        let has_customer = messages.iter().any(|m| m.role() == Role::Customer);
        let mut stage = if has_customer {
            Stage::InitialContact
        } else {
            Stage::None
        };
        for (s, _, _) in &signals {
            stage = stage.max(Stage::reached_by(&s.kind));
        }
        let last_is_strong_objection = signals
            .last()
            .is_some_and(|(s, w, _)| s.kind == "objection" && *w >= 1.5);
        if stage < Stage::Won && last_is_strong_objection {
            stage = Stage::Lost;
        }
        let buying: f64 = signals
            .iter()
            .filter(|(s, _, _)| s.kind != "objection")
            .map(|(_, w, _)| w)
            .sum();
        let customer_interest = signals.iter().any(|(s, _, role)| {
            *role == Role::Customer
                && matches!(
                    s.kind.as_str(),
                    "need"
                        | "price_ask"
                        | "bargain"
                        | "quantity"
                        | "purchase"
                        | "closing"
                        | "price"
                )
        });
        let detected = customer_interest || stage >= Stage::Quoted && stage != Stage::Lost;
        let mut evidence: Vec<String> = Vec::new();
        for (s, _, _) in &signals {
            if !evidence.contains(&s.msgid) {
                evidence.push(s.msgid.clone());
            }
        }
        Opportunity {
            detected,
            stage,
            stage_label: stage.label().to_string(),
            score: ((1.0 - (-buying / 3.0).exp()) * 100.0).round() / 100.0,
            signals: signals.into_iter().map(|(s, _, _)| s).collect(),
            evidence,
            chunks: Vec::new(),
        }
    }
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
            "个",
            "套",
            "台",
            "件",
            "份",
            "箱",
            "人",
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
