//! `cellvae train`, `cellvae eval` and `cellvae de`: the pipeline from a matrix to the files the
//! browser loads.

use cellvae::data::CountMatrix;
use cellvae::de::{differential_expression, groups_by_column, to_csv, DeOptions, DecodeAs};
use cellvae::eval::{evaluate, knn_accuracy, latent, report};
use cellvae::model::io::{checkpoint_to_safetensors, read_model, to_safetensors, ModelFiles};
use cellvae::model::{Backend, CpuBackend, GpuBackend, ModelConfig, Params, TrainState};
use cellvae::pipeline::{column_codes, prepare, prepare_for_model, PrepareOptions};
use cellvae::session::{RunOptions, Words};
use cellvae::train::{TrainConfig, Trainer, GROUP};
use cellvae::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Everything `cellvae train` was asked to do.
pub struct TrainJob {
    pub matrix: CountMatrix,
    /// The model and training settings (checked by the session layer, as the page's).
    pub run: RunOptions,
    pub batch_key: Option<String>,
    pub label_key: Option<String>,
    pub top_genes: Option<usize>,
    pub genes: Option<Vec<String>>,
    pub holdout_every: Option<usize>,
    pub gpu: bool,
    pub out: PathBuf,
    pub eval_samples: usize,
    /// Also write the cells, their metadata and latent means as an .h5ad here.
    pub out_h5ad: Option<PathBuf>,
    /// Leave the counts out of that .h5ad (a minified file for sharing).
    pub drop_counts: bool,
}

fn now() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::Io {
        file: path.display().to_string(),
        source: e,
    })
}

/// Writes `text` to standard output. A reader that stops early (`| head`) is not an
/// error: the rest is not wanted.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
            file: "standard output".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::Config(format!("cannot write JSON: {e}")))
}

/// Trains, evaluates and writes the output folder.
pub fn train(job: TrainJob) -> Result<()> {
    // Settings that do not depend on the data fail before the data is prepared.
    job.run.validate(Words::Cli)?;
    let opts = PrepareOptions {
        qc: cellvae::data::preprocess::QcOptions {
            n_top_genes: job.top_genes,
            ..Default::default()
        },
        holdout_every: job.holdout_every,
        batch_key: job.batch_key.clone(),
        label_key: job.label_key.clone(),
        genes: job.genes.clone(),
    };
    let prep = prepare(&job.matrix, &opts)?;
    for line in prep.report.to_lines() {
        eprintln!("{line}");
    }
    let config = job.run.model_config(
        prep.matrix.n_genes,
        prep.batch_levels.len(),
        job.batch_key.is_some(),
        Words::Cli,
    )?;
    let tc = job.run.train_config(prep.train_cells.len(), Words::Cli)?;
    let params = Params::init(&config, job.run.seed)?;
    let m = &prep.matrix;
    let state = TrainState::new(params);
    // Fail on an unwritable --out before training, not after.
    std::fs::create_dir_all(&job.out).map_err(|e| Error::Io {
        file: job.out.display().to_string(),
        source: e,
    })?;
    let bar = progress_bar(tc.epochs)?;
    let started = now();
    if !job.gpu {
        let backend = CpuBackend::new();
        let adapter = backend.adapter();
        let mut trainer = Trainer::new(
            backend,
            tc.clone(),
            state,
            prep.train_cells.clone(),
            prep.batch_codes.clone(),
            now,
        )?;
        run_all(&mut trainer, m, &bar)?;
        let params = trainer.params()?;
        return outputs(
            &job,
            &prep,
            config,
            &tc,
            &mut trainer,
            params,
            &adapter,
            now() - started,
            None,
        );
    }
    let mut backend = cellvae::block_on(GpuBackend::create())?;
    if let Ok(s) = std::env::var("CELLVAE_TEST_LOSE_GPU_AT_STEP") {
        // Fault injection for the fallback test (tests/train_cli.rs).
        let step = s.parse().map_err(|_| {
            Error::Config(format!(
                "CELLVAE_TEST_LOSE_GPU_AT_STEP={s}: not a step number"
            ))
        })?;
        backend.lose_device_at_step(step);
    }
    let adapter = backend.adapter();
    let mut trainer = Trainer::new(
        backend,
        tc.clone(),
        state,
        prep.train_cells.clone(),
        prep.batch_codes.clone(),
        now,
    )?;
    // Read the state back every 50 steps too, so that a fallback replays little.
    trainer.snapshot_every = 50;
    let why = match run_all(&mut trainer, m, &bar).and_then(|()| trainer.params()) {
        Ok(params) => {
            return outputs(
                &job,
                &prep,
                config,
                &tc,
                &mut trainer,
                params,
                &adapter,
                now() - started,
                None,
            )
        }
        Err(Error::Gpu(why)) => why,
        Err(e) => return Err(e),
    };
    let from_step = trainer.resume_step();
    bar.suspend(|| {
        eprintln!(
            "warning: the GPU failed ({why}); continuing on the CPU from step {from_step}, the \
             last state read back (the steps since are taken again: no training is lost)"
        )
    });
    let mut trainer = trainer.switch_backend(CpuBackend::new())?;
    run_all(&mut trainer, m, &bar)?;
    let params = trainer.params()?;
    let fallback = serde_json::json!({
        "from": "gpu",
        "adapter": adapter,
        "reason": why,
        "resumed_at_step": from_step,
    });
    let cpu = trainer.backend.adapter();
    outputs(
        &job,
        &prep,
        config,
        &tc,
        &mut trainer,
        params,
        &cpu,
        now() - started,
        Some(fallback),
    )
}

fn progress_bar(epochs: u32) -> Result<indicatif::ProgressBar> {
    let bar = indicatif::ProgressBar::new(u64::from(epochs));
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] epoch {pos}/{len} {msg}",
        )
        .map_err(|e| Error::Config(e.to_string()))?
        .progress_chars("=> "),
    );
    Ok(bar)
}

/// Trains until the configured epochs are done, updating the progress bar.
fn run_all<B: Backend>(
    trainer: &mut Trainer<B>,
    m: &CountMatrix,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    while !trainer.finished() {
        let seen = trainer.recoveries.len();
        let done = trainer.step_group(m, GROUP);
        // Each recovery as it happens, also when the run then gives up.
        for r in trainer.recoveries.iter().skip(seen) {
            bar.suspend(|| eprintln!("warning: training diverged at {r}"));
        }
        for r in done?.into_iter().filter_map(|(_, r)| r) {
            bar.set_position(u64::from(r.epoch + 1));
            bar.set_message(format!(
                "elbo {:.1} kl {:.2} w {:.3}",
                r.elbo, r.kl, r.kl_weight
            ));
        }
    }
    bar.finish();
    Ok(())
}

/// Evaluates the trained model and writes the output folder.
#[allow(clippy::too_many_arguments)]
fn outputs<B: Backend>(
    job: &TrainJob,
    prep: &cellvae::pipeline::Prepared,
    config: ModelConfig,
    tc: &TrainConfig,
    trainer: &mut Trainer<B>,
    params: Params,
    adapter: &str,
    seconds: f64,
    fallback: Option<serde_json::Value>,
) -> Result<()> {
    let m = &prep.matrix;
    // latent.tsv: every input cell, in input order.
    let all: Vec<usize> = (0..m.n_cells).collect();
    let (mean, _) = latent(&params, m, &prep.batch_codes, &all);
    let z = config.n_latent;
    write(
        &job.out.join("latent.tsv"),
        latent_tsv(&m.cell_ids, &mean, z).as_bytes(),
    )?;
    if let Some(path) = &job.out_h5ad {
        let settings = serde_json::json!({
            "model": config,
            "training": tc,
            "batch_key": job.batch_key,
        });
        write_h5ad_file(path, m, &mean, z, !job.drop_counts, settings)?;
    }
    let mut csv = String::from("epoch,elbo,reconstruction,kl,kl_weight,seconds\n");
    for r in &trainer.history {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{}",
            r.epoch, r.elbo, r.reconstruction, r.kl, r.kl_weight, r.seconds
        );
    }
    write(&job.out.join("losses.csv"), csv.as_bytes())?;
    let eval_cells = if prep.heldout_cells.is_empty() {
        &prep.train_cells
    } else {
        &prep.heldout_cells
    };
    let metrics = evaluate(
        &params,
        m,
        &prep.batch_codes,
        eval_cells,
        job.eval_samples,
        job.run.seed,
    );
    let knn = prep
        .labels
        .as_ref()
        .and_then(|(codes, _)| knn_accuracy(&mean, z, codes, 15, 5, job.run.seed));
    let mut mj = serde_json::json!({
        "n_cells": m.n_cells,
        "n_genes": m.n_genes,
        "n_train_cells": prep.train_cells.len(),
        "n_heldout_cells": prep.heldout_cells.len(),
        "epochs": trainer.epoch(),
        "backend": trainer.backend.name(),
        "adapter": adapter,
        "seconds": seconds,
        "seconds_per_epoch": seconds / f64::from(trainer.epoch().max(1)),
        "heldout_elbo_per_cell": metrics.elbo_per_cell,
        "heldout_log_px_iw100_per_cell": metrics.log_px_iw_per_cell,
        "heldout_reconstruction_per_cell": metrics.reconstruction_per_cell,
        "kl_per_dim": metrics.kl_per_dim,
        "active_units": metrics.active_units,
        "eval_samples": metrics.n_samples,
        "evaluated_on": if prep.heldout_cells.is_empty() { "training cells (no --holdout-every)" } else { "held-out cells" },
        "recoveries": trainer.recoveries,
        "final_lr": trainer.config.lr,
    });
    if let Some(f) = fallback {
        mj["fallback"] = f;
    }
    if let Some(k) = knn {
        mj["knn15_accuracy"] = serde_json::json!(k);
    }
    write(&job.out.join("metrics.json"), json(&mj)?.as_bytes())?;
    write(
        &job.out.join("model.safetensors"),
        &to_safetensors(&params)?,
    )?;
    write(
        &job.out.join("checkpoint.safetensors"),
        &checkpoint_to_safetensors(&trainer.checkpoint()?)?,
    )?;
    let files = prep.model_files(&config, job.batch_key.clone(), tc);
    write(&job.out.join("config.json"), json(&files)?.as_bytes())?;
    emit(&format!("{}\n", json(&mj)?))?;
    Ok(())
}

/// Recomputes metrics of a saved model on data.
/// A saved model: a folder with `config.json` and `model.safetensors` (as `cellvae
/// train` writes it), or an scvi-tools model (`model.save`'s folder, or its `model.pt`).
pub fn load_model(path: &Path) -> Result<(ModelFiles, Params)> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| Error::Io {
            file: p.display().to_string(),
            source: e,
        })
    };
    let pt = if path.is_file() {
        Some(path.to_path_buf())
    } else {
        let pt = path.join("model.pt");
        (pt.is_file() && !path.join("config.json").is_file()).then_some(pt)
    };
    if let Some(pt) = pt {
        let bytes = read(&pt)?;
        if !cellvae::model::scvi::is_torch_zip(&bytes) {
            return Err(Error::input(
                pt.display().to_string(),
                "is not a model: give the folder `cellvae train --out` wrote, an scvi-tools model folder, or its model.pt",
            ));
        }
        return cellvae::model::scvi::read_scvi_model(&bytes, &pt.display().to_string());
    }
    let cfg_path = path.join("config.json");
    let cfg_name = cfg_path.display().to_string();
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::Io {
        file: cfg_name.clone(),
        source: e,
    })?;
    let st_path = path.join("model.safetensors");
    let bytes = read(&st_path)?;
    read_model(&bytes, &st_path.display().to_string(), &text, &cfg_name)
}

/// The cells of `m` with their latent means (`obsm["X_cellvae"]`) and the settings
/// (`uns["cellvae"]`, JSON) as an .h5ad at `path`; the counts as `X` unless dropped.
pub fn write_h5ad_file(
    path: &Path,
    m: &CountMatrix,
    mean: &[f32],
    z: usize,
    keep_counts: bool,
    settings: serde_json::Value,
) -> Result<()> {
    let bytes = cellvae::data::h5ad_out::write_h5ad(&cellvae::data::h5ad_out::H5adContent {
        matrix: m,
        keep_counts,
        obsm: vec![("X_cellvae", mean, z)],
        uns: vec![("cellvae", json(&settings)?)],
    })?;
    write(path, &bytes)
}

/// latent.tsv: a header (`cell_id`, `z1`..), then each cell's id and latent means.
fn latent_tsv(cell_ids: &[String], mean: &[f32], z: usize) -> String {
    let mut tsv = String::from("cell_id");
    for j in 1..=z {
        let _ = write!(tsv, "\tz{j}");
    }
    tsv.push('\n');
    tsv + &super::encode::latent_rows(cell_ids, mean, z)
}

/// `cellvae export --format scvi-tools`: `out/model.pt` for scvi-tools' `SCVI.load`.
pub fn export_scvi(model: &Path, out: &Path) -> Result<()> {
    let (files, params) = load_model(model)?;
    let bytes = cellvae::model::scvi::write::write_scvi_model(&files, &params)?;
    std::fs::create_dir_all(out).map_err(|e| Error::Io {
        file: out.display().to_string(),
        source: e,
    })?;
    let path = out.join("model.pt");
    write(&path, &bytes)?;
    eprintln!(
        "wrote {} ({} bytes): load it with scvi.model.SCVI.load({:?}, adata=...) on data with the model's {} genes{}",
        path.display(),
        bytes.len(),
        out.display().to_string(),
        files.model.n_genes,
        match &files.batch_key {
            Some(k) => format!(" and its batch column {k}"),
            None => String::new(),
        }
    );
    Ok(())
}

/// `cellvae de`: the model's differential expression between two groups, as CSV.
#[allow(clippy::too_many_arguments)]
pub fn de(
    dir: &Path,
    data: &CountMatrix,
    groupby: &str,
    group1: &str,
    group2: Option<&str>,
    decode_as: &str,
    mut opts: DeOptions,
    out: Option<&Path>,
) -> Result<()> {
    let (files, params) = load_model(dir)?;
    let prep = prepare_for_model(&files, data, None, None)?;
    opts.decode_as = match decode_as {
        "observed" => DecodeAs::Observed,
        "all" => DecodeAs::AllBatches,
        level => match files.batch_levels.iter().position(|l| l == level) {
            Some(k) if files.batch_key.is_some() => DecodeAs::Batch(k as u32),
            _ => {
                return Err(Error::Config(format!(
                    "--decode-as {level}: not observed, all or a batch of the model ({})",
                    if files.batch_key.is_some() {
                        files.batch_levels.join(", ")
                    } else {
                        "it has no batches".to_string()
                    }
                )))
            }
        },
    };
    let m = &prep.matrix;
    let (g1, g2) = groups_by_column(m, &prep.train_cells, groupby, group1, group2)?;
    let t = now();
    let r = differential_expression(&params, m, &prep.batch_codes, &g1, &g2, &opts)?;
    let csv = to_csv(&r, &files.gene_ids, &files.gene_names);
    match out {
        Some(p) => write(p, csv.as_bytes())?,
        None => emit(&csv)?,
    }
    eprintln!(
        "compared {} cells ({group1}) with {} ({}): {} of {} genes called at an expected \
         false discovery rate of {} (|log2 fold change| >= {}), in {:.1} s",
        r.n_cells1,
        r.n_cells2,
        group2.unwrap_or("the rest"),
        r.n_de,
        r.genes.len(),
        opts.fdr_target,
        opts.delta,
        now() - t
    );
    Ok(())
}

pub fn eval(
    dir: &Path,
    data: &CountMatrix,
    holdout_every: Option<usize>,
    label_key: Option<&str>,
    samples: usize,
    seed: u64,
) -> Result<()> {
    let (files, params) = load_model(dir)?;
    // The data's genes in the model's order, the model's batch codes, and the cells
    // with counts in those genes (held out by input position with --holdout-every).
    let prep = prepare_for_model(&files, data, None, holdout_every)?;
    let (m, batch_codes) = (&prep.matrix, &prep.batch_codes);
    let cells = if holdout_every.is_some_and(|k| k > 0) {
        &prep.heldout_cells
    } else {
        &prep.train_cells
    };
    let heldout = holdout_every.is_some_and(|k| k > 0);
    let labels = match label_key {
        Some(key) => {
            let col = m.obs.get(key).ok_or_else(|| {
                Error::Config(format!("--label-key {key}: no such metadata column"))
            })?;
            Some(column_codes(col).0)
        }
        None => None,
    };
    let n_batches = files.model.n_batches.max(1);
    let r = report(
        &params,
        m,
        batch_codes,
        n_batches,
        cells,
        heldout,
        labels.as_deref(),
        samples,
        seed,
    );
    let mj = serde_json::to_value(&r).map_err(|e| Error::Config(format!("eval: {e}")))?;
    emit(&format!("{}\n", json(&mj)?))?;
    Ok(())
}
