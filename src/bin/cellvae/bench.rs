//! `cellvae bench`: figures, not pass/fail. For each data set (the paths given, else the
//! built-in demo and a synthetic wide, dense 3,000 x 4,000 set): seconds per epoch and
//! cells per second of `cellvae train`'s loop, the time of one step split by stage
//! (encoder, decoder, likelihood, backward, optimizer), the step's arithmetic in GFLOP/s
//! against the machine's matrix-product peak measured in the same run, and on the GPU
//! the dispatches per step. `--scaling` adds a series over cells and genes (synthetic
//! data, one child process each, so that each peak memory is its own).

use cellvae::backend::cpu::par;
use cellvae::bench::stages;
use cellvae::data::{synthetic, CountMatrix};
use cellvae::model::{Backend, CpuBackend, GpuBackend, ModelConfig, Params, TrainState};
use cellvae::pipeline::{prepare, PrepareOptions};
use cellvae::train::{TrainConfig, Trainer, GROUP};
use cellvae::{Error, Result};
use std::time::Instant;

/// What `cellvae bench` was asked to do.
pub struct BenchJob {
    /// Data sets to measure (name, matrix); empty: the demo and the wide dense set.
    pub data: Vec<(String, CountMatrix)>,
    pub epochs: u32,
    pub gpu: bool,
    pub scaling: bool,
}

fn now() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

pub fn bench(job: BenchJob) -> Result<()> {
    let peak = cellvae::bench::sgemm_peak_gflops(1024, 4, now);
    println!(
        "# cellvae bench\n\nthreads: {} (CELLVAE_THREADS); matrix-product peak (1024^3 sgemm, \
         the same threads): {peak:.1} GFLOP/s\n",
        par::threads()
    );
    let data = if job.data.is_empty() {
        vec![
            ("demo (pbmc68k_reduced_700)".to_string(), demo()?),
            (
                "synthetic wide dense 3000 x 4000".to_string(),
                synthetic::matrix(3000, 4000, 0.78, 7),
            ),
        ]
    } else {
        job.data
    };
    println!(
        "| data | cells x genes | non-zero | backend | s/epoch | cells/s | step ms | GFLOP/s (share of peak) | encoder | decoder | likelihood | backward | optimizer | dispatches/step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, m) in &data {
        let r = measure(name, m, job.epochs, job.gpu, peak)?;
        println!("{r}");
    }
    if job.scaling {
        scaling(job.epochs)?;
    }
    Ok(())
}

/// The built-in demo, as `cellvae train www/demo/pbmc68k_reduced_700` reads it.
fn demo() -> Result<CountMatrix> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/demo/pbmc68k_reduced_700");
    let files = cellvae::data::load_paths(&[dir])?;
    cellvae::data::read_inputs(&files, None, &Default::default())
}

/// One table row: train `epochs` epochs of scvi-tools' defaults on `m`, then time the
/// stages of a step on the CPU.
fn measure(name: &str, m: &CountMatrix, epochs: u32, gpu: bool, peak: f64) -> Result<String> {
    let prep = prepare(
        m,
        &PrepareOptions {
            holdout_every: Some(10),
            ..Default::default()
        },
    )?;
    let mx = &prep.matrix;
    let config = ModelConfig::scvi_defaults(mx.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(prep.train_cells.len());
    tc.epochs = epochs;
    let params = Params::init(&config, tc.seed)?;
    let state = TrainState::new(params.clone());
    let n_train = prep.train_cells.len();
    let (s_epoch, dispatches) = if gpu {
        let backend = cellvae::block_on(GpuBackend::create())?;
        let (s, backend) = train(backend, &tc, state, &prep)?;
        (s, Some(backend.last_dispatches))
    } else {
        (train(CpuBackend::new(), &tc, state, &prep)?.0, None)
    };
    let st = stages(
        params,
        mx,
        &prep.train_cells,
        &prep.batch_codes,
        tc.batch_size,
        now,
    );
    let nnz = mx.nnz() as f64 / (mx.n_cells * mx.n_genes).max(1) as f64;
    let gflops = st.gflops();
    let ms = |s: f64| format!("{:.1}", s * 1e3);
    Ok(format!(
        "| {name} | {} x {} | {:.0}% | {} | {s_epoch:.3} | {:.0} | {} | {gflops:.1} ({:.0}%) | {} | {} | {} | {} | {} | {} |",
        mx.n_cells,
        mx.n_genes,
        100.0 * nnz,
        if gpu { "gpu" } else { "cpu" },
        n_train as f64 / s_epoch,
        ms(st.step_s()),
        100.0 * gflops / peak,
        ms(st.encoder_s),
        ms(st.decoder_s),
        ms(st.likelihood_s),
        ms(st.backward_s),
        ms(st.optimizer_s),
        dispatches.map_or("-".into(), |d| d.to_string()),
    ))
}

/// Trains `tc.epochs` epochs on `backend`: seconds per epoch (the epochs' own times, as
/// metrics.json has them) and the backend.
fn train<B: Backend>(
    backend: B,
    tc: &TrainConfig,
    state: TrainState,
    prep: &cellvae::pipeline::Prepared,
) -> Result<(f64, B)> {
    let (cells, codes) = (prep.train_cells.clone(), prep.batch_codes.clone());
    let mut t = Trainer::new(backend, tc.clone(), state, cells, codes, now)?;
    while !t.finished() {
        t.step_group(&prep.matrix, GROUP)?;
    }
    let h = &t.history;
    if h.is_empty() {
        return Err(Error::Config("no epoch was trained".into()));
    }
    let s = h.iter().map(|r| r.seconds).sum::<f64>() / h.len() as f64;
    Ok((s, t.backend))
}

/// Seconds per epoch and peak memory over 1k-100k cells and 1k-5k genes (synthetic,
/// droplet-like sparsity), each in a child process (`cellvae bench-one`).
fn scaling(epochs: u32) -> Result<()> {
    println!("\n## Scaling (synthetic, about 8% non-zero; one process each)\n");
    println!("| cells | genes | s/epoch | cells/s | peak memory |");
    println!("|---|---|---|---|---|");
    let exe =
        std::env::current_exe().map_err(|e| Error::Config(format!("cannot find cellvae: {e}")))?;
    for &(cells, genes) in &[
        (1_000, 2_000),
        (10_000, 2_000),
        (100_000, 2_000),
        (10_000, 1_000),
        (10_000, 5_000),
    ] {
        let o = std::process::Command::new(&exe)
            .args([
                "bench-one",
                &cells.to_string(),
                &genes.to_string(),
                &epochs.to_string(),
            ])
            .output()
            .map_err(|e| Error::Config(format!("cannot run cellvae bench-one: {e}")))?;
        let out = String::from_utf8_lossy(&o.stdout);
        if !o.status.success() {
            return Err(Error::Config(format!(
                "bench-one {cells} {genes}: {}",
                String::from_utf8_lossy(&o.stderr)
            )));
        }
        println!("{}", out.trim());
    }
    Ok(())
}

/// `cellvae bench-one CELLS GENES EPOCHS` (hidden): one row of the scaling series.
pub fn bench_one(cells: usize, genes: usize, epochs: u32) -> Result<()> {
    let m = synthetic::matrix(cells, genes, 0.0, 1);
    let prep = prepare(&m, &PrepareOptions::default())?;
    drop(m);
    let config = ModelConfig::scvi_defaults(prep.matrix.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(prep.train_cells.len());
    tc.epochs = epochs;
    let state = TrainState::new(Params::init(&config, tc.seed)?);
    let (s, _) = train(CpuBackend::new(), &tc, state, &prep)?;
    let peak =
        super::encode::peak_rss_bytes().map_or("-".into(), |b| format!("{:.0} MB", b as f64 / 1e6));
    println!(
        "| {cells} | {genes} | {s:.3} | {:.0} | {peak} |",
        prep.train_cells.len() as f64 / s
    );
    Ok(())
}
