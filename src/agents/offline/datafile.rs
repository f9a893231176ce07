//! The plain-text data files the offline analysers read (sentiment, opportunity cues, competitors,
//! stopwords): `#` comments, blank lines, comma-separated fields. A bad line is reported with its file and
//! line number and skipped, so one typo never throws away the rest of a tenant's list.

use crate::sensitive::LineError;

/// Non-comment, non-blank lines with their 1-based numbers, split on commas and trimmed.
pub fn records(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        Some((i + 1, line.split(',').map(str::trim).collect()))
    })
}

pub fn error(source: &str, line: usize, message: impl Into<String>) -> LineError {
    LineError {
        source: source.to_string(),
        line,
        message: message.into(),
    }
}

/// Parses a weight field; `default` when the field is absent.
pub fn weight(
    source: &str,
    line: usize,
    field: Option<&&str>,
    default: f64,
) -> Result<f64, LineError> {
    match field {
        None => Ok(default),
        Some(&"") => Ok(default),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|w| w.is_finite())
            .ok_or_else(|| error(source, line, format!("weight {s:?} is not a number"))),
    }
}
