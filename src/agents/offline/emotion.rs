//! Emotion from a sentiment lexicon: each sentiment word scores by its weight, scaled by a degree adverb
//! just before it (非常, 有点) and flipped by a negator within the three words before it (不, 没有).
//! A side's score is Σs / (Σ|s| + 1): bounded in (−1, 1), and one strong word outweighs many faint ones
//! without a single "好的" turning a complaint positive.

use std::collections::HashMap;

use super::datafile::{error, records, weight};
use super::text::{is_separator, words};
use crate::agents::{Emotion, EmotionLabel};
use crate::archive::Message;
use crate::sensitive::LineError;

pub struct SentimentLexicon {
    polarity: HashMap<String, f64>,
    negators: HashMap<String, ()>,
    degrees: HashMap<String, f64>,
}

/// How many words back a negator still applies.
const NEGATION_WINDOW: usize = 3;
/// |score| at or above this is positive/negative rather than neutral.
const LABEL_THRESHOLD: f64 = 0.2;

impl SentimentLexicon {
    pub fn parse(source: &str, text: &str) -> (SentimentLexicon, Vec<LineError>) {
        let mut lex = SentimentLexicon {
            polarity: HashMap::new(),
            negators: HashMap::new(),
            degrees: HashMap::new(),
        };
        let mut errors = Vec::new();
        for (line, fields) in records(text) {
            let (word, kind) = match fields.as_slice() {
                [w, k, ..] if !w.is_empty() => (w.to_string(), *k),
                _ => {
                    errors.push(error(source, line, "expected word,type[,weight]"));
                    continue;
                }
            };
            let w = match weight(source, line, fields.get(2), 1.0) {
                Ok(w) => w,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            match kind {
                "pos" => {
                    lex.polarity.insert(word, w.abs());
                }
                "neg" => {
                    lex.polarity.insert(word, -w.abs());
                }
                "negator" => {
                    lex.negators.insert(word, ());
                }
                "degree" => {
                    lex.degrees.insert(word, w);
                }
                other => errors.push(error(
                    source,
                    line,
                    format!("type {other:?} is not pos, neg, negator or degree"),
                )),
            }
        }
        (lex, errors)
    }

    /// Sentiment of one text: positive above zero, negative below.
    pub fn score_text(&self, text: &str) -> f64 {
        let mut total = 0.0;
        let mut degree = 1.0;
        let mut negated_at: Option<usize> = None;
        for (i, word) in words(text).into_iter().enumerate() {
            if is_separator(word) {
                // A clause boundary ends the reach of a negator or a degree adverb.
                degree = 1.0;
                negated_at = None;
                continue;
            }
            if self.negators.contains_key(word) {
                negated_at = Some(i);
                continue;
            }
            if let Some(d) = self.degrees.get(word) {
                degree = *d;
                continue;
            }
            if let Some(p) = self.polarity.get(word) {
                let negated = negated_at.is_some_and(|at| i - at <= NEGATION_WINDOW);
                // "不好" is bad, but "不差" is only mildly good: negation flips and dampens.
                let value = if negated { -p * 0.8 } else { *p };
                total += value * degree;
                degree = 1.0;
                negated_at = None;
            }
        }
        total
    }

    /// Emotion of the messages one side sent; `None` when that side said nothing with text.
    pub fn side<'a>(&self, messages: impl Iterator<Item = &'a Message>) -> Option<Emotion> {
        let scored: Vec<(f64, &str)> = messages
            .filter_map(|m| {
                m.text
                    .as_deref()
                    .map(|t| (self.score_text(t), m.msgid.as_str()))
            })
            .collect();
        if scored.is_empty() {
            return None;
        }
        let sum: f64 = scored.iter().map(|(s, _)| s).sum();
        let abs: f64 = scored.iter().map(|(s, _)| s.abs()).sum();
        let score = sum / (abs + 1.0);
        let label = if score >= LABEL_THRESHOLD {
            EmotionLabel::Positive
        } else if score <= -LABEL_THRESHOLD {
            EmotionLabel::Negative
        } else {
            EmotionLabel::Neutral
        };
        // Evidence: the strongest messages pulling the way the label points (both ways when neutral).
        let mut strongest: Vec<&(f64, &str)> = scored
            .iter()
            .filter(|(s, _)| match label {
                EmotionLabel::Positive => *s > 0.0,
                EmotionLabel::Negative => *s < 0.0,
                EmotionLabel::Neutral => *s != 0.0,
            })
            .collect();
        strongest.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        Some(Emotion {
            label,
            score: (score * 100.0).round() / 100.0,
            messages: scored.len(),
            evidence: strongest
                .into_iter()
                .take(5)
                .map(|(_, id)| id.to_string())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lexicon() -> SentimentLexicon {
        let (lex, errors) = SentimentLexicon::parse(
            "test",
            "# t\n满意,pos,2\n失望,neg,2\n好,pos,1\n不,negator\n没有,negator\n非常,degree,2\n有点,degree,0.5\nbad line\n好,pos,x\n",
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 9);
        assert_eq!(errors[1].line, 10);
        lex
    }

    #[test]
    fn negation_flips_and_degree_scales() {
        let lex = lexicon();
        assert!(lex.score_text("我很满意") > 0.0);
        assert!(lex.score_text("我不满意") < 0.0);
        assert!(lex.score_text("非常满意") > lex.score_text("满意"));
        assert!(lex.score_text("有点失望") > lex.score_text("失望"));
        assert!(lex.score_text("没有让我失望") > 0.0);
    }

    #[test]
    fn negation_stops_at_a_clause_boundary() {
        let lex = lexicon();
        assert!(lex.score_text("不是这个，满意") > 0.0);
    }
}
