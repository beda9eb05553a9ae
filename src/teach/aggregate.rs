//! Lesson 11, the aggregate posterior against the prior: ELBO surgery (Hoffman and
//! Johnson 2016, "ELBO surgery: yet another way to carve up the variational evidence
//! lower bound"). Over N cells with posteriors q(z|x_n) and the aggregate posterior
//! `q(z) = 1/N sum_n q(z|x_n)`:
//!
//! ```text
//! 1/N sum_n KL(q(z|x_n) || p(z))  =  I_q(x; z)  +  KL(q(z) || p(z))
//! ```
//!
//! with `I_q(x; z) = E_{n, z ~ q(z|x_n)}[log q(z|x_n) - log q(z)]` the mutual information
//! between the cell index and z under q. The left side is in closed form. The right side
//! is estimated from M draws z ~ q(z|x_n) per cell with the **full mixture density**
//! log q(z) (a log-sum-exp over all N posteriors): for this finite set of cells the
//! estimates are unbiased, their only error Monte Carlo (reported as standard errors
//! treating the N M draws as independent, which slightly overstates them: the draws
//! are stratified by cell). As estimates of the population quantities they are biased:
//! q(z) of N cells is lumpier than the population's, so `I <= ln N` (a draw's own
//! component alone gives `q(z) >= q(z|x_n) / N`) and KL(q(z) || p(z)) is overstated.
//!
//! **Holes**: prior draws z ~ N(0, I) ranked by log q(z): those where the aggregate
//! posterior puts (almost) no cell are points the decoder was never trained on.

use super::{mean_var, streams};
use crate::data::CountMatrix;
use crate::error::Result;
use crate::eval::latent;
use crate::model::Params;
use crate::rng::Stream;
use serde::Serialize;

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// One prior draw and its densities.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PriorDraw {
    /// The latent point (Z).
    pub z: Vec<f32>,
    /// log q(z) under the aggregate posterior, nats.
    pub log_q_aggregate: f64,
    /// log p(z) under the prior N(0, I), nats.
    pub log_prior: f64,
}

/// The ELBO-surgery decomposition and the prior's holes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AggregatePosterior {
    /// N: cells in the mixture.
    pub n_cells: usize,
    /// M: draws per cell.
    pub draws_per_cell: usize,
    /// 1/N sum_n KL(q(z|x_n) || p(z)), closed form, nats per cell.
    pub mean_kl_nats: f64,
    /// I_q(x; z), Monte Carlo, nats.
    pub mutual_information_nats: f64,
    /// Its standard error.
    pub mutual_information_se_nats: f64,
    /// KL(q(z) || p(z)), Monte Carlo, nats.
    pub kl_aggregate_prior_nats: f64,
    /// Its standard error.
    pub kl_aggregate_prior_se_nats: f64,
    /// mutual information + KL(q(z) || p(z)): the Monte Carlo estimate of the mean KL.
    pub sum_of_parts_nats: f64,
    /// Standard error of the sum (same draws, so not the root sum of squares).
    pub sum_of_parts_se_nats: f64,
    /// ln N: the largest mutual information N cells allow.
    pub log_n_cells: f64,
    /// Prior draws scored.
    pub n_prior_draws: usize,
    /// Fraction of prior draws with log q(z) below the 1% quantile of log q(z) at the
    /// posterior draws ("in a hole").
    pub prior_fraction_in_holes: f64,
    /// The 1% quantile of log q(z) at the posterior draws (the holes' threshold), nats.
    pub hole_threshold_log_q: f64,
    /// The prior draws with the lowest log q(z), lowest first.
    pub holes: Vec<PriorDraw>,
}

/// ELBO surgery over `cells` with `draws_per_cell` posterior draws each, and
/// `n_prior` prior draws of which the `n_holes` least covered are returned.
#[allow(clippy::too_many_arguments)]
pub fn aggregate_posterior(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    draws_per_cell: usize,
    n_prior: usize,
    n_holes: usize,
    seed: u64,
) -> Result<AggregatePosterior> {
    super::need_cells(cells, "aggregate posterior")?;
    super::check_cells(cells, m.n_cells, "aggregate posterior")?;
    super::check_count(draws_per_cell, 1000, "draws per cell")?;
    super::check_count(n_prior, 1_000_000, "prior draws")?;
    let zd = params.config.n_latent;
    let n = cells.len();
    let (mean, var) = latent(params, m, batch_codes, cells);
    let mu: Vec<f64> = mean.iter().map(|&v| f64::from(v)).collect();
    let inv_v: Vec<f64> = var.iter().map(|&v| 1.0 / f64::from(v)).collect();
    // Per cell: -0.5 sum_j ln(2 pi v_j).
    let norm: Vec<f64> = (0..n)
        .map(|c| {
            -0.5 * (0..zd)
                .map(|j| LN_2PI + f64::from(var[c * zd + j]).ln())
                .sum::<f64>()
        })
        .collect();
    let ln_n = (n as f64).ln();
    let mut terms = vec![0.0f64; n];
    let log_q = |z: &[f64], terms: &mut [f64]| -> f64 {
        let mut mx = f64::NEG_INFINITY;
        for (c, t) in terms.iter_mut().enumerate() {
            let mut q = norm[c];
            for j in 0..zd {
                let d = z[j] - mu[c * zd + j];
                q -= 0.5 * d * d * inv_v[c * zd + j];
            }
            *t = q;
            mx = mx.max(q);
        }
        mx + terms.iter().map(|&t| (t - mx).exp()).sum::<f64>().ln() - ln_n
    };
    let log_p = |z: &[f64]| -> f64 { z.iter().map(|&v| -0.5 * (v * v + LN_2PI)).sum() };
    let mean_kl = (0..n)
        .map(|c| {
            (0..zd)
                .map(|j| {
                    let (m, v) = (mu[c * zd + j], f64::from(var[c * zd + j]));
                    0.5 * (v + m * m - 1.0 - v.ln())
                })
                .sum::<f64>()
        })
        .sum::<f64>()
        / n as f64;
    let s = Stream::new(seed, streams::AGGREGATE);
    let mut mi = Vec::with_capacity(n * draws_per_cell);
    let mut kl = Vec::with_capacity(n * draws_per_cell);
    let mut at_posterior = Vec::with_capacity(n * draws_per_cell);
    let mut z = vec![0.0f64; zd];
    for c in 0..n {
        for d in 0..draws_per_cell {
            let mut lq_own = norm[c];
            for (j, zj) in z.iter_mut().enumerate() {
                let eps = f64::from(s.normal(d as u32, (c * zd + j) as u32));
                *zj = mu[c * zd + j] + (1.0 / inv_v[c * zd + j]).sqrt() * eps;
                lq_own -= 0.5 * eps * eps;
            }
            let lq = log_q(&z, &mut terms);
            at_posterior.push(lq);
            mi.push(lq_own - lq);
            kl.push(lq - log_p(&z));
        }
    }
    at_posterior.sort_by(f64::total_cmp);
    let threshold = super::quantile_sorted(&at_posterior, 0.01);
    let nd = mi.len() as f64;
    let (mi_mean, mi_var) = mean_var(mi.iter().copied());
    let (kl_mean, kl_var) = mean_var(kl.iter().copied());
    let (sum_mean, sum_var) = mean_var(mi.iter().zip(&kl).map(|(a, b)| a + b));
    let mut prior: Vec<PriorDraw> = Vec::with_capacity(n_prior);
    for i in 0..n_prior {
        let zf: Vec<f32> = (0..zd)
            .map(|j| s.normal(u32::MAX, (i * zd + j) as u32))
            .collect();
        let zz: Vec<f64> = zf.iter().map(|&v| f64::from(v)).collect();
        prior.push(PriorDraw {
            log_q_aggregate: log_q(&zz, &mut terms),
            log_prior: log_p(&zz),
            z: zf,
        });
    }
    let in_holes = prior
        .iter()
        .filter(|p| p.log_q_aggregate < threshold)
        .count();
    prior.sort_by(|a, b| a.log_q_aggregate.total_cmp(&b.log_q_aggregate));
    prior.truncate(n_holes);
    Ok(AggregatePosterior {
        n_cells: n,
        draws_per_cell,
        mean_kl_nats: mean_kl,
        mutual_information_nats: mi_mean,
        mutual_information_se_nats: (mi_var / nd).sqrt(),
        kl_aggregate_prior_nats: kl_mean,
        kl_aggregate_prior_se_nats: (kl_var / nd).sqrt(),
        sum_of_parts_nats: sum_mean,
        sum_of_parts_se_nats: (sum_var / nd).sqrt(),
        log_n_cells: ln_n,
        n_prior_draws: n_prior,
        prior_fraction_in_holes: in_holes as f64 / n_prior as f64,
        hole_threshold_log_q: threshold,
        holes: prior,
    })
}
