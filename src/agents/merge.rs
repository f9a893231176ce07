//! Merging the answers an agent gave for the chunks of a long session into one answer of the same
//! schema: scores are averaged, lists are united (by word or name), stages take the furthest reached,
//! and evidence (and knowledge-base citations) is the union of the chunks' evidence.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// One answer from many. `answers` are schema-valid answers of agent `name`, in chunk order.
pub fn merge(name: &str, mut answers: Vec<Value>) -> Value {
    if answers.len() <= 1 {
        return answers.pop().unwrap_or(Value::Null);
    }
    match name {
        "emotion" => json!({
            "customer": merge_emotion(answers.iter().map(|a| &a["customer"])),
            "staff": merge_emotion(answers.iter().map(|a| &a["staff"])),
        }),
        "staff_score" => merge_staff(&answers),
        "keywords" => json!({"keywords": merge_keywords(&answers)}),
        "competitors" => json!({"competitors": merge_competitors(&answers)}),
        "opportunity" => merge_opportunity(&answers),
        "summary" => json!({
            "text": answers.iter().filter_map(|a| a["text"].as_str()).collect::<Vec<_>>().join(" "),
            "evidence": union(answers.iter().map(|a| &a["evidence"]), 6),
        }),
        // An agent huixi does not know: keep every chunk's answer, in order.
        _ => json!({"chunks": answers}),
    }
}

fn union<'a>(lists: impl Iterator<Item = &'a Value>, max: usize) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for list in lists {
        for v in list.as_array().into_iter().flatten() {
            if !out.contains(v) && out.len() < max {
                out.push(v.clone());
            }
        }
    }
    out
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn merge_emotion<'a>(sides: impl Iterator<Item = &'a Value> + Clone) -> Value {
    let present: Vec<&Value> = sides.filter(|s| s.is_object()).collect();
    let Some(score) = mean(present.iter().filter_map(|s| s["score"].as_f64())) else {
        return Value::Null;
    };
    let label = if score >= 0.2 {
        "positive"
    } else if score <= -0.2 {
        "negative"
    } else {
        "neutral"
    };
    json!({
        "label": label,
        "score": (score * 100.0).round() / 100.0,
        "evidence": union(present.iter().map(|s| &s["evidence"]), 5),
    })
}

fn merge_staff(answers: &[Value]) -> Value {
    let avg = |path: &[&str]| {
        mean(answers.iter().filter_map(|a| {
            path.iter()
                .try_fold(a, |v, k| v.get(*k))
                .and_then(Value::as_f64)
        }))
        .map(|x| (x * 10.0).round() / 10.0)
        .unwrap_or(0.0)
    };
    let mut breakdown = Map::new();
    for part in ["responsiveness", "politeness", "compliance", "outcome"] {
        breakdown.insert(part.into(), json!(avg(&["breakdown", part])));
    }
    json!({
        "score": avg(&["score"]),
        "breakdown": breakdown,
        "notes": union(answers.iter().map(|a| &a["notes"]), 8),
        "evidence": union(answers.iter().map(|a| &a["evidence"]), 10),
        "chunks": union(answers.iter().map(|a| &a["chunks"]), 5),
    })
}

fn merge_keywords(answers: &[Value]) -> Vec<Value> {
    let mut by_word: BTreeMap<String, (f64, Vec<Value>)> = BTreeMap::new();
    for k in answers
        .iter()
        .flat_map(|a| a["keywords"].as_array().into_iter().flatten())
    {
        let Some(word) = k["word"].as_str() else {
            continue;
        };
        let entry = by_word.entry(word.to_string()).or_insert((0.0, Vec::new()));
        entry.0 = entry.0.max(k["weight"].as_f64().unwrap_or(0.0));
        entry.1 = union(
            [Value::Array(entry.1.clone()), k["evidence"].clone()].iter(),
            5,
        );
    }
    let mut list: Vec<(String, (f64, Vec<Value>))> = by_word.into_iter().collect();
    list.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    list.into_iter()
        .take(8)
        .map(|(word, (weight, evidence))| json!({"word": word, "weight": weight, "evidence": evidence}))
        .collect()
}

fn merge_competitors(answers: &[Value]) -> Vec<Value> {
    let mut by_name: BTreeMap<String, [i64; 3]> = BTreeMap::new();
    let mut evidence: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut chunks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for c in answers
        .iter()
        .flat_map(|a| a["competitors"].as_array().into_iter().flatten())
    {
        let Some(name) = c["name"].as_str() else {
            continue;
        };
        let counts = by_name.entry(name.to_string()).or_default();
        for (i, field) in ["mentions", "by_customer", "by_staff"].iter().enumerate() {
            counts[i] += c[*field].as_i64().unwrap_or(0);
        }
        let ev = evidence.entry(name.to_string()).or_default();
        *ev = union([Value::Array(ev.clone()), c["evidence"].clone()].iter(), 10);
        let cited = chunks.entry(name.to_string()).or_default();
        *cited = union([Value::Array(cited.clone()), c["chunks"].clone()].iter(), 5);
    }
    by_name
        .into_iter()
        .map(|(name, [m, c, s])| {
            json!({"name": name, "mentions": m, "by_customer": c, "by_staff": s,
                   "evidence": evidence[&name], "chunks": chunks[&name]})
        })
        .collect()
}

const STAGES: &[&str] = &[
    "none",
    "initial_contact",
    "needs_confirmed",
    "quoted",
    "negotiating",
    "won",
];

fn merge_opportunity(answers: &[Value]) -> Value {
    let rank = |s: &str| STAGES.iter().position(|x| *x == s);
    let last = answers
        .last()
        .and_then(|a| a["stage"].as_str())
        .unwrap_or("none");
    let furthest = answers
        .iter()
        .filter_map(|a| a["stage"].as_str())
        .filter_map(|s| rank(s).map(|r| (r, s)))
        .max()
        .map_or("none", |(_, s)| s);
    // A deal lost at the end stays lost unless a later chunk shows it won.
    let stage = if last == "lost" { "lost" } else { furthest };
    let signals: Vec<Value> = answers
        .iter()
        .flat_map(|a| a["signals"].as_array().cloned().unwrap_or_default())
        .take(12)
        .collect();
    json!({
        "detected": answers.iter().any(|a| a["detected"].as_bool() == Some(true)),
        "stage": stage,
        "score": answers.iter().filter_map(|a| a["score"].as_f64()).fold(0.0, f64::max),
        "signals": signals,
        "evidence": union(answers.iter().map(|a| &a["evidence"]), 10),
        "chunks": union(answers.iter().map(|a| &a["chunks"]), 5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_answers_merge_into_one_of_the_same_shape() {
        let e = merge(
            "emotion",
            vec![
                json!({"customer": {"label": "negative", "score": -0.8, "evidence": ["a"]}, "staff": null}),
                json!({"customer": {"label": "neutral", "score": 0.0, "evidence": ["b"]}, "staff": {"label": "positive", "score": 0.5, "evidence": ["c"]}}),
            ],
        );
        assert_eq!(e["customer"]["label"], "negative");
        assert_eq!(e["customer"]["score"], -0.4);
        assert_eq!(e["customer"]["evidence"], json!(["a", "b"]));
        assert_eq!(e["staff"]["score"], 0.5);

        let c = merge(
            "competitors",
            vec![
                json!({"competitors": [{"name": "X", "mentions": 1, "by_customer": 1, "by_staff": 0, "evidence": ["a"], "chunks": ["kb_1"]}]}),
                json!({"competitors": [{"name": "X", "mentions": 2, "by_customer": 1, "by_staff": 1, "evidence": ["b"], "chunks": ["kb_1", "kb_2"]}]}),
            ],
        );
        assert_eq!(c["competitors"][0]["mentions"], 3);
        assert_eq!(c["competitors"][0]["evidence"], json!(["a", "b"]));
        assert_eq!(c["competitors"][0]["chunks"], json!(["kb_1", "kb_2"]));

        let o = merge(
            "opportunity",
            vec![
                json!({"detected": true, "stage": "quoted", "score": 0.6, "signals": [], "evidence": ["a"], "chunks": ["kb_1"]}),
                json!({"detected": false, "stage": "needs_confirmed", "score": 0.2, "signals": [], "evidence": []}),
            ],
        );
        assert_eq!(o["stage"], "quoted");
        assert_eq!(o["detected"], true);
        assert_eq!(o["score"], 0.6);
        assert_eq!(
            o["chunks"],
            json!(["kb_1"]),
            "an answer without chunks adds none"
        );
    }
}
