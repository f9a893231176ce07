//! `huixi analyze`: one process reads archive files, analyses every conversation they touch, and
//! prints the report.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;

use super::analysis::AnalysisArgs;
use crate::customers::TagLibrary;
use crate::pipeline::{self, Report};
use crate::sensitive::Severity;
use crate::store::Store;
use crate::trajectory::Calendar;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// WeCom archive files, one JSON message a line.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
    /// Store URL: sqlite://FILE (created when missing) or mysql://user:password@host:port/database.
    #[arg(long, env = "HUIXI_DB", default_value = "sqlite://huixi.db")]
    pub db: String,
    /// Print one JSON document on stdout instead of the readable summary.
    #[arg(long)]
    pub json: bool,
    /// The tenant's working-hours calendar and reply threshold (TOML or JSON), kept in the store for
    /// later runs and workers.
    #[arg(long, value_name = "FILE")]
    pub calendar: Option<PathBuf>,
    /// The tenant's tag library (JSON: WeCom's corp tag list, optionally with keywords and stages per
    /// tag), kept in the store for later runs and workers.
    #[arg(long, value_name = "FILE")]
    pub tag_library: Option<PathBuf>,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// Checks and stores the settings files given on the command line, before any analysis uses them.
pub async fn store_settings(
    store: &Store,
    tenant: &str,
    calendar: Option<&Path>,
    tag_library: Option<&Path>,
) -> anyhow::Result<()> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    if let Some(path) = calendar {
        let cal = Calendar::parse(&path.display().to_string(), &read(path)?)
            .map_err(anyhow::Error::msg)?;
        store.put_calendar(tenant, &cal).await?;
    }
    if let Some(path) = tag_library {
        let lib = TagLibrary::parse(&path.display().to_string(), &read(path)?)
            .map_err(anyhow::Error::msg)?;
        store.put_tag_library(tenant, &lib).await?;
    }
    Ok(())
}

pub async fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    for f in &args.files {
        if !f.is_file() {
            bail!("cannot read archive {}: no such file", f.display());
        }
    }
    let store = Store::connect(&args.db).await?;
    store_settings(
        &store,
        &args.tenant,
        args.calendar.as_deref(),
        args.tag_library.as_deref(),
    )
    .await?;
    let ctx = args.analysis.context(&store, &args.tenant)?;
    let opts = ctx.options(&args.tenant);
    let bar = if args.json || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} analysing {pos}/{len} conversations [{bar:30}] {elapsed}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar
    };
    let report = pipeline::analyze(
        &store,
        &ctx.lexicons,
        &ctx.analysers(),
        &args.files,
        &opts,
        &bar,
    )
    .await?;
    bar.finish_and_clear();
    if let Some(llm) = &ctx.llm {
        let (requests, retries) = llm.traffic();
        tracing::info!(requests, retries, "model endpoint traffic");
    }
    // Buffered: stdout is line-buffered, and a pretty report is a write(2) per line otherwise.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_summary(&mut out, &report)?;
    }
    out.flush()?;
    Ok(())
}

fn print_summary(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    let count = |s: Severity| r.alerts.iter().filter(|a| a.severity == s).count();
    writeln!(out, "huixi analyze — tenant {}", r.tenant)?;
    writeln!(
        out,
        "  {} messages read ({} new), {} lines rejected",
        r.messages,
        r.stats.messages_new,
        r.rejected_lines.len()
    )?;
    writeln!(
        out,
        "  {} sessions ({} analysed now, {} unchanged since the last run)",
        r.sessions,
        r.stats.sessions_analysed,
        r.sessions as u64 - r.stats.sessions_analysed
    )?;
    writeln!(
        out,
        "  {} alerts: {} high, {} medium, {} low",
        r.alerts.len(),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low)
    )?;
    if !r.rejected_lines.is_empty() {
        writeln!(out, "\nRejected lines")?;
        for l in &r.rejected_lines {
            writeln!(out, "  {}:{}: {}", l.file, l.line, l.error)?;
        }
    }
    if !r.alerts.is_empty() {
        writeln!(out, "\nAlerts")?;
        for a in &r.alerts {
            writeln!(
                out,
                "  [{:<6}] {} / {} «{}» {} {}: {}",
                a.severity.as_str(),
                a.kind,
                a.category,
                a.word,
                a.session,
                a.msgid,
                a.text.chars().take(60).collect::<String>()
            )?;
        }
    }
    writeln!(out, "\nSessions")?;
    for s in &r.results {
        let emotion = |e: &Option<crate::agents::Emotion>| {
            e.as_ref().map_or("-".to_string(), |e| {
                format!("{:?} {:+.2}", e.label, e.score)
            })
        };
        writeln!(
            out,
            "  {} {} {} → {}  [{}]",
            s.session,
            s.kind.as_str(),
            s.start,
            s.end,
            s.participants.join(", ")
        )?;
        writeln!(
            out,
            "      customer {}, staff {}, score {}, stage {}{}",
            emotion(&s.emotion.customer),
            emotion(&s.emotion.staff),
            s.staff_score
                .as_ref()
                .map_or("-".to_string(), |x| x.score.to_string()),
            s.opportunity
                .as_ref()
                .map_or("-", |o| o.stage_label.as_str()),
            if s.competitors.is_empty() {
                String::new()
            } else {
                format!(
                    ", competitors {}",
                    s.competitors
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join("、")
                )
            }
        )?;
        let kws: Vec<&str> = s.keywords.iter().map(|k| k.word.as_str()).collect();
        if !kws.is_empty() {
            writeln!(out, "      keywords {}", kws.join(" "))?;
        }
        if let Some(summary) = &s.summary {
            writeln!(out, "      {}", summary.text)?;
        }
        for f in &s.failures {
            writeln!(out, "      FAILED {}: {}", f.agent, f.error)?;
        }
    }
    if !r.metrics.staff_days.is_empty() {
        writeln!(
            out,
            "\nStaff by day (working-time response seconds: first / mean / p90)"
        )?;
        let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.0}"));
        for d in &r.metrics.staff_days {
            writeln!(
                out,
                "  {} {}  {} sessions, {} in / {} out, response {} / {} / {}, {} overdue, {:.0}% negative",
                d.day,
                d.staff,
                d.sessions,
                d.customer_messages,
                d.staff_messages,
                secs(d.first_response_secs),
                secs(d.mean_response_secs),
                secs(d.p90_response_secs.map(|s| s as f64)),
                d.overdue,
                d.negative_share * 100.0
            )?;
        }
    }
    if !r.customers.is_empty() {
        writeln!(out, "\nCustomers")?;
        for c in &r.customers {
            let moves: Vec<String> = c
                .stage_history
                .iter()
                .map(|m| format!("{}({})", m.label, m.evidence.join(",")))
                .collect();
            writeln!(
                out,
                "  {} — {} sessions with {}; stage {}: {}",
                c.customer,
                c.sessions,
                c.staff.join("、"),
                c.stage_label,
                moves.join(" → ")
            )?;
            writeln!(
                out,
                "      next: {} ({})",
                c.next_best_action.action, c.next_best_action.reason
            )?;
            if !c.tags.is_empty() {
                let tags: Vec<String> = c
                    .tags
                    .iter()
                    .map(|t| format!("{}:{} {:.2}", t.group, t.tag, t.confidence))
                    .collect();
                writeln!(out, "      tags: {}", tags.join(", "))?;
            }
        }
    }
    if !r.duplicates.is_empty() {
        writeln!(out, "\n撞单")?;
        for d in &r.duplicates {
            writeln!(
                out,
                "  {} {} customers {} staff {} evidence {}",
                d.kind,
                d.value.as_deref().unwrap_or(""),
                d.customers.join(","),
                d.staff.join(","),
                d.evidence.join(",")
            )?;
        }
    }
    Ok(())
}
