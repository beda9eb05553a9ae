//! The `cellvae` command line: inspect, (later) train, evaluate and export headless.
//!
//! Every error is printed as one line naming the file, the place, the problem and what
//! to do, and the exit code is non-zero.

use cellvae::data::{load_paths, read_inputs, InputFile, Orientation, ReadOptions};
use cellvae::summary::Summary;
use cellvae::{Error, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "cellvae", version, about = "A single-cell VAE on WebGPU: read, train, evaluate, export")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum OrientationArg {
    Auto,
    CellsAsRows,
    CellsAsColumns,
}

#[derive(clap::Args)]
struct InputArgs {
    /// Count matrices: .h5ad, 10x .h5, 10x folders or matrix.mtx(.gz) with features/barcodes,
    /// dense .csv/.tsv(.gz). Several inputs are joined over shared genes with a `sample` column.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Cell metadata table (CSV/TSV with a header; first column the cell id), joined by id.
    #[arg(long)]
    obs: Option<PathBuf>,
    /// Orientation of dense CSV/TSV tables.
    #[arg(long, value_enum, default_value = "auto")]
    orientation: OrientationArg,
}

#[derive(Subcommand)]
enum Command {
    /// Print the matrix as read, before any filtering.
    Inspect {
        #[command(flatten)]
        input: InputArgs,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Read values that are not raw counts (normalised data) to inspect them; training
        /// still refuses them.
        #[arg(long)]
        allow_non_counts: bool,
    },
}

fn read(input: &InputArgs, allow_non_counts: bool) -> Result<cellvae::CountMatrix> {
    let files = load_paths(&input.paths)?;
    let obs = match &input.obs {
        Some(p) => {
            let name = p.display().to_string();
            let bytes = std::fs::read(p).map_err(|e| Error::Io { file: name.clone(), source: e })?;
            Some(InputFile::new(name, bytes))
        }
        None => None,
    };
    let opts = ReadOptions {
        allow_non_counts,
        orientation: match input.orientation {
            OrientationArg::Auto => Orientation::Auto,
            OrientationArg::CellsAsRows => Orientation::CellsAsRows,
            OrientationArg::CellsAsColumns => Orientation::CellsAsColumns,
        },
    };
    read_inputs(&files, obs.as_ref(), &opts)
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect { input, json, allow_non_counts } => {
            let m = read(&input, allow_non_counts)?;
            let s = Summary::of(&m);
            if json {
                let text = serde_json::to_string_pretty(&s)
                    .map_err(|e| Error::Config(format!("cannot write JSON: {e}")))?;
                println!("{text}");
            } else {
                print!("{}", s.to_text());
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Errors are printed on one line, whatever a library put in them.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
