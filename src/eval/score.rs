//! Scores a variant's outcomes against the cases' expectations: accuracy, macro-F1 and a confusion
//! matrix for classes; precision, recall and F1 for sets; MAE and within-tolerance rate for scores;
//! schema-valid rate, latency percentiles, tokens and cost. Also a per-case verdict for diffs.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::run::Outcome;
use super::suite::Case;
use crate::agents::{EmotionLabel, SessionResult};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    /// `matrix[expected][predicted]`, in `labels` order.
    pub matrix: Vec<Vec<u32>>,
}

/// One expectation of one case: what was wanted, what came, and whether that counts as right.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub ok: bool,
    pub expected: String,
    pub got: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseScore {
    pub case: String,
    pub checks: BTreeMap<String, Check>,
}

impl CaseScore {
    /// The expectations this case missed, one line each.
    pub fn misses(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(_, k)| !k.ok)
            .map(|(n, k)| format!("{n}: expected {}, got {}", k.expected, k.got))
            .collect()
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Scores {
    pub metrics: BTreeMap<String, f64>,
    pub confusion: BTreeMap<String, Confusion>,
    #[serde(default)]
    pub cases: Vec<CaseScore>,
}

/// Metrics where a higher value is better and that a regression gate watches; MAE is watched too,
/// lower being better. Latency, tokens and cost are reported, not gated.
pub fn gated(metric: &str) -> Option<bool> {
    let higher = [
        ".accuracy",
        ".macro_f1",
        ".precision",
        ".recall",
        ".f1",
        ".within_tolerance",
        "schema_valid_rate",
    ];
    if higher.iter().any(|s| metric.ends_with(s)) {
        Some(true)
    } else if metric.ends_with(".mae") {
        Some(false)
    } else {
        None
    }
}

fn label(l: EmotionLabel) -> String {
    format!("{l:?}").to_lowercase()
}

fn emotion(r: &SessionResult, customer: bool) -> String {
    let side = if customer {
        &r.emotion.customer
    } else {
        &r.emotion.staff
    };
    side.as_ref().map_or("none".to_string(), |e| label(e.label))
}

#[derive(Default)]
struct ClassTally {
    pairs: Vec<(String, String)>,
}

impl ClassTally {
    fn finish(&self, name: &str, scores: &mut Scores) {
        if self.pairs.is_empty() {
            return;
        }
        let labels: Vec<String> = self
            .pairs
            .iter()
            .flat_map(|(e, p)| [e.clone(), p.clone()])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let idx = |l: &str| labels.iter().position(|x| x == l).expect("label listed");
        let mut matrix = vec![vec![0u32; labels.len()]; labels.len()];
        for (e, p) in &self.pairs {
            matrix[idx(e)][idx(p)] += 1;
        }
        let n = self.pairs.len() as f64;
        let correct = self.pairs.iter().filter(|(e, p)| e == p).count() as f64;
        let mut f1s = Vec::new();
        for (i, _) in labels.iter().enumerate() {
            let tp = matrix[i][i] as f64;
            let predicted: f64 = matrix.iter().map(|row| row[i] as f64).sum();
            let actual: f64 = matrix[i].iter().map(|&x| x as f64).sum();
            if actual == 0.0 {
                continue; // macro-F1 over the classes the dataset has
            }
            f1s.push(f1(tp, predicted - tp, actual - tp));
            // "No opportunity" is the reading a CRM filters on: how often it is right matters most.
            if labels[i] == "none" && predicted > 0.0 {
                scores
                    .metrics
                    .insert(format!("{name}.none_precision"), tp / predicted);
            }
        }
        scores
            .metrics
            .insert(format!("{name}.accuracy"), correct / n);
        scores.metrics.insert(
            format!("{name}.macro_f1"),
            f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
        );
        scores
            .confusion
            .insert(name.to_string(), Confusion { labels, matrix });
    }
}

#[derive(Default)]
struct SetTally {
    cases: usize,
    tp: f64,
    fp: f64,
    fn_: f64,
}

impl SetTally {
    fn add(&mut self, expected: &BTreeSet<String>, got: &BTreeSet<String>) {
        self.cases += 1;
        self.tp += expected.intersection(got).count() as f64;
        self.fp += got.difference(expected).count() as f64;
        self.fn_ += expected.difference(got).count() as f64;
    }

    fn finish(&self, name: &str, scores: &mut Scores) {
        if self.cases == 0 {
            return;
        }
        let ratio = |a: f64, b: f64| if b == 0.0 { 1.0 } else { a / b };
        let m = &mut scores.metrics;
        m.insert(
            format!("{name}.precision"),
            ratio(self.tp, self.tp + self.fp),
        );
        m.insert(format!("{name}.recall"), ratio(self.tp, self.tp + self.fn_));
        m.insert(format!("{name}.f1"), f1(self.tp, self.fp, self.fn_));
    }
}

fn f1(tp: f64, fp: f64, fn_: f64) -> f64 {
    if tp + fp + fn_ == 0.0 {
        1.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

fn show(s: &BTreeSet<String>) -> String {
    s.iter().cloned().collect::<Vec<_>>().join("、")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The confidence at which the eval reports offline readings as sure (what `--llm-triage 0.8` keeps).
const SURE: f64 = 0.8;

/// Scores outcomes (in case order) for the agents under test.
pub fn score(agents: &[String], cases: &[Case], outcomes: &[Outcome]) -> Scores {
    let tests = |a: &str| agents.iter().any(|x| x == a);
    let mut scores = Scores::default();
    let (mut customer, mut staff, mut stage) = (
        ClassTally::default(),
        ClassTally::default(),
        ClassTally::default(),
    );
    let (mut keywords, mut competitors, mut alerts) = (
        SetTally::default(),
        SetTally::default(),
        SetTally::default(),
    );
    let (mut abs_err, mut within, mut scored) = (0.0, 0.0, 0usize);
    let (mut detected_ok, mut detected_n) = (0usize, 0usize);
    // (right, all) readings at or above SURE confidence, and below it.
    let (mut sure, mut unsure) = ((0usize, 0usize), (0usize, 0usize));
    for (case, out) in cases.iter().zip(outcomes) {
        let r = &out.result;
        let e = &case.expect;
        let mut checks = BTreeMap::new();
        let mut check = |name: &str, ok: bool, expected: String, got: String| {
            checks.insert(name.to_string(), Check { ok, expected, got });
        };
        if tests("emotion") {
            if let Some(want) = &e.customer_emotion {
                let got = emotion(r, true);
                customer.pairs.push((want.clone(), got.clone()));
                check("customer_emotion", *want == got, want.clone(), got);
            }
            if let Some(want) = &e.staff_emotion {
                let got = emotion(r, false);
                staff.pairs.push((want.clone(), got.clone()));
                check("staff_emotion", *want == got, want.clone(), got);
            }
        }
        if let (true, Some(want)) = (tests("staff_score"), &e.staff_score) {
            let got = r.staff_score.as_ref().map(|s| s.score);
            let err = got.map_or(want.value, |g| (g - want.value).abs());
            abs_err += err;
            within += (err <= want.tolerance) as u8 as f64;
            scored += 1;
            check(
                "staff_score",
                err <= want.tolerance,
                format!("{}±{}", want.value, want.tolerance),
                got.map_or("none".into(), |g| format!("{g:.1}")),
            );
        }
        if let (true, Some(want)) = (tests("keywords"), &e.keywords) {
            let want = set(want.iter().cloned());
            let got = set(r.keywords.iter().map(|k| k.word.clone()));
            keywords.add(&want, &got);
            // A case passes when every expected keyword is among those found.
            check("keywords", want.is_subset(&got), show(&want), show(&got));
        }
        if let (true, Some(want)) = (tests("competitors"), &e.competitors) {
            let want = set(want.iter().cloned());
            let got = set(r.competitors.iter().map(|c| c.name.clone()));
            competitors.add(&want, &got);
            check("competitors", want == got, show(&want), show(&got));
        }
        if let (true, Some(want)) = (tests("opportunity"), &e.opportunity) {
            let got = r.opportunity.as_ref();
            let detected = got.is_some_and(|o| o.detected);
            detected_n += 1;
            detected_ok += (detected == want.detected) as usize;
            check(
                "opportunity.detected",
                detected == want.detected,
                want.detected.to_string(),
                detected.to_string(),
            );
            if let Some(s) = &want.stage {
                let got_stage = got.map_or("none".to_string(), |o| {
                    serde_json::to_value(o.stage)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                });
                stage.pairs.push((s.clone(), got_stage.clone()));
                check("opportunity.stage", *s == got_stage, s.clone(), got_stage);
            }
        }
        if let (true, Some(want)) = (tests("alerts"), &e.alerts) {
            let want = set(want.iter().cloned());
            let got = set(out.alerts.iter().map(|a| a.category.clone()));
            alerts.add(&want, &got);
            check("alerts", want == got, show(&want), show(&got));
        }
        // Is the offline reading's confidence worth triaging on: are the sure readings the right ones?
        if r.analyser.starts_with("offline") {
            let read = [
                "customer_emotion",
                "staff_emotion",
                "staff_score",
                "opportunity.stage",
            ];
            let right = read.iter().filter_map(|k| checks.get(*k)).all(|c| c.ok);
            let tally = if r.confidence() >= SURE {
                &mut sure
            } else {
                &mut unsure
            };
            tally.0 += right as usize;
            tally.1 += 1;
        }
        scores.cases.push(CaseScore {
            case: case.id.clone(),
            checks,
        });
    }
    if sure.1 + unsure.1 > 0 {
        let m = &mut scores.metrics;
        m.insert(
            "confidence.sure_share".into(),
            sure.1 as f64 / (sure.1 + unsure.1) as f64,
        );
        if sure.1 > 0 {
            m.insert(
                "confidence.sure_right".into(),
                sure.0 as f64 / sure.1 as f64,
            );
        }
        if unsure.1 > 0 {
            m.insert(
                "confidence.unsure_right".into(),
                unsure.0 as f64 / unsure.1 as f64,
            );
        }
    }
    customer.finish("customer_emotion", &mut scores);
    staff.finish("staff_emotion", &mut scores);
    stage.finish("opportunity.stage", &mut scores);
    keywords.finish("keywords", &mut scores);
    competitors.finish("competitors", &mut scores);
    alerts.finish("alerts", &mut scores);
    let m = &mut scores.metrics;
    if scored > 0 {
        m.insert("staff_score.mae".into(), abs_err / scored as f64);
        m.insert(
            "staff_score.within_tolerance".into(),
            within / scored as f64,
        );
    }
    if detected_n > 0 {
        m.insert(
            "opportunity.detected.accuracy".into(),
            detected_ok as f64 / detected_n as f64,
        );
    }
    let n = outcomes.len().max(1) as f64;
    m.insert(
        "schema_valid_rate".into(),
        outcomes.iter().filter(|o| o.schema_valid).count() as f64 / n,
    );
    let mut latency: Vec<f64> = outcomes.iter().map(|o| o.latency_ms).collect();
    latency.sort_by(|a, b| a.total_cmp(b));
    m.insert("latency_ms.p50".into(), percentile(&latency, 0.5));
    m.insert("latency_ms.p95".into(), percentile(&latency, 0.95));
    m.insert(
        "tokens.prompt".into(),
        outcomes.iter().map(|o| o.prompt_tokens as f64).sum(),
    );
    let triaged = outcomes.iter().filter(|o| o.triaged_tokens > 0).count();
    if triaged > 0 {
        m.insert(
            "tokens.triaged".into(),
            outcomes.iter().map(|o| o.triaged_tokens as f64).sum(),
        );
        m.insert("triage.kept_rate".into(), triaged as f64 / n);
    }
    m.insert(
        "tokens.completion".into(),
        outcomes.iter().map(|o| o.completion_tokens as f64).sum(),
    );
    m.insert("cost".into(), outcomes.iter().fold(0.0, |a, o| a + o.cost));
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_metrics_count_a_confusion_matrix() {
        let mut s = Scores::default();
        let t = ClassTally {
            pairs: vec![
                ("negative".into(), "negative".into()),
                ("negative".into(), "neutral".into()),
                ("positive".into(), "positive".into()),
                ("neutral".into(), "neutral".into()),
            ],
        };
        t.finish("x", &mut s);
        assert_eq!(s.metrics["x.accuracy"], 0.75);
        // F1: negative 2/3, neutral 2/3, positive 1 → macro (2/3 + 2/3 + 1) / 3.
        assert!((s.metrics["x.macro_f1"] - (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-9);
        let c = &s.confusion["x"];
        assert_eq!(c.labels, vec!["negative", "neutral", "positive"]);
        assert_eq!(c.matrix[0], vec![1, 1, 0]);
    }

    #[test]
    fn set_metrics_are_micro_averaged() {
        let mut t = SetTally::default();
        t.add(
            &set(["a".into(), "b".into()]),
            &set(["a".into(), "c".into()]),
        );
        t.add(&set([]), &set([]));
        let mut s = Scores::default();
        t.finish("k", &mut s);
        assert_eq!(s.metrics["k.precision"], 0.5);
        assert_eq!(s.metrics["k.recall"], 0.5);
        assert_eq!(s.metrics["k.f1"], 0.5);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 10.0);
        assert_eq!(percentile(&v, 0.95), 19.0);
    }
}
