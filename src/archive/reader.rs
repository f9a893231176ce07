//! Reads archive files line by line. A bad line is recorded with its file, line number and reason and
//! reading goes on; only a file that cannot be opened at all stops the run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::Serialize;

use super::Message;

/// A line that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectedLine {
    pub file: String,
    pub line: usize,
    pub error: String,
}

/// Everything read from a set of files: accepted messages (first occurrence of each msgid wins) and the
/// lines that were not.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub messages: Vec<Message>,
    pub rejected: Vec<RejectedLine>,
    /// Lines whose msgid was already read earlier in the same input.
    pub duplicates: usize,
}

/// Reads every file in order. Errors only when a file cannot be opened or read.
pub fn read_files(paths: &[PathBuf]) -> std::io::Result<ReadOutcome> {
    let mut reader = ArchiveReader::new(paths);
    let mut out = ReadOutcome::default();
    while let Some(batch) = reader.next_batch(usize::MAX)? {
        out.messages.extend(batch);
    }
    out.rejected = reader.rejected;
    out.duplicates = reader.duplicates;
    Ok(out)
}

/// Reads files a batch of messages at a time, so a run holds one batch, not the archive.
pub struct ArchiveReader {
    paths: Vec<PathBuf>,
    /// The file being read, its name and the last line number read.
    current: Option<(BufReader<std::fs::File>, String, usize)>,
    /// The msgids read so far, as 128-bit hashes: a million of them in 30 MB, not 90 as strings.
    seen: std::collections::HashSet<u128>,
    /// Two independently keyed hashers make one 128-bit hash; a collision (which would skip a
    /// message) has odds of about 10^-26 at a million msgids.
    hashers: (std::hash::RandomState, std::hash::RandomState),
    pub rejected: Vec<RejectedLine>,
    /// Lines whose msgid was already read earlier in the same input.
    pub duplicates: usize,
}

impl ArchiveReader {
    pub fn new(paths: &[PathBuf]) -> ArchiveReader {
        ArchiveReader {
            paths: paths.iter().rev().cloned().collect(),
            current: None,
            seen: Default::default(),
            hashers: Default::default(),
            rejected: Vec::new(),
            duplicates: 0,
        }
    }

    /// Up to `max` accepted messages, in file and line order; `None` once every file is read.
    pub fn next_batch(&mut self, max: usize) -> std::io::Result<Option<Vec<Message>>> {
        let mut batch = Vec::new();
        let mut buf = Vec::new();
        while batch.len() < max {
            let Some((reader, name, number)) = &mut self.current else {
                let Some(path) = self.paths.pop() else {
                    break;
                };
                let file = std::fs::File::open(&path).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
                })?;
                self.current = Some((BufReader::new(file), path.display().to_string(), 0));
                continue;
            };
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read {name}: {e}")))?;
            if n == 0 {
                self.current = None;
                continue;
            }
            *number += 1;
            let reject = |error: String| RejectedLine {
                file: name.clone(),
                line: *number,
                error,
            };
            let line = match std::str::from_utf8(&buf) {
                Ok(s) => s
                    .trim_end_matches(['\n', '\r'])
                    .trim_start_matches('\u{feff}'),
                Err(e) => {
                    self.rejected.push(reject(format!("not UTF-8: {e}")));
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match Message::parse_input(line) {
                Ok(m) if !self.seen.insert(key(&self.hashers, &m.msgid)) => self.duplicates += 1,
                Ok(m) => batch.push(m),
                Err(e) => self.rejected.push(reject(e.to_string())),
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

/// A msgid's 128-bit key in the set of those read.
fn key(hashers: &(std::hash::RandomState, std::hash::RandomState), msgid: &str) -> u128 {
    use std::hash::BuildHasher;
    (u128::from(hashers.0.hash_one(msgid)) << 64) | u128::from(hashers.1.hash_one(msgid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bad_lines_are_reported_with_numbers_and_good_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, r#"{{"msgid":"1","action":"send","from":"u","tolist":["wmX"],"msgtime":1700000000000,"msgtype":"text","text":{{"content":"hi"}}}}"#).unwrap();
        writeln!(f, "garbage").unwrap();
        writeln!(f).unwrap();
        writeln!(f, r#"{{"msgid":"2","action":"send","from":"u","tolist":["wmX"],"msgtype":"text","text":{{"content":"hi"}}}}"#).unwrap();
        f.write_all(b"\xff\xfe\n").unwrap();
        writeln!(f, r#"{{"msgid":"1","action":"send","from":"u","tolist":["wmX"],"msgtime":1700000000000,"msgtype":"text","text":{{"content":"hi"}}}}"#).unwrap();
        drop(f);
        let out = read_files(std::slice::from_ref(&path)).unwrap();
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.duplicates, 1);
        let lines: Vec<usize> = out.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4, 5]);
        assert!(out.rejected[1].error.contains("msgtime"));
        assert_eq!(out.rejected[0].file, path.display().to_string());
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = read_files(&[PathBuf::from("/nonexistent/x.jsonl")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.jsonl"));
    }
}
