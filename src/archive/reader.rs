//! Reads archive files line by line. A bad line is recorded with its file, line number and reason and
//! reading goes on; only a file that cannot be opened at all stops the run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use serde::Serialize;

use super::Message;

/// A line that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RejectedLine {
    pub file: String,
    pub line: usize,
    pub error: String,
}

/// Rejected lines a run keeps one by one; beyond them, a count. A million bad lines are a broken
/// export, and the first thousand say why as well as all of them would.
pub const REJECTED_KEPT: usize = 1_000;
/// The reason of a rejected line is cut to this many characters: parse errors quote the value,
/// and the value may be megabytes.
const REASON_CHARS: usize = 300;
/// Longer lines are rejected without being held: no WeCom message comes near it, and a line is
/// otherwise read whole into memory before it can be judged.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Everything read from a set of files: accepted messages (first occurrence of each msgid wins) and the
/// lines that were not.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    pub messages: Vec<Message>,
    pub rejected: Vec<RejectedLine>,
    /// Rejected lines beyond the first [`REJECTED_KEPT`], counted only.
    pub rejected_beyond: usize,
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
    out.rejected_beyond = reader.rejected_beyond;
    out.duplicates = reader.duplicates;
    Ok(out)
}

/// Where lines come from: archive files, or a body the ingest API received (read with the same
/// checks, so a line means the same wherever it arrives).
enum Source {
    File(PathBuf),
    Bytes(String, Vec<u8>),
}

/// Reads files a batch of messages at a time, so a run holds one batch, not the archive.
pub struct ArchiveReader {
    /// Still to read, last first.
    sources: Vec<Source>,
    /// The source being read, its name and the last line number read.
    current: Option<(Box<dyn BufRead + Send>, std::sync::Arc<str>, usize)>,
    /// The msgids read so far, as 128-bit hashes, each with a hash of its line: a million of them in
    /// about 40 MB, not 90 as strings, and enough to tell a repeat from a different message reusing
    /// a msgid.
    seen: std::collections::HashMap<u128, u64>,
    /// Two independently keyed hashers make one 128-bit hash; a collision (which would skip a
    /// message) has odds of about 10^-26 at a million msgids.
    hashers: (std::hash::RandomState, std::hash::RandomState),
    pub rejected: Vec<RejectedLine>,
    /// Rejected lines beyond the first [`REJECTED_KEPT`], counted only.
    pub rejected_beyond: usize,
    /// Lines whose msgid was already read earlier in the same input.
    pub duplicates: usize,
    /// The line of each accepted message, in order, when reading a body (`from_bytes`): an answer
    /// about a message names its line. Files are not tracked: a run may read millions of lines.
    pub lines: Option<Vec<usize>>,
    /// Where each message of the last batch was read, so that a message the store refuses later
    /// (its msgid kept earlier with different content) is reported by file and line too.
    batch_at: Vec<(std::sync::Arc<str>, usize)>,
    /// Each source opened so far, by name, with the messages accepted from it.
    pub accepted: Vec<(std::sync::Arc<str>, u64)>,
}

fn reject(
    rejected: &mut Vec<RejectedLine>,
    beyond: &mut usize,
    file: &str,
    line: usize,
    error: String,
) {
    if rejected.len() >= REJECTED_KEPT {
        *beyond += 1;
        return;
    }
    let error = if error.chars().count() > REASON_CHARS {
        let cut: String = error.chars().take(REASON_CHARS).collect();
        format!("{cut}…")
    } else {
        error
    };
    rejected.push(RejectedLine {
        file: file.to_string(),
        line,
        error,
    });
}

/// Reads one line into `buf`, up to [`MAX_LINE_BYTES`]; the rest of a longer line is read past and
/// dropped. Returns the bytes the line had (0 at the end of the file) and whether it was cut.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let mut total = 0;
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((total, total > MAX_LINE_BYTES));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = (MAX_LINE_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        total += n;
        reader.consume(n);
        if done {
            return Ok((total, total > MAX_LINE_BYTES + 1));
        }
    }
}

impl ArchiveReader {
    pub fn new(paths: &[PathBuf]) -> ArchiveReader {
        ArchiveReader::of(paths.iter().rev().cloned().map(Source::File).collect())
    }

    /// Reads NDJSON held in memory (a request body), naming it `name` in rejected lines.
    pub fn from_bytes(name: &str, body: Vec<u8>) -> ArchiveReader {
        let mut reader = ArchiveReader::of(vec![Source::Bytes(name.to_string(), body)]);
        reader.lines = Some(Vec::new());
        reader
    }

    fn of(sources: Vec<Source>) -> ArchiveReader {
        ArchiveReader {
            sources,
            current: None,
            seen: Default::default(),
            hashers: Default::default(),
            rejected: Vec::new(),
            rejected_beyond: 0,
            duplicates: 0,
            lines: None,
            batch_at: Vec::new(),
            accepted: Vec::new(),
        }
    }

    /// Up to `max` accepted messages, in file and line order; `None` once every file is read.
    pub fn next_batch(&mut self, max: usize) -> std::io::Result<Option<Vec<Message>>> {
        let mut batch = Vec::new();
        let mut buf = Vec::new();
        self.batch_at.clear();
        while batch.len() < max {
            let Some((reader, name, number)) = &mut self.current else {
                let Some(source) = self.sources.pop() else {
                    break;
                };
                let opened: (Box<dyn BufRead + Send>, std::sync::Arc<str>, usize) = match source {
                    Source::File(path) => {
                        let file = std::fs::File::open(&path).map_err(|e| {
                            let path = path.display();
                            std::io::Error::new(e.kind(), format!("cannot open {path}: {e}"))
                        })?;
                        (
                            Box::new(BufReader::new(file)),
                            path.display().to_string().into(),
                            0,
                        )
                    }
                    Source::Bytes(name, body) => {
                        (Box::new(std::io::Cursor::new(body)), name.into(), 0)
                    }
                };
                self.accepted.push((opened.1.clone(), 0));
                self.current = Some(opened);
                continue;
            };
            buf.clear();
            let (n, cut) = read_line(reader, &mut buf)
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot read {name}: {e}")))?;
            if n == 0 {
                self.current = None;
                continue;
            }
            *number += 1;
            let (file, line_no) = (&**name, *number);
            let (rejected, beyond) = (&mut self.rejected, &mut self.rejected_beyond);
            if cut {
                let why = format!(
                    "line of {n} bytes, longer than the {MAX_LINE_BYTES} a message may have"
                );
                reject(rejected, beyond, file, line_no, why);
                continue;
            }
            let line = match std::str::from_utf8(&buf) {
                Ok(s) => s
                    .trim_end_matches(['\n', '\r'])
                    .trim_start_matches('\u{feff}'),
                Err(e) => {
                    reject(rejected, beyond, file, line_no, format!("not UTF-8: {e}"));
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            match Message::parse_input(line) {
                Ok(m) => {
                    use std::hash::BuildHasher;
                    let content = self.hashers.0.hash_one(m.raw.as_str());
                    match self.seen.entry(key(&self.hashers, &m.msgid)) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(content);
                            batch.push(m);
                            self.batch_at.push((name.clone(), line_no));
                            if let Some((_, n)) = self.accepted.last_mut() {
                                *n += 1;
                            }
                            if let Some(lines) = &mut self.lines {
                                lines.push(line_no);
                            }
                        }
                        std::collections::hash_map::Entry::Occupied(o) if *o.get() == content => {
                            self.duplicates += 1;
                        }
                        std::collections::hash_map::Entry::Occupied(_) => {
                            let why = format!(
                                "msgid {:?} was read earlier with different content; the first is kept",
                                m.msgid
                            );
                            reject(rejected, beyond, file, line_no, why);
                        }
                    }
                }
                Err(e) => reject(rejected, beyond, file, line_no, e.to_string()),
            }
        }
        Ok((!batch.is_empty()).then_some(batch))
    }
}

impl ArchiveReader {
    /// Frees what the reader keeps to tell repeats apart (about 50 MB at a million msgids), once the
    /// input is read: the analysis that follows has no use for it.
    pub fn forget_seen(&mut self) {
        self.seen = Default::default();
    }

    /// Where each message of the last batch was read, taken: a batch stored while the next is read
    /// keeps its own, for [`ArchiveReader::reject_read`].
    pub fn take_batch_at(&mut self) -> Vec<(std::sync::Arc<str>, usize)> {
        std::mem::take(&mut self.batch_at)
    }

    /// Rejects the `index`th message of a batch after the fact, naming its file and line (`at`, the
    /// batch's [`ArchiveReader::take_batch_at`]): the store refused it (its msgid was kept by an
    /// earlier run with different content).
    pub fn reject_read(
        &mut self,
        at: &[(std::sync::Arc<str>, usize)],
        index: usize,
        error: String,
    ) {
        if let Some((file, line)) = at.get(index).cloned() {
            reject(
                &mut self.rejected,
                &mut self.rejected_beyond,
                &file,
                line,
                error,
            );
        }
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

    fn text_line(id: &str, content: &str) -> String {
        format!(
            r#"{{"msgid":"{id}","action":"send","from":"u","tolist":["wmX"],"msgtime":1700000000000,"msgtype":"text","text":{{"content":"{content}"}}}}"#
        )
    }

    #[test]
    fn a_line_too_long_is_rejected_without_being_held_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(
            f,
            "{}",
            text_line("1", &"长".repeat(MAX_LINE_BYTES / 3 + 10))
        )
        .unwrap();
        writeln!(f, "{}", text_line("2", "ok")).unwrap();
        drop(f);
        let out = read_files(&[path]).unwrap();
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.messages[0].msgid, "2");
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].line, 1);
        assert!(
            out.rejected[0].error.contains("longer than"),
            "{:?}",
            out.rejected
        );
    }

    #[test]
    fn rejected_lines_are_kept_up_to_a_bound_with_short_reasons_and_counted_beyond() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        // A bad line whose parse error would quote a 100 KB value.
        writeln!(f, r#"{{"msgid": 5, "x": "{}"}}"#, "x".repeat(100_000)).unwrap();
        for _ in 0..REJECTED_KEPT + 50 {
            writeln!(f, "{{}}").unwrap();
        }
        drop(f);
        let out = read_files(&[path]).unwrap();
        assert_eq!(out.rejected.len(), REJECTED_KEPT);
        assert_eq!(out.rejected_beyond, 51);
        assert!(out
            .rejected
            .iter()
            .all(|r| r.error.chars().count() <= REASON_CHARS + 1));
    }

    #[test]
    fn a_msgid_reused_with_different_content_is_rejected_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut f = std::fs::File::create(&path).unwrap();
        writeln!(f, "{}", text_line("m1", "first")).unwrap();
        writeln!(f, "{}", text_line("m1", "first")).unwrap();
        writeln!(f, "{}", text_line("m1", "changed")).unwrap();
        drop(f);
        let out = read_files(&[path]).unwrap();
        assert_eq!(out.messages.len(), 1);
        assert_eq!(out.duplicates, 1, "the identical repeat is a duplicate");
        assert_eq!(out.rejected.len(), 1);
        assert_eq!(out.rejected[0].line, 3);
        assert!(out.rejected[0].error.contains("different content"));
    }
}
