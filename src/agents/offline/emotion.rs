//! Emotion from a sentiment lexicon: each sentiment word scores by its weight, scaled by a degree adverb
//! just before it (非常, 有点) and flipped by a negator within the three words before it (不, 没有).
//! Each message's score blends that lexicon reading with the trained model of [`EmotionModel`]; a
//! side's score is the mean of its clearly polar messages' scores, later messages weighing more, so
//! that neither a single "好的" nor a run of neutral questions turns a complaint.

use std::collections::{HashMap, HashSet};

use super::datafile::{error, records, weight};
use super::emotion_model::EmotionModel;
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
/// A side whose score is at least this far from zero is positive or negative rather than neutral.
const LABEL_THRESHOLD: f64 = 0.25;
/// A message scoring at least this far from zero is polar: it counts for the side's emotion, as
/// evidence, and (below zero) as a negative message.
const MESSAGE_THRESHOLD: f64 = 0.25;
/// How much more the last message weighs than the first.
const RECENCY: f64 = 2.0;
const MODEL_WEIGHT: f64 = 2.0;
const LEXICON_WEIGHT: f64 = 0.5;
/// The score of a message that raised an abuse or complaint alert, at most: clearly negative.
const HOSTILE_SCORE: f64 = -0.6;
/// A message the model reads as neutral counts for that much less: (1 − p_neutral)^gate.
const NEUTRAL_GATE: f64 = 2.0;

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

    /// Emotion of the messages one side sent; `None` when that side said nothing with text. Each
    /// message is read by the lexicon and by the model; the side's score weighs later messages more,
    /// because how a customer feels at the end of a talk is what a manager asks about.
    ///
    /// `hostile`: messages that raised a high-severity abuse or complaint alert. Those are negative
    /// whatever the model reads in them: "一群蠢货！我今天就打12315" has few words a review would use.
    pub fn side<'a>(
        &self,
        model: &EmotionModel,
        messages: impl Iterator<Item = &'a Message>,
        hostile: &HashSet<&str>,
    ) -> Option<Emotion> {
        let scored: Vec<(f64, &str)> = messages
            .filter_map(|m| {
                let text = m.text.as_deref()?;
                let mut score = self.message_score(model, text);
                if hostile.contains(m.msgid.as_str()) {
                    score = score.min(HOSTILE_SCORE);
                }
                Some((score, m.msgid.as_str()))
            })
            .collect();
        if scored.is_empty() {
            return None;
        }
        // The side's score is the recency-weighted mean of its clearly polar messages: neutral
        // messages (questions, logistics, "好的") neither dilute a complaint nor make one.
        let n = scored.len() as f64;
        let weight = |i: usize| 1.0 + RECENCY * i as f64 / n;
        let polar = || {
            scored
                .iter()
                .enumerate()
                .filter(|(_, (s, _))| s.abs() >= MESSAGE_THRESHOLD)
        };
        let w: f64 = polar().map(|(i, _)| weight(i)).sum();
        let score = if w > 0.0 {
            polar().map(|(i, (s, _))| weight(i) * s).sum::<f64>() / w
        } else {
            0.0
        };
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
                EmotionLabel::Positive => *s > MESSAGE_THRESHOLD,
                EmotionLabel::Negative => *s < -MESSAGE_THRESHOLD,
                EmotionLabel::Neutral => s.abs() > MESSAGE_THRESHOLD,
            })
            .collect();
        strongest.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
        Some(Emotion {
            label,
            score: (score * 100.0).round() / 100.0,
            messages: scored.len(),
            negative_messages: scored
                .iter()
                .filter(|(s, _)| *s < -MESSAGE_THRESHOLD)
                .count(),
            confidence: Some(confidence(
                score,
                scored.iter().map(|(s, _)| s.abs()).fold(0.0, f64::max),
            )),
            evidence: strongest
                .into_iter()
                .take(5)
                .map(|(_, id)| id.to_string())
                .collect(),
        })
    }

    /// One message, −1 … 1: the model's polarity, with the lexicon's reading added (it knows words the
    /// training sentences never used, and degree and negation over whole words).
    pub fn message_score(&self, model: &EmotionModel, text: &str) -> f64 {
        let simplified = fast2s::convert(text);
        let p = model.classify(&simplified);
        let lexicon = (self.score_text(&simplified) / 2.0).tanh();
        let gate = (1.0 - p.neutral).powf(NEUTRAL_GATE);
        gate * (MODEL_WEIGHT * p.polarity() + LEXICON_WEIGHT * lexicon)
            / (MODEL_WEIGHT + LEXICON_WEIGHT)
    }
}

/// A polar side is sure when its score is well past the threshold; a neutral one when no message came
/// near being polar. At the threshold either way it is a coin toss.
fn confidence(score: f64, strongest: f64) -> f64 {
    let sure = if score.abs() >= LABEL_THRESHOLD {
        (score.abs() - LABEL_THRESHOLD) / 0.5
    } else {
        1.0 - strongest / MESSAGE_THRESHOLD
    };
    ((0.5 + 0.5 * sure.clamp(0.0, 1.0)) * 100.0).round() / 100.0
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
