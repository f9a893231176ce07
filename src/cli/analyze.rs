//! `huixi analyze`: one process reads archive files, analyses every conversation they touch, and
//! prints the report.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::analysis::AnalysisArgs;
use crate::pipeline::{self, Report};
use crate::sensitive::Severity;
use crate::store::Store;

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
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

pub async fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    for f in &args.files {
        if !f.is_file() {
            bail!("cannot read archive {}: no such file", f.display());
        }
    }
    let store = Store::connect(&args.db).await?;
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
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_summary(&mut out, &report)?;
    }
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
    Ok(())
}
