//! Lesson 4, two ways to differentiate an expectation: the gradient of
//! `E_q[log p(x|z)]` with respect to the mean `mu` of q(z|x) = N(mu, diag(sigma^2)) for
//! one cell, estimated from the same N draws `eps ~ N(0, I)`, `z = mu + sigma eps`:
//!
//! - **reparameterisation** (pathwise): `d log p(x|z) / dz` at each z, through the
//!   decoder's backward ([`super::decoder::loglik_grad_z`]; `dz/dmu = I`);
//! - **score function** (REINFORCE): `log p(x|z) * d log q(z|x) / dmu =
//!   log p(x|z) (z - mu) / sigma^2 = log p(x|z) eps / sigma`, with no baseline, and with a
//!   leave-one-out mean baseline `b_s = (sum_t f_t - f_s) / (N - 1)` (subtracting it keeps
//!   the estimator unbiased: `b_s` does not depend on draw s, and `E[eps] = 0`).
//!
//! Both estimate the same gradient; their variances differ by orders of magnitude,
//! because `log p(x|z)` is a large number (hundreds of nats) whose sign carries no
//! information about the direction. The decoder runs in evaluation mode; q is the
//! encoder's (evaluation mode) posterior of the cell.

use super::decoder::{decode, loglik_grad_z};
use super::{mean_var, streams};
use crate::data::CountMatrix;
use crate::error::Result;
use crate::eval::latent;
use crate::model::Params;
use crate::rng::Stream;
use serde::Serialize;

/// One estimator's draws summarised per latent dimension.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EstimatorStats {
    /// Mean over draws of the per-draw gradient estimate, per latent dimension
    /// (nats per unit of mu).
    pub mean_per_dim: Vec<f64>,
    /// Variance over draws (divisor N - 1) of the per-draw estimate, per dimension.
    pub variance_per_dim: Vec<f64>,
    /// Standard error of the mean, `sqrt(variance / N)`, per dimension.
    pub standard_error_per_dim: Vec<f64>,
    /// Sum of the variances over dimensions (the trace of the covariance).
    pub total_variance: f64,
}

impl EstimatorStats {
    fn from_draws(d: &[f64], n: usize, z: usize) -> EstimatorStats {
        let mut mean_per_dim = Vec::with_capacity(z);
        let mut variance_per_dim = Vec::with_capacity(z);
        for j in 0..z {
            let (m, v) = mean_var((0..n).map(|s| d[s * z + j]));
            mean_per_dim.push(m);
            variance_per_dim.push(v);
        }
        EstimatorStats {
            standard_error_per_dim: variance_per_dim
                .iter()
                .map(|v| (v / n.max(1) as f64).sqrt())
                .collect(),
            total_variance: variance_per_dim.iter().sum(),
            mean_per_dim,
            variance_per_dim,
        }
    }
}

/// The two estimators of `d E_q[log p(x|z)] / d mu` for one cell.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GradientEstimators {
    /// The cell (row of the data).
    pub cell: usize,
    /// N: draws of eps.
    pub n_draws: usize,
    /// The cell's posterior mean mu (Z).
    pub mu: Vec<f32>,
    /// The cell's posterior standard deviation sigma (Z).
    pub sigma: Vec<f32>,
    /// The first draws of eps, row-major n_shown x Z (for the animation).
    pub eps_shown: Vec<f32>,
    /// The same draws' z = mu + sigma eps, n_shown x Z.
    pub z_shown: Vec<f32>,
    /// log p(x|z) of the shown draws, nats.
    pub loglik_shown_nats: Vec<f32>,
    /// n_shown: draws in the `*_shown` fields.
    pub n_shown: usize,
    /// Mean of log p(x|z) over the draws, nats (the reconstruction term).
    pub mean_loglik_nats: f64,
    /// Standard deviation of log p(x|z) over the draws, nats.
    pub sd_loglik_nats: f64,
    /// Reparameterisation: d log p(x|z)/dz per draw.
    pub reparameterization: EstimatorStats,
    /// Score function without a baseline: log p(x|z) eps / sigma per draw.
    pub score_function: EstimatorStats,
    /// Score function with the leave-one-out mean baseline.
    pub score_function_baseline: EstimatorStats,
}

/// Both estimators for cell `cell` of `m` (batch codes `batch_codes`) from `n_draws`
/// seeded draws; the first `n_shown` draws are returned for the page's animation.
pub fn gradient_estimators(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cell: usize,
    n_draws: usize,
    n_shown: usize,
    seed: u64,
) -> Result<GradientEstimators> {
    super::check_cells(&[cell], m.n_cells, "reparameterisation lesson")?;
    super::check_count(n_draws, 100_000, "draws of eps")?;
    let z = params.config.n_latent;
    let (mu, var) = latent(params, m, batch_codes, &[cell]);
    let sigma: Vec<f32> = var.iter().map(|v| v.sqrt()).collect();
    let batch = batch_codes.get(cell).copied().unwrap_or(0);
    super::check_batch(params, batch)?;
    let stream = Stream::new(seed, streams::ESTIMATORS);
    let eps: Vec<f32> = (0..n_draws * z)
        .map(|i| stream.normal(0, i as u32))
        .collect();
    let zs: Vec<f32> = eps
        .iter()
        .enumerate()
        .map(|(i, &e)| mu[i % z] + sigma[i % z] * e)
        .collect();
    let row = m.dense_row(cell);
    let library: f32 = row.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
    let mut ll = Vec::with_capacity(n_draws);
    let mut dz = Vec::with_capacity(n_draws * z);
    // Chunks of draws keep the decoder's buffers small.
    for chunk in zs.chunks(256 * z) {
        let b = chunk.len() / z;
        let batches = vec![batch; b];
        let counts: Vec<f32> = (0..b).flat_map(|_| row.iter().copied()).collect();
        let pass = decode(params, chunk, &batches);
        let (l, d) = loglik_grad_z(params, &pass, &batches, &counts, &vec![library; b]);
        ll.extend(l);
        dz.extend(d);
    }
    let f: Vec<f64> = ll.iter().map(|&v| f64::from(v)).collect();
    let sum_f: f64 = f.iter().sum();
    let (mean_f, var_f) = mean_var(f.iter().copied());
    let mut rep = Vec::with_capacity(n_draws * z);
    let mut score = Vec::with_capacity(n_draws * z);
    let mut score_b = Vec::with_capacity(n_draws * z);
    for (s, &fs) in f.iter().enumerate() {
        let baseline = if n_draws > 1 {
            (sum_f - fs) / (n_draws - 1) as f64
        } else {
            0.0
        };
        for (j, &sd) in sigma.iter().enumerate() {
            let i = s * z + j;
            rep.push(f64::from(dz[i]));
            let sc = f64::from(eps[i]) / f64::from(sd);
            score.push(fs * sc);
            score_b.push((fs - baseline) * sc);
        }
    }
    let shown = n_shown.min(n_draws);
    Ok(GradientEstimators {
        cell,
        n_draws,
        mu,
        sigma,
        eps_shown: eps[..shown * z].to_vec(),
        z_shown: zs[..shown * z].to_vec(),
        loglik_shown_nats: ll[..shown].to_vec(),
        n_shown: shown,
        mean_loglik_nats: mean_f,
        sd_loglik_nats: var_f.sqrt(),
        reparameterization: EstimatorStats::from_draws(&rep, n_draws, z),
        score_function: EstimatorStats::from_draws(&score, n_draws, z),
        score_function_baseline: EstimatorStats::from_draws(&score_b, n_draws, z),
    })
}
