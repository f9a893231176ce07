//! `huixi words`: the sensitive-word engine on its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use crate::sensitive::{self, Engine};
use crate::startup::load_lexicon;

#[derive(Subcommand)]
pub enum WordsCommand {
    /// Scan texts, one a line, and print every match with offsets into the original line.
    Scan {
        #[arg(long)]
        lexicon: PathBuf,
        #[arg(long)]
        whitelist: Option<PathBuf>,
        /// Input file, or - for stdin.
        #[arg(long, default_value = "-")]
        input: String,
        #[arg(long)]
        json: bool,
    },
    /// Throughput of the full scan against raw Aho-Corasick and a naive loop, on a fixed-seed corpus.
    Bench {
        #[arg(long, default_value_t = 50_000)]
        lexicon_size: usize,
        #[arg(long, default_value_t = 100)]
        mb: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

pub fn scan(
    lexicon: &Path,
    whitelist: Option<&Path>,
    input: &str,
    json: bool,
) -> anyhow::Result<()> {
    let engine = Engine::build(&load_lexicon(Some(lexicon), whitelist)?);
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    let reader: Box<dyn BufRead> = if input == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("cannot open {input}"))?;
        Box::new(BufReader::new(file))
    };
    sensitive::scan_lines(&engine, reader, out, json)?;
    Ok(())
}

pub fn bench(lexicon_size: usize, mb: usize, seed: u64, json: bool) -> anyhow::Result<()> {
    let report = sensitive::bench::run(lexicon_size, mb, seed);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
