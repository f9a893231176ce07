//! Tenant documents into chunks: Markdown split at headings, then paragraphs; plain text at paragraphs;
//! CSV one row a record (as `header: value` lines); JSON lines one object a record. Paragraphs are packed
//! into chunks of at most `max_tokens` (tiktoken), and each chunk starts with the last paragraph of the
//! one before, so a fact that straddles a boundary is whole in one of them.

use std::path::Path;

use crate::llm::count_tokens;

/// The tokenizer the limit is counted in; chunks are sized for prompts, whatever the model.
const TOKENIZER_MODEL: &str = "gpt-4o-mini";

#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// 0-based position of the chunk in its file.
    pub position: usize,
    /// The heading path the chunk sits under (Markdown), for context in prompts and results.
    pub heading: String,
    pub text: String,
}

/// Chunks of one file's text; `path` decides the format by its extension.
pub fn chunk_file(path: &Path, text: &str, max_tokens: usize) -> Result<Vec<Chunk>, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    // A record (CSV row, JSON line) is a chunk of its own: a price or an FAQ answer is cited alone.
    let records = match ext.as_str() {
        "csv" => Some(csv_records(text)?),
        "jsonl" | "ndjson" => Some(json_records(text)?),
        _ => None,
    };
    if let Some(records) = records {
        let mut chunks = Vec::new();
        for r in &records {
            emit("", &[r.as_str()], &mut chunks);
        }
        return Ok(chunks);
    }
    let sections: Vec<(String, Vec<String>)> = match ext.as_str() {
        "md" | "markdown" => markdown_sections(text),
        "txt" | "text" => vec![(String::new(), paragraphs(text))],
        other => {
            return Err(format!(
                "unsupported file type {other:?} (md, txt, csv, jsonl)"
            ))
        }
    };
    let mut chunks = Vec::new();
    for (heading, paras) in sections {
        pack(&heading, &paras, max_tokens, &mut chunks);
    }
    Ok(chunks)
}

fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn markdown_sections(text: &str) -> Vec<(String, Vec<String>)> {
    let mut sections = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut body = String::new();
    let flush =
        |path: &[(usize, String)], body: &mut String, out: &mut Vec<(String, Vec<String>)>| {
            let paras = paragraphs(body);
            if !paras.is_empty() {
                let heading = path
                    .iter()
                    .map(|(_, h)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(" > ");
                out.push((heading, paras));
            }
            body.clear();
        };
    for line in text.lines() {
        let level = line.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && line[level..].starts_with(' ') {
            flush(&path, &mut body, &mut sections);
            path.retain(|(l, _)| *l < level);
            path.push((level, line[level..].trim().to_string()));
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    flush(&path, &mut body, &mut sections);
    sections
}

fn csv_records(text: &str) -> Result<Vec<String>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = split_csv(lines.next().ok_or("empty CSV: no header")?);
    lines
        .enumerate()
        .map(|(i, l)| {
            let cells = split_csv(l);
            if cells.len() != header.len() {
                return Err(format!(
                    "line {}: {} fields, the header has {}",
                    i + 2,
                    cells.len(),
                    header.len()
                ));
            }
            Ok(header
                .iter()
                .zip(cells)
                .map(|(h, c)| format!("{h}: {c}"))
                .collect::<Vec<_>>()
                .join("\n"))
        })
        .collect()
}

/// One CSV line, with double-quoted fields that may hold commas and doubled quotes.
fn split_csv(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

fn json_records(text: &str) -> Result<Vec<String>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: serde_json::Value =
                serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
            let obj = v
                .as_object()
                .ok_or_else(|| format!("line {}: not a JSON object", i + 1))?;
            Ok(obj
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join("\n"))
        })
        .collect()
}

fn pack(heading: &str, paras: &[String], max_tokens: usize, out: &mut Vec<Chunk>) {
    let tokens = |t: &str| count_tokens(TOKENIZER_MODEL, t);
    let mut current: Vec<&str> = Vec::new();
    let mut size = 0;
    for p in paras {
        let n = tokens(p);
        if !current.is_empty() && size + n > max_tokens {
            let overlap = *current.last().expect("not empty");
            emit(heading, &current, out);
            // The overlap is carried only when it leaves room for the next paragraph.
            current = if tokens(overlap) + n <= max_tokens {
                vec![overlap]
            } else {
                Vec::new()
            };
            size = current.iter().map(|c| tokens(c)).sum();
        }
        current.push(p);
        size += n;
    }
    if !current.is_empty() {
        emit(heading, &current, out);
    }
}

fn emit(heading: &str, paras: &[&str], out: &mut Vec<Chunk>) {
    out.push(Chunk {
        position: out.len(),
        heading: heading.to_string(),
        text: paras.join("\n\n"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_splits_at_headings_and_keeps_the_path() {
        let md = "# 产品\n\n介绍\n\n## 价格\n\n标准版每年980元\n\n## 售后\n\n7×24小时\n";
        let c = chunk_file(Path::new("a.md"), md, 200).unwrap();
        let got: Vec<(&str, &str)> = c
            .iter()
            .map(|c| (c.heading.as_str(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("产品", "介绍"),
                ("产品 > 价格", "标准版每年980元"),
                ("产品 > 售后", "7×24小时")
            ]
        );
    }

    #[test]
    fn long_text_is_packed_under_the_limit_with_overlap() {
        let paras: Vec<String> = (0..12)
            .map(|i| format!("第{i}段，{}", "内容".repeat(30)))
            .collect();
        let c = chunk_file(Path::new("a.txt"), &paras.join("\n\n"), 120).unwrap();
        assert!(c.len() > 2);
        for w in c.windows(2) {
            let last = w[0].text.rsplit("\n\n").next().unwrap();
            assert!(
                w[1].text.starts_with(last),
                "chunk {} starts with the end of the one before",
                w[1].position
            );
        }
        for chunk in &c {
            assert!(count_tokens(TOKENIZER_MODEL, &chunk.text) <= 120 + 10);
        }
    }

    #[test]
    fn csv_rows_and_json_lines_are_records_and_bad_rows_are_named() {
        let c = chunk_file(
            Path::new("p.csv"),
            "产品,价格\n\"标准版,年付\",980\n专业版,1680\n",
            200,
        )
        .unwrap();
        assert_eq!(c.len(), 2, "one chunk a row");
        assert_eq!(c[0].text, "产品: 标准版,年付\n价格: 980");
        let e = chunk_file(Path::new("p.csv"), "a,b\n1,2,3\n", 200).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let j = chunk_file(
            Path::new("f.jsonl"),
            "{\"q\":\"能开发票吗\",\"a\":\"能\"}\nnope\n",
            200,
        )
        .unwrap_err();
        assert!(j.contains("line 2"), "{j}");
        assert!(chunk_file(Path::new("x.pdf"), "", 200)
            .unwrap_err()
            .contains("unsupported"));
    }
}
