//! Lesson 5, two sources of noise in the training gradient: which cells are in the
//! minibatch, and which z each cell draws. The gradient is the training loss's
//! (`-ELBO` per cell, KL weight 1) with respect to **every parameter**, from
//! [`CpuModel::forward_backward`] (batch norm on the minibatch's statistics, as in
//! training), on a copy of the model with **dropout off**, so the only randomness is
//! the two sources studied. The decoder's part alone (its hidden layers and heads,
//! not the dispersions) is reported too.
//!
//! - Minibatch noise, per minibatch size B: R random minibatches of B training cells
//!   (seeded draws without replacement), each with the same reparameterisation noise
//!   (the same seed and step: the row at each position of the minibatch draws the same
//!   eps every time).
//! - Monte Carlo noise, per number of z samples S: one fixed minibatch of B cells, each
//!   cell repeated S times (so the loss averages S draws per cell; repeating every row
//!   S times leaves the encoder's batch statistics unchanged, the decoder's are over
//!   the B S draws), R repeats with fresh draws.
//!
//! The spread is the trace of the covariance of the R gradient vectors (the sum over
//! parameters of the variance over repeats, divisor R - 1): an estimate of the expected
//! squared distance of one step's gradient from the gradient it estimates.

use super::streams;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::cpu_model::{CpuModel, Workspace};
use crate::model::{Minibatch, Params};
use crate::rng::shuffle;
use serde::Serialize;
use std::ops::Range;

/// The spread of the gradient in one setting.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NoiseSetting {
    /// B: cells per minibatch.
    pub batch_size: usize,
    /// S: z samples per cell.
    pub z_samples: usize,
    /// R: repeats.
    pub repeats: usize,
    /// Trace of the covariance of the gradient over all parameters.
    pub trace_cov_all_params: f64,
    /// Trace of the covariance over the decoder's parameters.
    pub trace_cov_decoder: f64,
    /// Squared norm of the mean gradient over all parameters (the signal).
    pub mean_grad_sq_norm_all_params: f64,
}

/// Both sources' spreads.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GradientNoise {
    /// Parameters in the gradient.
    pub n_params: usize,
    /// Parameters of the decoder.
    pub n_params_decoder: usize,
    /// Minibatch noise (fixed eps), one setting per minibatch size, S = 1.
    pub minibatch: Vec<NoiseSetting>,
    /// Monte Carlo noise (fixed minibatch), one setting per number of z samples.
    pub monte_carlo: Vec<NoiseSetting>,
    /// Cells of the fixed minibatch of the Monte Carlo settings.
    pub monte_carlo_batch_size: usize,
}

/// Accumulates gradient vectors (Welford per element).
struct Spread {
    n: usize,
    mean: Vec<f64>,
    m2: Vec<f64>,
}

impl Spread {
    fn new(len: usize) -> Spread {
        Spread {
            n: 0,
            mean: vec![0.0; len],
            m2: vec![0.0; len],
        }
    }

    fn add(&mut self, g: &[f32]) {
        self.n += 1;
        let n = self.n as f64;
        for ((m, s), &x) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(g) {
            let x = f64::from(x);
            let d = x - *m;
            *m += d / n;
            *s += d * (x - *m);
        }
    }

    fn trace(&self, ranges: &[Range<usize>]) -> f64 {
        let div = (self.n.max(2) - 1) as f64;
        ranges
            .iter()
            .map(|r| self.m2[r.clone()].iter().sum::<f64>() / div)
            .sum()
    }

    fn setting(&self, b: usize, s: usize, decoder: &[Range<usize>]) -> NoiseSetting {
        let all = std::iter::once(0..self.mean.len()).collect::<Vec<_>>();
        NoiseSetting {
            batch_size: b,
            z_samples: s,
            repeats: self.n,
            trace_cov_all_params: self.trace(&all),
            trace_cov_decoder: self.trace(decoder),
            mean_grad_sq_norm_all_params: self.mean.iter().map(|v| v * v).sum(),
        }
    }
}

/// The decoder's parameter ranges (hidden layers, batch norm, heads).
fn decoder_ranges(p: &Params) -> Vec<Range<usize>> {
    let lay = &p.layout;
    let mut out = Vec::new();
    for l in lay
        .decoder
        .iter()
        .chain([&lay.scale])
        .chain(lay.dropout.iter())
    {
        out.push(l.weight.clone());
        out.push(l.bias.clone());
        if let Some((g, b)) = &l.bn {
            out.push(g.clone());
            out.push(b.clone());
        }
    }
    out
}

/// The spreads for minibatch sizes `batch_sizes` (fixed eps) and for `z_samples`
/// samples per cell on a fixed minibatch of `mc_batch_size` cells, `repeats` each, over
/// `train_cells` of `m`.
#[allow(clippy::too_many_arguments)]
pub fn gradient_noise(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    train_cells: &[usize],
    batch_sizes: &[usize],
    z_samples: &[usize],
    mc_batch_size: usize,
    repeats: usize,
    seed: u64,
) -> Result<GradientNoise> {
    super::need_cells(train_cells, "gradient noise")?;
    super::check_cells(train_cells, m.n_cells, "gradient noise")?;
    super::check_count(repeats, 1000, "repeats")?;
    let n = train_cells.len();
    if repeats < 2 {
        return Err(Error::Config(
            "gradient noise: repeats must be at least 2 to measure a spread".into(),
        ));
    }
    for &b in batch_sizes.iter().chain([&mc_batch_size]) {
        if b < 2 || b > n {
            return Err(Error::Config(format!(
                "gradient noise: a minibatch size must be between 2 and the {n} training cells, not {b}"
            )));
        }
    }
    for &s in z_samples {
        super::check_count(s, 256, "z samples per cell")?;
    }
    let mut p = params.clone();
    p.config.dropout_rate = 0.0;
    let decoder = decoder_ranges(&p);
    let mut ws = Workspace::default();
    let mut mb = Minibatch::default();
    let nseed = seed ^ (u64::from(streams::NOISE) << 40);
    let mut grad = |p: &mut Params, rows: &[usize], step: u32| -> Result<Vec<f32>> {
        mb.gather_into(m, batch_codes, rows);
        mb.check_batches(p.config.n_batches)?;
        CpuModel::forward_backward(p, &mut ws, &mb, seed, step, 1.0);
        Ok(ws.grads[..p.layout.n_params].to_vec())
    };
    let mut minibatch = Vec::new();
    for &b in batch_sizes {
        let mut spread = Spread::new(p.layout.n_params);
        for r in 0..repeats {
            let order = shuffle(nseed, r as u32, n);
            let rows: Vec<usize> = order[..b]
                .iter()
                .map(|&o| train_cells[o as usize])
                .collect();
            spread.add(&grad(&mut p, &rows, 0)?);
        }
        minibatch.push(spread.setting(b, 1, &decoder));
    }
    let fixed: Vec<usize> = shuffle(nseed, u32::MAX, n)[..mc_batch_size]
        .iter()
        .map(|&o| train_cells[o as usize])
        .collect();
    let mut monte_carlo = Vec::new();
    for &s in z_samples {
        let rows: Vec<usize> = fixed
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, s))
            .collect();
        let mut spread = Spread::new(p.layout.n_params);
        for r in 0..repeats {
            spread.add(&grad(&mut p, &rows, 1 + r as u32)?);
        }
        monte_carlo.push(spread.setting(mc_batch_size, s, &decoder));
    }
    Ok(GradientNoise {
        n_params: p.layout.n_params,
        n_params_decoder: decoder.iter().map(|r| r.len()).sum(),
        minibatch,
        monte_carlo,
        monte_carlo_batch_size: mc_batch_size,
    })
}
