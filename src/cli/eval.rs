//! `huixi eval SUITE`: side-by-side metrics of a suite's variants, with JSON, JUnit and HTML output
//! and a regression gate.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::agents::offline::OfflineAnalysers;
use crate::eval::report::Report;
use crate::eval::run::{Analysers, ModelEndpoint};
use crate::eval::suite::Suite;
use crate::eval::{evaluate, html};
use crate::sensitive::{Engine, Lexicon};
use crate::settings::LlmSettings;

#[derive(Args)]
pub struct EvalArgs {
    /// A suite directory (with suite.toml) or file.
    pub suite: PathBuf,
    /// Run only these variants (repeatable).
    #[arg(long = "variant")]
    pub variants: Vec<String>,
    /// Print the report as JSON (it records every outcome, for --replay and --baseline).
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the metrics (no outcomes) here, as the baseline for later runs.
    #[arg(long)]
    pub save_baseline: Option<PathBuf>,
    #[arg(long)]
    pub junit: Option<PathBuf>,
    #[arg(long)]
    pub report_html: Option<PathBuf>,
    /// A saved JSON report to compare with: exit non-zero when a metric dropped by more than
    /// --max-regression.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    #[arg(long, default_value_t = 0.0)]
    pub max_regression: f64,
    /// Saved reports (or baselines) whose metrics are shown as extra columns beside this run's,
    /// named after the file: e.g. the analysers' figures before a change (repeatable).
    #[arg(long)]
    pub compare: Vec<PathBuf>,
    /// Score and render a saved JSON report again instead of running the variants.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// The model endpoint of variants that name no endpoint of their own.
    #[command(flatten)]
    pub endpoint: LlmSettings,
    /// Cases in flight at once (the endpoint's concurrency limit too).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

fn read_report(path: &PathBuf) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read report {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a huixi eval report: {e}", path.display()))
}

pub async fn eval(args: EvalArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.max_regression) {
        bail!(
            "--max-regression is a fraction between 0 and 1, got {}",
            args.max_regression
        );
    }
    let suite = Suite::load(&args.suite)?;
    let cases = suite.cases()?;
    let (offline, errors) = OfflineAnalysers::load();
    for e in errors {
        eprintln!("warning: skipped {e}");
    }
    let engine = Engine::build(&Lexicon::starter());
    let local = Analysers {
        offline: &offline,
        engine: &engine,
    };
    let endpoint = ModelEndpoint {
        base_url: args.endpoint.llm_base_url.clone(),
        api_key: args.endpoint.llm_api_key.clone(),
        model: args.endpoint.llm_model.clone(),
        concurrency: args.concurrency,
        prices: (
            args.endpoint.llm_price_input,
            args.endpoint.llm_price_output,
        ),
    };
    let replay = args.replay.as_ref().map(read_report).transpose()?;
    let report = evaluate(
        &suite,
        &cases,
        &args.variants,
        &local,
        &endpoint,
        replay.as_ref(),
    )
    .await?;
    let json = serde_json::to_string_pretty(&report)?;
    if args.json {
        println!("{json}");
    } else {
        let mut shown = report.clone();
        for p in &args.compare {
            let label = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            shown = shown.beside(&read_report(p)?, &label);
        }
        print!("{}", shown.table());
    }
    if let Some(p) = &args.out {
        std::fs::write(p, &json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.save_baseline {
        std::fs::write(p, serde_json::to_string_pretty(&report.baseline())?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.junit {
        std::fs::write(p, report.junit())
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.report_html {
        std::fs::write(p, html::render(&report, &cases))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(b) = &args.baseline {
        let regressions = report.regressions(&read_report(b)?, args.max_regression);
        if !regressions.is_empty() {
            for r in &regressions {
                eprintln!(
                    "regression: {} {} fell from {:.3} to {:.3} (allowed {})",
                    r.variant, r.metric, r.baseline, r.now, args.max_regression
                );
            }
            bail!(
                "{} metric(s) regressed against {}",
                regressions.len(),
                b.display()
            );
        }
    }
    Ok(())
}
