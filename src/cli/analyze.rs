//! `huixi analyze`: one process reads archive files, analyses every conversation they touch, and
//! prints the report.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::agents::SessionResult;
use crate::analysis::ConversationOutput;
use crate::customers::CustomerProfile;
use crate::customers::TagLibrary;
use crate::pipeline::{self, ReportSink, RunSummary};
use crate::sensitive::{Alert, Severity};
use crate::settings::Settings;
use crate::store::Store;
use crate::trajectory::Calendar;

#[derive(Args)]
pub struct AnalyzeArgs {
    /// WeCom archive files, one JSON message a line.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, env = "HUIXI_TENANT", default_value = "default")]
    pub tenant: String,
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
    /// Read every file, also those an earlier run read to the end under the same analysis (by
    /// default such a file is skipped whole: it has nothing new).
    #[arg(long)]
    pub reread: bool,
    #[command(flatten)]
    pub settings: Settings,
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
    super::check_archives(&args.files)?;
    let store = crate::startup::store(&args.settings).await?;
    store_settings(
        &store,
        &args.tenant,
        args.calendar.as_deref(),
        args.tag_library.as_deref(),
    )
    .await?;
    let tenants = crate::startup::tenants(&args.settings, &store)?;
    let tenant = tenants.fresh(&args.tenant).await?;
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
    // Buffered: stdout is line-buffered, and a report is a write(2) per line otherwise.
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut sink: Box<dyn ReportSink> = if args.json {
        Box::new(JsonReport::new(out)?)
    } else {
        Box::new(Summary::new(out))
    };
    pipeline::analyze(
        &tenants,
        &tenant,
        &args.files,
        args.reread,
        &bar,
        sink.as_mut(),
    )
    .await?;
    bar.finish_and_clear();
    if let Some(llm) = &tenant.llm {
        let (requests, retries) = llm.traffic();
        tracing::info!(requests, retries, "model endpoint traffic");
    }
    Ok(())
}

/// The `--json` document, written as the run goes: results and customers straight to the output,
/// alerts and per-session metrics to spool files that are copied in at the end, so the document of a
/// million-message run never sits in memory. The fields are those of the whole document; their order
/// is the run's.
struct JsonReport<W: Write> {
    out: W,
    /// Which array is open on the output: 0 results, 1 customers.
    open: u8,
    first: bool,
    alerts: Spool,
    metrics: Spool,
}

impl<W: Write> JsonReport<W> {
    fn new(mut out: W) -> std::io::Result<JsonReport<W>> {
        out.write_all(b"{\n\"results\": [")?;
        Ok(JsonReport {
            out,
            open: 0,
            first: true,
            alerts: Spool::new()?,
            metrics: Spool::new()?,
        })
    }

    fn item(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        self.out
            .write_all(if self.first { b"\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut self.out, value)?;
        Ok(())
    }
}

impl<W: Write> ReportSink for JsonReport<W> {
    fn conversation(&mut self, out: &ConversationOutput) -> std::io::Result<()> {
        for s in &out.sessions {
            self.item(&s.result)?;
        }
        for a in out.alerts() {
            self.alerts.push(a)?;
        }
        for m in &out.session_metrics {
            self.metrics.push(m)?;
        }
        Ok(())
    }

    fn customer(&mut self, profile: &CustomerProfile) -> std::io::Result<()> {
        if self.open == 0 {
            self.out.write_all(b"\n],\n\"customers\": [")?;
            self.open = 1;
            self.first = true;
        }
        self.item(profile)
    }

    fn finish(&mut self, r: RunSummary) -> std::io::Result<()> {
        if self.open == 0 {
            self.out.write_all(b"\n],\n\"customers\": [")?;
        }
        self.out.write_all(b"\n],\n\"alerts\": [")?;
        for a in &r.quiet_timeouts {
            self.alerts.push(a)?;
        }
        self.alerts.copy_to(&mut self.out)?;
        self.out.write_all(b"],\n\"metrics\": {\"sessions\": [")?;
        self.metrics.copy_to(&mut self.out)?;
        self.out.write_all(b"], \"staff_days\": ")?;
        serde_json::to_writer(&mut self.out, &r.staff_days)?;
        let tail = serde_json::json!({
            "tenant": r.tenant,
            "sessions": r.sessions,
            "messages": r.messages,
            "rejected_lines": r.rejected_lines,
            "rejected_beyond": r.rejected_beyond,
            "duplicates": r.duplicates,
            "unchanged_files": r.unchanged_files.iter().map(|f| serde_json::json!({
                "path": f.path,
                "messages": f.messages,
            })).collect::<Vec<_>>(),
        });
        // The remaining fields, as the members of one more object spliced in.
        let tail = tail.to_string();
        write!(self.out, "}},\n{}\n", &tail[1..])?;
        self.out.flush()
    }
}

/// An unnamed temporary file: items written as the run goes, copied into the report at the end.
struct Spool {
    file: std::io::BufWriter<std::fs::File>,
    first: bool,
}

impl Spool {
    fn new() -> std::io::Result<Spool> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "huixi-report-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Gone from the directory at once; the open file lives until the spool is dropped.
        std::fs::remove_file(&path)?;
        Ok(Spool {
            file: std::io::BufWriter::new(file),
            first: true,
        })
    }

    fn push(&mut self, value: &impl serde::Serialize) -> std::io::Result<()> {
        self.file
            .write_all(if self.first { b"\n" } else { b",\n" })?;
        self.first = false;
        serde_json::to_writer(&mut self.file, value)?;
        Ok(())
    }

    fn copy_to(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        use std::io::Seek;
        self.file.flush()?;
        let file = self.file.get_mut();
        file.rewind()?;
        std::io::copy(file, out)?;
        Ok(())
    }
}

/// How many sessions, alerts and customers the readable summary lists one by one; past that it shows
/// totals and the most severe alerts.
const LISTED: usize = 200;

/// The readable summary. It keeps at most [`LISTED`] of each kind of line, so a run of any size
/// prints a screenful of what matters, not every session.
struct Summary<W: Write> {
    out: W,
    sessions: Vec<SessionResult>,
    more_sessions: usize,
    /// The most severe alerts, high first.
    alerts: Vec<Alert>,
    alert_counts: [usize; 3],
    customers: Vec<CustomerProfile>,
    more_customers: usize,
    analysed: u64,
}

impl<W: Write> Summary<W> {
    fn new(out: W) -> Summary<W> {
        Summary {
            out,
            sessions: Vec::new(),
            more_sessions: 0,
            alerts: Vec::new(),
            alert_counts: [0; 3],
            customers: Vec::new(),
            more_customers: 0,
            analysed: 0,
        }
    }

    fn alert(&mut self, a: &Alert) {
        let rank = |s: Severity| match s {
            Severity::High => 0,
            Severity::Medium => 1,
            Severity::Low => 2,
        };
        self.alert_counts[rank(a.severity)] += 1;
        if self.alerts.len() < LISTED {
            self.alerts.push(a.clone());
        } else if let Some(worst) = self
            .alerts
            .iter()
            .rposition(|b| rank(b.severity) > rank(a.severity))
        {
            // A more severe alert replaces the last of the least severe kept.
            self.alerts.remove(worst);
            self.alerts.push(a.clone());
        }
    }
}

impl<W: Write> ReportSink for Summary<W> {
    fn conversation(&mut self, out: &ConversationOutput) -> std::io::Result<()> {
        for s in &out.sessions {
            self.analysed += u64::from(s.write.is_some());
            if self.sessions.len() < LISTED {
                self.sessions.push(s.result.clone());
            } else {
                self.more_sessions += 1;
            }
        }
        for a in out.alerts() {
            self.alert(a);
        }
        Ok(())
    }

    fn customer(&mut self, profile: &CustomerProfile) -> std::io::Result<()> {
        if self.customers.len() < LISTED {
            self.customers.push(profile.clone());
        } else {
            self.more_customers += 1;
        }
        Ok(())
    }

    fn finish(&mut self, r: RunSummary) -> std::io::Result<()> {
        for a in &r.quiet_timeouts {
            self.alert(a);
        }
        self.alerts.sort_by_key(|a| match a.severity {
            Severity::High => 0,
            Severity::Medium => 1,
            Severity::Low => 2,
        });
        print_summary(self, &r)?;
        self.out.flush()
    }
}

fn print_summary<W: Write>(sum: &mut Summary<W>, r: &RunSummary) -> std::io::Result<()> {
    let [high, medium, low] = sum.alert_counts;
    let out = &mut sum.out;
    writeln!(out, "huixi analyze — tenant {}", r.tenant)?;
    writeln!(
        out,
        "  {} messages read ({} new), {} lines rejected",
        r.messages,
        r.stats.messages_new,
        r.rejected_lines.len() + r.rejected_beyond
    )?;
    if !r.unchanged_files.is_empty() {
        writeln!(
            out,
            "  {} files unchanged since an earlier run, not read again ({} messages; --reread reads them)",
            r.unchanged_files.len(),
            r.unchanged_files.iter().map(|f| f.messages).sum::<u64>()
        )?;
    }
    writeln!(
        out,
        "  {} sessions ({} analysed now, {} unchanged since the last run)",
        r.sessions,
        sum.analysed,
        r.sessions as u64 - sum.analysed
    )?;
    writeln!(
        out,
        "  {} alerts: {high} high, {medium} medium, {low} low",
        high + medium + low,
    )?;
    if !r.rejected_lines.is_empty() {
        writeln!(out, "\nRejected lines")?;
        for l in r.rejected_lines.iter().take(LISTED) {
            writeln!(out, "  {}:{}: {}", l.file, l.line, l.error)?;
        }
        if r.rejected_lines.len() + r.rejected_beyond > LISTED {
            let more = r.rejected_lines.len() + r.rejected_beyond - LISTED;
            writeln!(out, "  … and {more} more")?;
        }
    }
    if !sum.alerts.is_empty() {
        let shown = sum.alerts.len();
        if shown < high + medium + low {
            writeln!(out, "\nAlerts (the {shown} most severe)")?;
        } else {
            writeln!(out, "\nAlerts")?;
        }
        for a in &sum.alerts {
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
    for s in &sum.sessions {
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
    if sum.more_sessions > 0 {
        writeln!(out, "  … and {} more sessions", sum.more_sessions)?;
    }
    if !r.staff_days.is_empty() {
        writeln!(
            out,
            "\nStaff by day (working-time response seconds: first / mean / p90)"
        )?;
        let secs = |v: Option<f64>| v.map_or("-".to_string(), |s| format!("{s:.0}"));
        for d in r.staff_days.iter().take(LISTED) {
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
    if !sum.customers.is_empty() {
        writeln!(out, "\nCustomers")?;
        for c in &sum.customers {
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
    if sum.more_customers > 0 {
        writeln!(out, "  … and {} more customers", sum.more_customers)?;
    }
    if !r.duplicates.is_empty() {
        writeln!(out, "\n撞单")?;
        for d in r.duplicates.iter().take(LISTED) {
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
