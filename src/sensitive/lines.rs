//! `huixi words scan`: one text a line in, the matches of each line out, as JSON or readable text.

use std::io::{BufRead, Write};

use serde::Serialize;

use super::Engine;

#[derive(Serialize)]
struct LineMatches<'a> {
    line: usize,
    matches: &'a [super::Match],
}

/// Scans every line; returns how many lines had at least one match.
pub fn scan_lines(
    engine: &Engine,
    input: impl BufRead,
    mut out: impl Write,
    json: bool,
) -> std::io::Result<usize> {
    let mut flagged = 0;
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        let matches = engine.scan(&line);
        if !matches.is_empty() {
            flagged += 1;
        }
        if json {
            serde_json::to_writer(
                &mut out,
                &LineMatches {
                    line: i + 1,
                    matches: &matches,
                },
            )?;
            writeln!(out)?;
        } else {
            for m in &matches {
                writeln!(
                    out,
                    "{}:{}-{} {} [{}/{}] {}",
                    i + 1,
                    m.start,
                    m.end,
                    m.word,
                    m.category,
                    m.severity.as_str(),
                    m.matched_text
                )?;
            }
        }
    }
    out.flush()?;
    Ok(flagged)
}
