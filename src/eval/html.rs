//! The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched) with the
//! summary table, a bar chart per metric, confusion matrices, the cases that flipped, and every failing
//! case with its conversation (masked) and the variant's answer.

use std::fmt::Write as _;

use super::report::Report;
use super::score::gated;
use super::suite::Case;
use crate::sensitive::mask_pii;

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [&str; 6] = [
    "#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#c53030",
];

const STYLE: &str = "body{font-family:system-ui,'PingFang SC','Noto Sans CJK SC',sans-serif;margin:2rem;color:#1a202c}\
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #cbd5e0;padding:.3rem .6rem;text-align:right}\
th:first-child,td:first-child{text-align:left}.best{font-weight:700;background:#f0fff4}\
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{border:1px solid #e2e8f0;padding:.5rem}\
.bad{color:#c53030}.good{color:#2f855a}details{margin:.3rem 0}pre{background:#f7fafc;padding:.5rem;white-space:pre-wrap}\
.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem}";

fn bar_chart(report: &Report, metric: &str) -> String {
    let (w, row, left) = (320.0, 22.0, 110.0);
    let h = row * report.variants.len() as f64 + 28.0;
    let mut s = format!(
        "<div class=\"chart\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"600\">{}</text>",
        w + left + 50.0,
        esc(metric),
        esc(metric)
    );
    for (i, v) in report.variants.iter().enumerate() {
        let value = v.scores.metrics.get(metric).copied().unwrap_or(0.0);
        let y = 22.0 + i as f64 * row;
        let len = (value.clamp(0.0, 1.0) * w).max(1.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{len:.1}\" height=\"{}\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{value:.3}</text>",
            y + 13.0,
            esc(&v.variant.name),
            row - 6.0,
            COLORS[i % COLORS.len()],
            left + len + 4.0,
            y + 13.0
        );
    }
    s.push_str("</svg></div>");
    s
}

pub fn render(report: &Report, cases: &[Case]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\"><title>huixi eval — {}</title>\
         <style>{STYLE}</style></head><body><h1>huixi eval: {}</h1>\
         <p>{} cases · agents under test: {} · variants: {}</p>",
        esc(&report.suite),
        esc(&report.suite),
        report.cases,
        esc(&report.agents.join(", ")),
        esc(&report
            .variants
            .iter()
            .map(|v| v.variant.name.as_str())
            .collect::<Vec<_>>()
            .join(", "))
    );
    // Summary table, the best value of each gated metric marked.
    s.push_str("<h2>Summary</h2><table><tr><th>metric</th>");
    for v in &report.variants {
        let _ = write!(s, "<th>{}</th>", esc(&v.variant.name));
    }
    s.push_str("</tr>");
    for m in report.metric_names() {
        let values: Vec<Option<f64>> = report
            .variants
            .iter()
            .map(|v| v.scores.metrics.get(&m).copied())
            .collect();
        let best = gated(&m).and_then(|higher| {
            values
                .iter()
                .flatten()
                .copied()
                .reduce(|a, b| if (b > a) == higher { b } else { a })
        });
        let _ = write!(s, "<tr><td>{}</td>", esc(&m));
        for v in values {
            match v {
                Some(x) => {
                    let class = if report.variants.len() > 1 && best == Some(x) {
                        " class=\"best\""
                    } else {
                        ""
                    };
                    let _ = write!(s, "<td{class}>{x:.3}</td>");
                }
                None => s.push_str("<td>-</td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</table>");
    // Charts.
    s.push_str("<h2>Metrics per variant</h2><div class=\"legend\">");
    for (i, v) in report.variants.iter().enumerate() {
        let _ = write!(
            s,
            "<span><i class=\"sw\" style=\"background:{}\"></i>{}</span>",
            COLORS[i % COLORS.len()],
            esc(&v.variant.name)
        );
    }
    s.push_str("</div><div class=\"charts\">");
    for m in report.metric_names() {
        if gated(&m) == Some(true) {
            s.push_str(&bar_chart(report, &m));
        }
    }
    s.push_str("</div>");
    // Confusion matrices.
    s.push_str("<h2>Confusion matrices</h2>");
    for v in &report.variants {
        for (name, c) in &v.scores.confusion {
            let _ = write!(
                s,
                "<h3>{} — {}</h3><table><tr><th>expected \\ predicted</th>",
                esc(&v.variant.name),
                esc(name)
            );
            for l in &c.labels {
                let _ = write!(s, "<th>{}</th>", esc(l));
            }
            s.push_str("</tr>");
            let max = c.matrix.iter().flatten().copied().max().unwrap_or(1).max(1);
            for (i, row) in c.matrix.iter().enumerate() {
                let _ = write!(s, "<tr><th>{}</th>", esc(&c.labels[i]));
                for (j, n) in row.iter().enumerate() {
                    let alpha = *n as f64 / max as f64 * 0.8;
                    let hue = if i == j { "47,133,90" } else { "197,48,48" };
                    let _ = write!(
                        s,
                        "<td style=\"background:rgba({hue},{alpha:.2})\">{n}</td>"
                    );
                }
                s.push_str("</tr>");
            }
            s.push_str("</table>");
        }
    }
    // Flips.
    let flips = report.flips();
    if !flips.is_empty() {
        s.push_str(
            "<h2>Cases that differ between variants</h2><table><tr><th>case</th><th>check</th>",
        );
        for v in &report.variants {
            let _ = write!(s, "<th>{}</th>", esc(&v.variant.name));
        }
        s.push_str("</tr>");
        for f in &flips {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td>", esc(&f.case), esc(&f.check));
            for (_, ok, got) in &f.verdicts {
                let class = if *ok { "good" } else { "bad" };
                let _ = write!(s, "<td class=\"{class}\">{}</td>", esc(got));
            }
            s.push_str("</tr>");
        }
        s.push_str("</table>");
    }
    // Failing cases.
    s.push_str("<h2>Failing cases</h2>");
    for v in &report.variants {
        let failing: Vec<_> = v
            .scores
            .cases
            .iter()
            .enumerate()
            .filter(|(_, c)| c.checks.values().any(|k| !k.ok))
            .collect();
        let _ = write!(
            s,
            "<h3>{} — {} of {} cases fail</h3>",
            esc(&v.variant.name),
            failing.len(),
            v.scores.cases.len()
        );
        for (i, c) in failing {
            let misses = c.misses();
            let _ = write!(
                s,
                "<details><summary><b>{}</b> <span class=\"bad\">{}</span></summary>",
                esc(&c.case),
                esc(&misses.join("; "))
            );
            if let Some(case) = cases.iter().find(|k| k.id == c.case) {
                if !case.note.is_empty() {
                    let _ = write!(s, "<p>{}</p>", esc(&case.note));
                }
                s.push_str("<pre>");
                for m in &case.session.messages {
                    let _ = writeln!(
                        s,
                        "{}: {}",
                        esc(&m.from),
                        esc(&mask_pii(m.text.as_deref().unwrap_or("")))
                    );
                }
                s.push_str("</pre>");
            }
            if let Some(o) = v.outcomes.get(i) {
                let answer = serde_json::json!({
                    "emotion": o.result.emotion, "staff_score": o.result.staff_score,
                    "keywords": o.result.keywords, "competitors": o.result.competitors,
                    "opportunity": o.result.opportunity, "failures": o.result.failures,
                    "alerts": o.alerts.iter().map(|a| &a.category).collect::<Vec<_>>(),
                });
                let _ = write!(
                    s,
                    "<pre>{}</pre>",
                    esc(&serde_json::to_string_pretty(&answer).unwrap_or_default())
                );
            }
            s.push_str("</details>");
        }
    }
    s.push_str("</body></html>\n");
    s
}
