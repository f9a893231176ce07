//! The trained half of offline emotion: a character 1–3-gram logistic regression over three classes
//! (positive, negative, neutral), trained by `scripts/train_emotion.py` on the hand-labelled sentences
//! of `lexicons/emotion/train_*.tsv` and shipped as `lexicons/emotion/model.tsv`.
//!
//! Characters rather than words because jieba splits the informal text of reviews and chat badly
//! ("绝绝子", "踩雷", typos), and n-grams of characters catch negation ("不好", "没问题") and the
//! implicit judgements that no lexicon lists ("下次还来", "等了两个小时"). [`normalize`] and
//! [`grams`] must stay in step with `normalize()` and `features()` of the training script.

use std::collections::{HashMap, HashSet};

use crate::sensitive::LineError;

use super::datafile::error;

/// Class probabilities of one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probabilities {
    pub positive: f64,
    pub negative: f64,
    pub neutral: f64,
}

impl Probabilities {
    /// Positive minus negative: −1 … 1.
    pub fn polarity(&self) -> f64 {
        self.positive - self.negative
    }
}

pub struct EmotionModel {
    bias: [f32; 3],
    weights: HashMap<Box<str>, [f32; 3]>,
}

impl EmotionModel {
    /// Reads the model file: comment lines, then `<bias>` with the three biases, then one line per
    /// feature. Lines after the header are never comments: `#` is a character like any other there.
    pub fn parse(source: &str, text: &str) -> Result<EmotionModel, LineError> {
        let mut lines = text
            .lines()
            .enumerate()
            .skip_while(|(_, l)| l.starts_with('#') || l.trim().is_empty());
        let (n, first) = lines
            .next()
            .ok_or_else(|| error(source, 1, "no <bias> line"))?;
        let bias = match row(first) {
            Some(("<bias>", w)) => w,
            _ => return Err(error(source, n + 1, "expected <bias> and three weights")),
        };
        let mut weights = HashMap::new();
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            let (feature, w) = row(line).ok_or_else(|| {
                error(
                    source,
                    n + 1,
                    "expected feature and three weights, tab-separated",
                )
            })?;
            weights.insert(feature.into(), w);
        }
        Ok(EmotionModel { bias, weights })
    }

    /// A model that reads nothing (every text neutral): what is left if the shipped file is broken.
    pub fn empty() -> EmotionModel {
        EmotionModel {
            bias: [0.0, 0.0, 10.0],
            weights: HashMap::new(),
        }
    }

    pub fn classify(&self, text: &str) -> Probabilities {
        let norm = normalize(text);
        let mut z = self.bias.map(f64::from);
        let mut seen: HashSet<&str> = HashSet::new();
        for gram in grams(&norm) {
            // Each feature counts once per text, as in training.
            if !seen.insert(gram) {
                continue;
            }
            if let Some(w) = self.weights.get(gram) {
                for (z, w) in z.iter_mut().zip(w) {
                    *z += f64::from(*w);
                }
            }
        }
        let max = z.iter().copied().fold(f64::MIN, f64::max);
        let e = z.map(|v| (v - max).exp());
        let sum: f64 = e.iter().sum();
        Probabilities {
            positive: e[0] / sum,
            negative: e[1] / sum,
            neutral: e[2] / sum,
        }
    }
}

fn row(line: &str) -> Option<(&str, [f32; 3])> {
    let mut fields = line.split('\t');
    let feature = fields.next()?;
    let mut w = [0f32; 3];
    for slot in &mut w {
        *slot = fields
            .next()?
            .parse()
            .ok()
            .filter(|v: &f32| v.is_finite())?;
    }
    fields.next().is_none().then_some((feature, w))
}

/// Full-width ASCII to half-width, ASCII lower case, every digit 0, white space folded to one space;
/// wrapped in `^` … `$` so that n-grams at the ends are features of their own.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('^');
    let mut space = false;
    for c in text.trim().chars() {
        let c = match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        };
        let c = if c.is_ascii_digit() {
            '0'
        } else {
            c.to_ascii_lowercase()
        };
        if c.is_whitespace() {
            if !space {
                out.push(' ');
            }
            space = true;
            continue;
        }
        space = false;
        out.push(c);
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('$');
    out
}

/// The 1-, 2- and 3-grams of characters of a normalized text, as slices of it.
fn grams(norm: &str) -> impl Iterator<Item = &str> {
    let bounds: Vec<usize> = norm
        .char_indices()
        .map(|(i, _)| i)
        .chain([norm.len()])
        .collect();
    (1..=3).flat_map(move |n| {
        let bounds = bounds.clone();
        (0..bounds.len().saturating_sub(n))
            .map(move |i| &norm[bounds[i]..bounds[i + n]])
            .filter(|g| !g.chars().all(char::is_whitespace) && *g != "^" && *g != "$")
            .collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_those_the_training_script_makes() {
        // What scripts/train_emotion.py's features() gives for the same text.
        assert_eq!(normalize(" ＡＢ 12　好 "), "^ab 00 好$");
        let mut g: Vec<&str> = grams("^不好$").collect();
        g.sort();
        assert_eq!(g, ["^不", "^不好", "不", "不好", "不好$", "好", "好$"]);
    }

    #[test]
    fn a_bad_line_is_named() {
        let e = EmotionModel::parse("m.tsv", "# c\n<bias>\t0\t0\t0\n好\t1\t0\n").err();
        assert_eq!(e.map(|e| e.line), Some(3));
        let m = EmotionModel::parse("m.tsv", "# c\n<bias>\t0\t0\t0\n#好\t1\t-1\t0\n").unwrap();
        assert!(m.classify("#好").positive > 0.5);
    }
}
