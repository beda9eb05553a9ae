//! The `cellvae` command line: inspect, (later) train, evaluate and export headless.
//!
//! Every error is printed as one line naming the file, the place, the problem and what
//! to do, and the exit code is non-zero.

mod bench;
mod commands;
mod encode;

use cellvae::data::{load_paths, read_inputs, InputFile, Orientation, ReadOptions};
use cellvae::model::{Dispersion, Likelihood};
use cellvae::session::RunOptions;
use cellvae::summary::Summary;
use cellvae::{Error, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "cellvae",
    version,
    about = "A single-cell VAE on WebGPU: read, train, evaluate, export"
)]
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

#[derive(Clone, Copy, ValueEnum)]
enum LikelihoodArg {
    Nb,
    Zinb,
    Poisson,
}

#[derive(Clone, Copy, ValueEnum)]
enum DispersionArg {
    Gene,
    GeneBatch,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum BackendArg {
    Cpu,
    Gpu,
}

#[derive(clap::Args)]
struct TrainArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Epochs (default: scvi-tools' heuristic min(round(20000 / cells * 400), 400)).
    #[arg(long)]
    epochs: Option<u32>,
    /// Latent dimensions.
    #[arg(long, default_value_t = 10)]
    n_latent: usize,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 128)]
    n_hidden: usize,
    /// Hidden layers in encoder and decoder.
    #[arg(long, default_value_t = 1)]
    n_layers: usize,
    /// Count likelihood.
    #[arg(long, value_enum, default_value = "nb")]
    likelihood: LikelihoodArg,
    /// Dispersion per gene, or per gene and batch.
    #[arg(long, value_enum, default_value = "gene")]
    dispersion: DispersionArg,
    /// Metadata column with the batch (sample) of each cell.
    #[arg(long)]
    batch_key: Option<String>,
    /// Also give the encoder the one-hot batch (scvi-tools' encode_covariates).
    #[arg(long)]
    encode_batch: bool,
    /// Metadata column with labels, for the kNN accuracy of the latent space.
    #[arg(long)]
    label_key: Option<String>,
    /// Keep only this many highly variable genes (seurat_v3 on raw counts).
    #[arg(long)]
    top_genes: Option<usize>,
    /// Model exactly the genes listed in this file (one id or name per line).
    #[arg(long)]
    genes: Option<PathBuf>,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Maximum KL weight (beta), reached after the 400-epoch warm-up.
    #[arg(long, default_value_t = 1.0)]
    beta: f32,
    /// Epochs of linear KL warm-up.
    #[arg(long, default_value_t = 400)]
    kl_warmup: u32,
    /// Cells per minibatch.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Hold out the cell at input position i (0-based, before filtering) when i % K == 0.
    #[arg(long)]
    holdout_every: Option<usize>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the arithmetic runs.
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendArg,
    /// Output folder.
    #[arg(long, default_value = "cellvae-out")]
    out: PathBuf,
    /// Importance samples for the held-out log p(x).
    #[arg(long, default_value_t = 100)]
    eval_samples: usize,
    /// Also write an AnnData .h5ad: the cells (modelled genes), metadata, latent means in
    /// obsm["X_cellvae"], the settings in uns["cellvae"].
    #[arg(long)]
    out_h5ad: Option<PathBuf>,
    /// Leave the counts out of the .h5ad (a minified file for sharing).
    #[arg(long)]
    drop_counts: bool,
}

#[derive(clap::Args)]
struct DeArgs {
    /// Folder with model.safetensors and config.json (as `train --out` wrote it), or an
    /// scvi-tools model folder or its model.pt.
    model_dir: PathBuf,
    #[command(flatten)]
    input: InputArgs,
    /// Metadata column that defines the groups.
    #[arg(long)]
    groupby: String,
    /// The value of --groupby that makes group 1.
    #[arg(long)]
    group1: String,
    /// The value that makes group 2 (default: every other cell).
    #[arg(long)]
    group2: Option<String>,
    /// Decode cells as their own batch (`observed`), as every batch in turn with pairs
    /// within a batch (`all`: batch effects cancel), or as one batch (its name).
    #[arg(long, default_value = "observed")]
    decode_as: String,
    /// Posterior draws per group.
    #[arg(long, default_value_t = 5000)]
    n_samples: usize,
    /// Pairs of draws forming each gene's log fold change distribution.
    #[arg(long, default_value_t = 10000)]
    n_pairs: usize,
    /// The smallest |log2 fold change| that counts as a change.
    #[arg(long, default_value_t = 0.25)]
    delta: f32,
    /// Expected false discovery rate of the genes called.
    #[arg(long, default_value_t = 0.05)]
    fdr: f64,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the CSV here (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and write latent.tsv, losses.csv, metrics.json, model.safetensors, config.json.
    Train(Box<TrainArgs>),
    /// Recompute the metrics of a trained model on data.
    Eval {
        /// Folder with model.safetensors and config.json (as `train --out` wrote it), or an
        /// scvi-tools model folder or its model.pt.
        model_dir: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Hold out the cell at input position i when i % K == 0 and evaluate those (default: all cells).
        #[arg(long)]
        holdout_every: Option<usize>,
        /// Metadata column with labels, for the kNN accuracy.
        #[arg(long)]
        label_key: Option<String>,
        /// Importance samples for log p(x).
        #[arg(long, default_value_t = 100)]
        eval_samples: usize,
        /// Seed of the evaluation's draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Differential expression between two groups of cells from a trained model, as
    /// scvi-tools' "change" mode: one CSV row per gene, most probable change first.
    De(Box<DeArgs>),
    /// Latent means of every cell under a trained model (cellvae's folder, or an
    /// scvi-tools model folder or model.pt), as latent.tsv.
    Encode {
        /// Folder with model.safetensors and config.json, or an scvi-tools model folder / model.pt.
        model: PathBuf,
        #[command(flatten)]
        input: InputArgs,
        /// Write the TSV here (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also write an AnnData .h5ad: the cells (the model's genes), metadata, latent
        /// means in obsm["X_cellvae"], the settings in uns["cellvae"].
        #[arg(long)]
        out_h5ad: Option<PathBuf>,
        /// Leave the counts out of the .h5ad (a minified file for sharing).
        #[arg(long)]
        drop_counts: bool,
        /// Where the encoder runs (the GPU falls back to the CPU when it fails).
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        /// Cells read and encoded at a time: one .h5ad, 10x .h5 or Matrix Market
        /// dataset is streamed from disk in windows of this many cells, so memory does
        /// not grow with the number of cells (the .h5ad output, when asked for, keeps
        /// what it writes).
        #[arg(long, default_value_t = 10_000)]
        chunk_cells: usize,
    },
    /// Write a trained model in another tool's format: `--format scvi-tools` writes
    /// OUT/model.pt, which scvi.model.SCVI.load(OUT, adata=...) loads.
    Export {
        /// Folder with model.safetensors and config.json (or an scvi-tools model).
        model: PathBuf,
        /// The format to write.
        #[arg(long, value_parser = ["scvi-tools"])]
        format: String,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print speed figures (benchmarks, not tests): seconds per epoch, cells per second,
    /// a step's time by stage, GFLOP/s against the machine's matrix-product peak, GPU
    /// dispatches per step; on the inputs given, else on the demo and a synthetic wide
    /// dense 3,000 x 4,000 set.
    Bench {
        /// Count matrices to measure (each file or 10x folder its own row).
        paths: Vec<PathBuf>,
        /// Epochs to train for the seconds per epoch.
        #[arg(long, default_value_t = 2)]
        epochs: u32,
        /// Where the arithmetic runs.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: BackendArg,
        /// Also a series over 1k-100k cells and 1k-5k genes (synthetic; minutes).
        #[arg(long)]
        scaling: bool,
    },
    /// One row of `bench --scaling` (run by it in a child process).
    #[command(hide = true)]
    BenchOne {
        cells: usize,
        genes: usize,
        epochs: u32,
    },
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
    let (obs, opts) = read_options(input, allow_non_counts)?;
    read_inputs(&files, obs.as_ref(), &opts)
}

/// The metadata table (read whole) and the reading options of `input`.
fn read_options(
    input: &InputArgs,
    allow_non_counts: bool,
) -> Result<(Option<InputFile>, ReadOptions)> {
    let obs = match &input.obs {
        Some(p) => {
            let name = p.display().to_string();
            let bytes = std::fs::read(p).map_err(|e| Error::Io {
                file: name.clone(),
                source: e,
            })?;
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
        ..Default::default()
    };
    Ok((obs, opts))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => commands::train(*args_into(&args)?),
        Command::Eval {
            model_dir,
            input,
            holdout_every,
            label_key,
            eval_samples,
            seed,
        } => {
            let m = read(&input, false)?;
            commands::eval(
                &model_dir,
                &m,
                holdout_every,
                label_key.as_deref(),
                eval_samples,
                seed,
            )
        }
        Command::Encode {
            model,
            input,
            out,
            out_h5ad,
            drop_counts,
            backend,
            chunk_cells,
        } => {
            let (obs, opts) = read_options(&input, false)?;
            let cells = cellvae::data::stream::CellStream::open(&input.paths, obs.as_ref(), &opts)?;
            let job = encode::EncodeJob {
                model: &model,
                out: out.as_deref(),
                out_h5ad: out_h5ad.as_deref(),
                drop_counts,
                gpu: backend == BackendArg::Gpu,
                chunk_cells,
            };
            encode::encode(&job, cells)
        }
        Command::Export { model, format, out } => {
            let _ = format; // one format so far: scvi-tools
            commands::export_scvi(&model, &out)
        }
        Command::De(a) => {
            let m = read(&a.input, false)?;
            let opts = cellvae::de::DeOptions {
                n_samples: a.n_samples,
                n_pairs: a.n_pairs,
                delta: a.delta,
                fdr_target: a.fdr,
                seed: a.seed,
                ..Default::default()
            };
            commands::de(
                &a.model_dir,
                &m,
                &a.groupby,
                &a.group1,
                a.group2.as_deref(),
                &a.decode_as,
                opts,
                a.out.as_deref(),
            )
        }
        Command::Bench {
            paths,
            epochs,
            backend,
            scaling,
        } => {
            let mut data = Vec::new();
            for p in &paths {
                let files = load_paths(std::slice::from_ref(p))?;
                data.push((
                    p.display().to_string(),
                    read_inputs(&files, None, &ReadOptions::default())?,
                ));
            }
            bench::bench(bench::BenchJob {
                data,
                epochs,
                gpu: backend == BackendArg::Gpu,
                scaling,
            })
        }
        Command::BenchOne {
            cells,
            genes,
            epochs,
        } => bench::bench_one(cells, genes, epochs),
        Command::Inspect {
            input,
            json,
            allow_non_counts,
        } => {
            let m = read(&input, allow_non_counts)?;
            let s = Summary::of(&m);
            if json {
                let text = serde_json::to_string_pretty(&s)
                    .map_err(|e| Error::Config(format!("cannot write JSON: {e}")))?;
                commands::emit(&format!("{text}\n"))?;
            } else {
                commands::emit(&s.to_text())?;
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

fn args_into(a: &TrainArgs) -> Result<Box<commands::TrainJob>> {
    let m = read(&a.input, false)?;
    Ok(Box::new(commands::TrainJob {
        matrix: m,
        run: RunOptions {
            n_latent: a.n_latent,
            n_hidden: a.n_hidden,
            n_layers: a.n_layers,
            likelihood: match a.likelihood {
                LikelihoodArg::Nb => Likelihood::Nb,
                LikelihoodArg::Zinb => Likelihood::Zinb,
                LikelihoodArg::Poisson => Likelihood::Poisson,
            },
            dispersion: match a.dispersion {
                DispersionArg::Gene => Dispersion::Gene,
                DispersionArg::GeneBatch => Dispersion::GeneBatch,
            },
            encode_batch: a.encode_batch,
            lr: a.lr,
            beta: a.beta,
            kl_warmup_epochs: Some(a.kl_warmup),
            epochs: a.epochs,
            batch_size: a.batch_size,
            seed: a.seed,
        },
        batch_key: a.batch_key.clone(),
        label_key: a.label_key.clone(),
        top_genes: a.top_genes,
        genes: match &a.genes {
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| Error::Io {
                    file: name,
                    source: e,
                })?;
                Some(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from)
                        .collect(),
                )
            }
            None => None,
        },
        holdout_every: a.holdout_every,
        gpu: a.backend == BackendArg::Gpu,
        out: a.out.clone(),
        eval_samples: a.eval_samples,
        out_h5ad: a.out_h5ad.clone(),
        drop_counts: a.drop_counts,
    }))
}

/// Errors are printed on one line, whatever a library put in them.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
