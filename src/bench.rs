//! A training step timed by stage, on the CPU kernels: what `cellvae bench` prints natively
//! and what the page's `bench_step` hook measures in its worker (wasm), so the two
//! figures come from one piece of code. Figures, not pass/fail: the clock is the
//! caller's (`Instant` natively, `performance.now()` in the browser), in seconds.

use crate::backend::cpu::counts::CountScratch;
use crate::backend::cpu::{adam, linear, nb_loglik, par};
use crate::data::CountMatrix;
use crate::model::cpu_model::{CpuModel, Mode, Workspace};
use crate::model::{Minibatch, ModelConfig, Params};
use crate::pipeline::{prepare, PrepareOptions};
use crate::train::TrainConfig;
use crate::Result;

/// The shortest batch of calls timed.
const MIN_BATCH_S: f64 = 0.01;

/// Seconds of one step's stages (best of several), and the step's floating-point work.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Stages {
    /// The encoder's forward pass (first layer, batch norm, ReLU, mean and variance heads,
    /// the draw of z).
    pub encoder_s: f64,
    /// The decoder's forward pass (layers, softmax of the proportions).
    pub decoder_s: f64,
    /// The NB log-likelihood and its gradient on one minibatch.
    pub likelihood_s: f64,
    /// The rest of forward + backward: the backward products, batch norm, the KL.
    pub backward_s: f64,
    /// One Adam step over every parameter.
    pub optimizer_s: f64,
    /// Forward + backward, measured whole.
    pub forward_backward_s: f64,
    /// Floating-point operations of the step's matrix products (dense equivalent).
    pub flops: f64,
    /// Cells in the minibatch.
    pub batch_cells: usize,
    /// Threads the kernels ran on.
    pub threads: usize,
}

impl Stages {
    /// A whole step: forward, backward and the optimizer.
    pub fn step_s(&self) -> f64 {
        self.forward_backward_s + self.optimizer_s
    }
    /// The step's matrix-product arithmetic over its forward and backward time.
    pub fn gflops(&self) -> f64 {
        self.flops / self.forward_backward_s.max(1e-12) / 1e9
    }
}

/// Multiply-adds of one training step of `p` on `b` cells (dense equivalent), times two:
/// each linear layer's forward, its input gradient (not the first layer's) and its
/// weight gradient.
pub fn step_flops(p: &Params, b: usize) -> f64 {
    let mut macs = 0.0;
    let mut first = true;
    for t in &p.layout.tensors {
        if !t.name.ends_with(".weight") || t.name.contains(".bn.") {
            continue;
        }
        let passes = if first && t.name.starts_with("encoder") {
            2.0
        } else {
            3.0
        };
        if t.name.starts_with("encoder") {
            first = false;
        }
        macs += passes * (t.len() * b) as f64;
    }
    2.0 * macs
}

/// GFLOP/s of an `n` x `n` x `n` product on the kernels' threads, best of `reps`.
pub fn sgemm_peak_gflops(n: usize, reps: usize, clock: fn() -> f64) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let bias = vec![0.0f32; n];
    let mut y = vec![0.0f32; n * n];
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let t = clock();
        linear::forward(&a, &w, &bias, n, n, n, &mut y);
        best = best.min(clock() - t);
    }
    2.0 * (n * n * n) as f64 / best.max(1e-12) / 1e9
}

/// The stages of a step of scvi-tools' default model on `m` (prepared as `cellvae
/// train` prepares it: every 10th cell held out), on the first minibatch of training
/// cells, from freshly initialised parameters.
pub fn step_stages(m: &CountMatrix, clock: fn() -> f64) -> Result<Stages> {
    let prep = prepare(
        m,
        &PrepareOptions {
            holdout_every: Some(10),
            ..Default::default()
        },
    )?;
    let config = ModelConfig::scvi_defaults(prep.matrix.n_genes, 1);
    let tc = TrainConfig::scvi_defaults(prep.train_cells.len());
    let params = Params::init(&config, tc.seed)?;
    Ok(stages(
        params,
        &prep.matrix,
        &prep.train_cells,
        &prep.batch_codes,
        tc.batch_size,
        clock,
    ))
}

/// The stages of a step of `p` on the first `batch` of `cells` of `m`.
pub fn stages(
    mut p: Params,
    m: &CountMatrix,
    cells: &[usize],
    codes: &[u32],
    batch: usize,
    clock: fn() -> f64,
) -> Stages {
    let rows: Vec<usize> = cells.iter().copied().take(batch).collect();
    let mb = Minibatch::gather(m, codes, &rows);
    let b = mb.n_rows;
    let mut ws = Workspace::default();
    let mode = Mode::Train { seed: 0, step: 0 };
    // Best of five batches of calls, each batch at least MIN_BATCH_S long so that a coarse
    // clock (the browser's is 0.1 ms where the page is not cross-origin isolated) still
    // resolves it; the first call sizes the batches.
    let best = |f: &mut dyn FnMut()| {
        let t = clock();
        f();
        let once = (clock() - t).max(1e-6);
        let reps = ((MIN_BATCH_S / once).ceil() as usize).clamp(1, 1000);
        let mut t_best = f64::INFINITY;
        for _ in 0..5 {
            let t = clock();
            for _ in 0..reps {
                f();
            }
            t_best = t_best.min((clock() - t) / reps as f64);
        }
        t_best
    };
    let total = best(&mut || {
        CpuModel::forward_backward(&mut p, &mut ws, &mb, 0, 0, 1.0);
    });
    let encoder = best(&mut || CpuModel::encode(&mut p, &mut ws, &mb, mode));
    let decoder = best(&mut || CpuModel::decode(&mut p, &mut ws, &mb.batch, b, mode));
    let g = mb.n_genes;
    let lt = p.values[p.layout.log_theta.clone()].to_vec();
    let (rows0, w) = (vec![0u32; b], vec![-1.0 / b as f32; b]);
    let (mut ll, mut dl, mut dt) = (vec![0.0; b], vec![0.0; b * g], vec![0.0; lt.len()]);
    let rho = ws.rho[..b * g].to_vec();
    let mut scratch = CountScratch::default();
    let likelihood = best(&mut || {
        nb_loglik::forward_backward_with(
            &mb.counts,
            &mb.library,
            &rho,
            &lt,
            &rows0,
            &w,
            b,
            g,
            &mut ll,
            &mut dl,
            &mut dt,
            &mut scratch,
        )
    });
    let n = p.values.len();
    let (mut am, mut av) = (vec![0.0; n], vec![0.0; n]);
    let grads = ws.grads[..n].to_vec();
    let optimizer = best(&mut || {
        adam::step(
            &mut p.values,
            &grads,
            &mut am,
            &mut av,
            1e-3,
            0.9,
            0.999,
            1e-8,
            1e-6,
            1,
        );
    });
    Stages {
        encoder_s: encoder,
        decoder_s: decoder,
        likelihood_s: likelihood,
        backward_s: (total - encoder - decoder - likelihood).max(0.0),
        optimizer_s: optimizer,
        forward_backward_s: total,
        flops: step_flops(&p, b),
        batch_cells: b,
        threads: par::threads(),
    }
}
