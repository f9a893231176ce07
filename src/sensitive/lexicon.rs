//! Lexicon files: `word,category,severity[,pinyin]` per line, `#` comments, blank lines ignored, and a
//! whitelist of words whose matches are suppressed. A malformed line is reported with its source and
//! line number while every good line still loads: one typo must not disarm a tenant's whole filter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" | "低" => Ok(Severity::Low),
            "medium" | "mid" | "中" => Ok(Severity::Medium),
            "high" | "高" => Ok(Severity::High),
            other => Err(format!("severity {other:?} is not low, medium or high")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub word: String,
    pub category: String,
    pub severity: Severity,
    /// Also match the word's toneless pinyin written in Latin letters ("weixin" for 微信).
    pub pinyin: bool,
}

/// Most `&` groups a compound entry may have (the matcher keeps them as bits of a byte).
pub const MAX_GROUPS: usize = 8;

/// A compound entry, `A|B&C|D`: it matches a message that holds one of A, B *and* one of C, D, in any
/// order. It says what one word cannot — "AI" or "模型" addressed *and* told to "忽略" or "标记为" —
/// without listing every sentence that combines them. A group written `!E|F` must be absent: a
/// message holding E or F does not match ("保证&收益&!不保证|不承诺").
pub fn is_compound(word: &str) -> bool {
    word.contains('&')
}

/// The `&` groups of a compound entry: whether the group must be absent, and its alternatives.
pub fn compound_groups(word: &str) -> Vec<(bool, Vec<&str>)> {
    word.split('&')
        .map(|g| {
            let g = g.trim();
            let (absent, g) = match g.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, g),
            };
            (absent, g.split('|').map(str::trim).collect())
        })
        .collect()
}

/// Why a compound entry cannot match, if it cannot: an empty group or alternative, too many groups.
fn compound_problem(word: &str) -> Option<String> {
    if !is_compound(word) {
        return None;
    }
    let groups = compound_groups(word);
    if groups.len() > MAX_GROUPS {
        return Some(format!(
            "compound word {word:?} has {} groups joined by &, at most {MAX_GROUPS}",
            groups.len()
        ));
    }
    if groups.iter().all(|(absent, _)| *absent) {
        return Some(format!(
            "compound word {word:?} has only groups that must be absent (!): it would match nothing"
        ));
    }
    for (i, (_, group)) in groups.iter().enumerate() {
        if let Some(alt) = group
            .iter()
            .find(|a| super::normalize::normalize_word(a).is_empty())
        {
            return Some(format!(
                "compound word {word:?}: alternative {alt:?} of group {} has nothing to match",
                i + 1
            ));
        }
    }
    None
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lexicon {
    pub entries: Vec<Entry>,
    pub whitelist: Vec<String>,
}

/// A line that did not load, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub source: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.message)
    }
}

const STARTER: &str = include_str!("../../lexicons/sensitive.txt");
const STARTER_WHITELIST: &str = include_str!("../../lexicons/whitelist.txt");

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.trim().trim_start_matches('\u{feff}');
        (!l.is_empty() && !l.starts_with('#')).then_some((i + 1, l))
    })
}

impl Lexicon {
    /// The lexicon in its file format, which [`Lexicon::parse`] reads back.
    pub fn to_lines(&self) -> String {
        self.entries
            .iter()
            .map(|e| {
                let flag = if e.pinyin { ",pinyin" } else { "" };
                format!("{},{},{}{flag}\n", e.word, e.category, e.severity.as_str())
            })
            .collect()
    }

    pub fn parse(source: &str, text: &str) -> (Lexicon, Vec<LineError>) {
        let mut lex = Lexicon::default();
        let mut errors = Vec::new();
        for (line, content) in lines(text) {
            let error = |message: String| LineError {
                source: source.to_string(),
                line,
                message,
            };
            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            let (word, category, severity) = match fields.as_slice() {
                [w, c, s, ..] => (*w, *c, *s),
                _ => {
                    errors.push(error(format!(
                        "expected word,category,severity[,pinyin], got {content:?}"
                    )));
                    continue;
                }
            };
            if word.is_empty() {
                errors.push(error("empty word".into()));
                continue;
            }
            if let Some(problem) = compound_problem(word) {
                errors.push(error(problem));
                continue;
            }
            // The matcher compares normalized text: a word of punctuation alone would never match.
            if !is_compound(word) && super::normalize::normalize_word(word).is_empty() {
                errors.push(error(format!(
                    "word {word:?} has nothing left to match once punctuation and spaces are removed"
                )));
                continue;
            }
            if category.is_empty() {
                errors.push(error("empty category".into()));
                continue;
            }
            let severity = match severity.parse() {
                Ok(s) => s,
                Err(e) => {
                    errors.push(error(e));
                    continue;
                }
            };
            let pinyin = match fields.get(3).copied() {
                None | Some("") => false,
                Some("pinyin") => true,
                Some(other) => {
                    errors.push(error(format!(
                        "unknown flag {other:?} (the only flag is pinyin)"
                    )));
                    continue;
                }
            };
            lex.entries.push(Entry {
                word: word.to_string(),
                category: category.to_string(),
                severity,
                pinyin,
            });
        }
        (lex, errors)
    }

    pub fn parse_whitelist(source: &str, text: &str) -> (Vec<String>, Vec<LineError>) {
        let mut words = Vec::new();
        let mut errors = Vec::new();
        for (line, content) in lines(text) {
            let word = content.split(',').next().unwrap_or("").trim();
            if word.is_empty() {
                errors.push(LineError {
                    source: source.to_string(),
                    line,
                    message: "empty word".into(),
                });
            } else {
                words.push(word.to_string());
            }
        }
        (words, errors)
    }

    /// The shipped starter lexicon and whitelist (`lexicons/`), embedded in the binary.
    pub fn starter() -> Lexicon {
        let (mut lex, errors) = Lexicon::parse("lexicons/sensitive.txt", STARTER);
        let (whitelist, more) =
            Lexicon::parse_whitelist("lexicons/whitelist.txt", STARTER_WHITELIST);
        debug_assert!(errors.is_empty() && more.is_empty(), "{errors:?} {more:?}");
        lex.whitelist = whitelist;
        lex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_of_punctuation_alone_is_refused_with_its_line() {
        let (lex, errors) = Lexicon::parse("t.txt", "！！！,引流,high\n加微信,引流,high\n");
        assert_eq!(lex.entries.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 1);
        assert!(
            errors[0].message.contains("nothing left to match"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn malformed_lines_are_reported_and_the_rest_loads() {
        let text = "# comment\n\n加我微信,引流,high\n坏行\n,引流,high\n飞单,违规,urgent\n微信,引流,medium,pinyin\n投诉,客诉,low,loud\n";
        let (lex, errors) = Lexicon::parse("t.txt", text);
        assert_eq!(lex.entries.len(), 2);
        assert!(lex.entries[1].pinyin);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 8]);
        assert!(errors[2]
            .to_string()
            .starts_with("t.txt:6: severity \"urgent\""));
    }

    #[test]
    fn the_starter_lexicon_loads_cleanly() {
        let (_, errors) = Lexicon::parse("lexicons/sensitive.txt", STARTER);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(Lexicon::starter().entries.len() > 100);
        assert!(!Lexicon::starter().whitelist.is_empty());
    }
}
