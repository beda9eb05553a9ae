//! The computations behind the page's lessons on variational autoencoders (issue 10),
//! native and tested (`tests/teach.rs`), on a model's parameters and a matrix of real
//! cells. A layer above [`crate::model`], [`crate::eval`] and [`crate::explore`], below
//! [`crate::session`] (whose `teach_*` methods run them on the session's data and current
//! parameters). Every result derives `Serialize` for the page; every random draw is
//! keyed ([`crate::rng`]), so a seed gives the same numbers natively and in wasm32.
//!
//! - [`identifiability`]: a rotated copy of the parameters (same decoder, same
//!   log p(x), a different map) (lesson 12).
//! - [`estimators`]: the gradient of E_q[log p(x|z)] w.r.t. the encoder's mean by the
//!   reparameterisation trick and by the score function (lesson 4).
//! - [`mixing`]: a batch-mixing score of the latent means and a simulated batch effect
//!   for the demo (lesson 8, the evaluation panel).
//! - [`aggregate`]: ELBO surgery (mutual information + KL of the aggregate posterior)
//!   and the prior's "holes" (lesson 11).
//! - [`generate`]: the generative story, cells drawn from the model (lesson 2), and
//!   gene-gene correlations of real vs generated cells (lesson 9).
//! - [`likelihoods`]: the data's mean-variance table against the count likelihoods'
//!   variance curves, and a Gaussian on log counts (lesson 6).
//! - [`noise`]: the spread of the training gradient from minibatch sampling and from
//!   z sampling (lesson 5).
//! - [`holes`]: how far decoded points from the prior or a box lie from the decoded
//!   data, for a VAE or a plain autoencoder (lesson 1).
//!
//! Decoding here is always in evaluation mode (batch norm's running statistics, no
//! dropout), as [`crate::explore`] decodes; [`decoder`] adds the decoder's backward to z.

pub mod aggregate;
pub mod decoder;
pub mod estimators;
pub mod generate;
pub mod holes;
pub mod identifiability;
pub mod likelihoods;
pub mod mixing;
pub mod noise;

use crate::error::{Error, Result};
use crate::model::Params;

/// Stream ids of the lessons' random draws (apart from the model's 1..=5 and the
/// encoder's dropout streams `1 + 16 l`).
pub(crate) mod streams {
    /// Reparameterisation vs score function: eps draws.
    pub const ESTIMATORS: u32 = 1001;
    /// Simulated batch effect: batch assignment, per-gene factors, thinning.
    pub const BATCH_EFFECT: u32 = 1002;
    /// Aggregate posterior: posterior and prior draws.
    pub const AGGREGATE: u32 = 1003;
    /// Generated cells: z, library sizes (counts through `backend::cpu::sample`).
    pub const GENERATE: u32 = 1004;
    /// Gaussian on log counts.
    pub const GAUSSIAN: u32 = 1005;
    /// Gradient noise: minibatch choice.
    pub const NOISE: u32 = 1006;
    /// Holes: latent points from the prior or a box.
    pub const HOLES: u32 = 1007;
    /// Identifiability: evaluation draws.
    pub const ROTATION: u32 = 1008;
}

/// Mean and variance (divisor n - 1; 0 for fewer than 2 values) of `v`.
pub(crate) fn mean_var(v: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let (mut n, mut mean, mut m2) = (0usize, 0.0f64, 0.0f64);
    for x in v {
        n += 1;
        let d = x - mean;
        mean += d / n as f64;
        m2 += d * (x - mean);
    }
    (mean, if n > 1 { m2 / (n - 1) as f64 } else { 0.0 })
}

/// Pearson correlation of two equally long series (0 when either is constant).
pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a[..n].iter().zip(&b[..n]) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// The value at quantile `q` (0..=1) of sorted values, linearly interpolated.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}

/// An error unless every cell index is below `n_cells`; `what` names the argument.
pub(crate) fn check_cells(cells: &[usize], n_cells: usize, what: &str) -> Result<()> {
    match cells.iter().find(|&&c| c >= n_cells) {
        Some(&bad) => Err(Error::Config(format!(
            "{what}: cell {bad} does not exist (the data has {n_cells} cells, numbered from 0)"
        ))),
        None => Ok(()),
    }
}

/// An error when `cells` is empty; `what` names the argument.
pub(crate) fn need_cells(cells: &[usize], what: &str) -> Result<()> {
    if cells.is_empty() {
        return Err(Error::Config(format!(
            "{what}: no cells to work on; load data with cells that pass QC"
        )));
    }
    Ok(())
}

/// An error unless `1 <= n <= max`; `what` names the setting.
pub(crate) fn check_count(n: usize, max: usize, what: &str) -> Result<()> {
    if n == 0 || n > max {
        return Err(Error::Config(format!(
            "{what} must be between 1 and {max}, not {n}"
        )));
    }
    Ok(())
}

/// The batch a lesson decodes in: 0, with an error when the model has none (never).
pub(crate) fn check_batch(p: &Params, batch: u32) -> Result<()> {
    if batch as usize >= p.config.n_batches.max(1) {
        return Err(Error::Config(format!(
            "batch {batch} does not exist (the model has {})",
            p.config.n_batches
        )));
    }
    Ok(())
}
