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
    mut input: impl BufRead,
    mut out: impl Write,
    json: bool,
) -> std::io::Result<usize> {
    let mut flagged = 0;
    let mut buf = Vec::new();
    for i in 0.. {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        // A line that is not UTF-8 is scanned with its bad bytes replaced, and said so with its
        // number: one bad line does not end the scan of the rest.
        let line = match std::str::from_utf8(&buf) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(e) => {
                eprintln!(
                    "warning: line {}: not UTF-8 ({e}); invalid bytes replaced",
                    i + 1
                );
                String::from_utf8_lossy(&buf)
            }
        };
        let line = line.trim_end_matches(['\n', '\r']);
        let matches = engine.scan(line);
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
