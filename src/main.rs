//! huixi (会析): analyses the chat archives of companies that sell and serve through WeCom.
//!
//! `main` only sets up logging and hands the parsed command line to [`cli::run`].

mod agents;
mod analysis;
mod api;
mod archive;
mod cli;
mod customers;
mod digest;
mod eval;
mod ingest;
mod kb;
mod llm;
mod pipeline;
mod queue;
mod secrets;
mod sensitive;
mod settings;
mod startup;
mod store;
mod telemetry;
mod tenant;
mod trajectory;
mod webhook;
mod worker;

/// mimalloc rather than the system allocator: the analysis makes and drops many small strings and
/// vectors per message, and glibc's malloc spent a fifth of a run's time in them (consolidating free
/// lists), against a few percent here.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let telemetry = match telemetry::init(default_level, cli.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    };
    drop(telemetry);
    code
}
