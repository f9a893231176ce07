//! An eval report: every variant's metrics side by side, the cases that flipped between variants, the
//! regression gate against a saved report, and JUnit XML for CI. The JSON form keeps every outcome, so
//! `--replay` can score and render it again without a model.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::run::Outcome;
use super::score::{gated, Scores};
use super::suite::Variant;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantReport {
    pub variant: Variant,
    pub scores: Scores,
    /// Empty in a saved baseline, which keeps only metrics.
    #[serde(default)]
    pub outcomes: Vec<Outcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub suite: String,
    #[serde(default)]
    pub description: String,
    pub agents: Vec<String>,
    pub cases: usize,
    pub variants: Vec<VariantReport>,
}

/// A case whose verdict on one expectation differs between variants.
#[derive(Debug, Clone, Serialize)]
pub struct Flip {
    pub case: String,
    pub check: String,
    /// Per variant, in report order: right or wrong, and what it said.
    pub verdicts: Vec<(String, bool, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Regression {
    pub variant: String,
    pub metric: String,
    pub baseline: f64,
    pub now: f64,
}

impl Report {
    /// The report with metrics and confusion matrices only: what a regression gate compares.
    pub fn baseline(&self) -> Report {
        let mut b = self.clone();
        for v in &mut b.variants {
            v.outcomes.clear();
            v.scores.cases.clear();
        }
        b
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.variants
            .iter()
            .flat_map(|v| v.scores.metrics.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    pub fn flips(&self) -> Vec<Flip> {
        let mut flips = Vec::new();
        let Some(first) = self.variants.first() else {
            return flips;
        };
        for (i, case) in first.scores.cases.iter().enumerate() {
            for check in case.checks.keys() {
                let verdicts: Vec<(String, bool, String)> = self
                    .variants
                    .iter()
                    .filter_map(|v| {
                        let c = v.scores.cases.get(i)?.checks.get(check)?;
                        Some((v.variant.name.clone(), c.ok, c.got.clone()))
                    })
                    .collect();
                if verdicts.iter().any(|v| v.1) && verdicts.iter().any(|v| !v.1) {
                    flips.push(Flip {
                        case: case.case.clone(),
                        check: check.clone(),
                        verdicts,
                    });
                }
            }
        }
        flips
    }

    /// Gated metrics of every variant also in `baseline` (matched by variant name) that got worse by more
    /// than `allowed` (a fraction for rates; MAE is compared on the 0–100 score scale divided by 100).
    pub fn regressions(&self, baseline: &Report, allowed: f64) -> Vec<Regression> {
        let mut out = Vec::new();
        for v in &self.variants {
            let Some(b) = baseline
                .variants
                .iter()
                .find(|b| b.variant.name == v.variant.name)
                .or_else(|| (baseline.variants.len() == 1).then(|| &baseline.variants[0]))
            else {
                continue;
            };
            for (metric, now) in &v.scores.metrics {
                let (Some(higher_better), Some(before)) =
                    (gated(metric), b.scores.metrics.get(metric))
                else {
                    continue;
                };
                let drop = if higher_better {
                    before - now
                } else {
                    (now - before) / 100.0
                };
                if drop > allowed + 1e-9 {
                    out.push(Regression {
                        variant: v.variant.name.clone(),
                        metric: metric.clone(),
                        baseline: *before,
                        now: *now,
                    });
                }
            }
        }
        out
    }

    /// The report with a saved report's variants added as columns named `NAME (label)`: the figures
    /// of an earlier analyser or prompt beside today's, in one table.
    pub fn beside(&self, other: &Report, label: &str) -> Report {
        let mut r = self.clone();
        for v in &other.baseline().variants {
            let mut v = v.clone();
            v.variant.name = format!("{} ({label})", v.variant.name);
            r.variants.push(v);
        }
        r
    }

    /// Variants as columns, metrics as rows.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "suite {} — {} cases, agents {}",
            self.suite,
            self.cases,
            self.agents.join(", ")
        );
        if !self.description.is_empty() {
            let _ = writeln!(s, "{}", self.description);
        }
        let width = self
            .metric_names()
            .iter()
            .map(|m| m.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let _ = write!(s, "{:<width$}", "metric");
        for v in &self.variants {
            let _ = write!(s, " {:>14}", v.variant.name);
        }
        s.push('\n');
        for m in self.metric_names() {
            let _ = write!(s, "{m:<width$}");
            for v in &self.variants {
                match v.scores.metrics.get(&m) {
                    Some(x) if m.starts_with("tokens") => {
                        let _ = write!(s, " {x:>14.0}");
                    }
                    Some(x) => {
                        let _ = write!(s, " {x:>14.3}");
                    }
                    None => {
                        let _ = write!(s, " {:>14}", "-");
                    }
                }
            }
            s.push('\n');
        }
        let flips = self.flips();
        if !flips.is_empty() {
            let _ = writeln!(s, "\ncases that differ between variants:");
            for f in &flips {
                let parts: Vec<String> = f
                    .verdicts
                    .iter()
                    .map(|(v, ok, got)| format!("{v} {} {got}", if *ok { "✓" } else { "✗" }))
                    .collect();
                let _ = writeln!(s, "  {} {}: {}", f.case, f.check, parts.join(" | "));
            }
        }
        s
    }

    pub fn junit(&self) -> String {
        let esc = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
        for v in &self.variants {
            let failed = v
                .scores
                .cases
                .iter()
                .filter(|c| c.checks.values().any(|k| !k.ok))
                .count();
            let _ = writeln!(
                s,
                "  <testsuite name=\"{}/{}\" tests=\"{}\" failures=\"{failed}\">",
                esc(&self.suite),
                esc(&v.variant.name),
                v.scores.cases.len()
            );
            for c in &v.scores.cases {
                let _ = write!(
                    s,
                    "    <testcase classname=\"{}.{}\" name=\"{}\"",
                    esc(&self.suite),
                    esc(&v.variant.name),
                    esc(&c.case)
                );
                let misses = c.misses();
                if misses.is_empty() {
                    s.push_str("/>\n");
                } else {
                    let _ = writeln!(
                        s,
                        "><failure message=\"{}\"/></testcase>",
                        esc(&misses.join("; "))
                    );
                }
            }
            s.push_str("  </testsuite>\n");
        }
        s.push_str("</testsuites>\n");
        s
    }
}
