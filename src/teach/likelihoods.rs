//! Lesson 6, which count likelihood: the data's per-gene mean and variance (the page's
//! scatter) against each likelihood's variance as a function of the mean:
//!
//! - Poisson: `var = mu`;
//! - negative binomial: `var = mu + mu^2 / theta`, with the model's median dispersion
//!   theta over genes (every gene's theta is returned too; with dispersion per gene and
//!   batch, the first batch's row);
//! - zero-inflated NB with dropout probability pi, as a function of its mean
//!   `m = (1 - pi) mu`: `var = (1 - pi)(mu + mu^2 / theta) + pi (1 - pi) mu^2`. pi is the
//!   model's median dropout probability over cells and genes (decoded at the latent
//!   means) for a ZINB model, else an illustrative 0.1 (`zinb_dropout_source` says which).
//!
//! And the contrast: a Gaussian on `log1p` counts per gene (mean and sd of `log1p x`
//! over the cells), with draws back-transformed by `expm1`: they are not integers, and
//! a draw below 0 on the log scale is a negative count.

use super::decoder::decode;
use super::{quantile_sorted, streams};
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::eval::latent;
use crate::model::{Likelihood, Params};
use crate::rng::Stream;
use serde::Serialize;

/// A Gaussian fitted to one gene's log1p counts and draws from it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GaussianGene {
    /// The gene (index into the model's genes).
    pub gene: usize,
    /// Its name.
    pub name: String,
    /// Mean of log1p(count) over the cells.
    pub log1p_mean: f64,
    /// Standard deviation of log1p(count).
    pub log1p_sd: f64,
    /// Draws on the log1p scale.
    pub samples_log1p: Vec<f32>,
    /// The same draws back-transformed, expm1 (the "counts" the Gaussian implies).
    pub samples_counts: Vec<f32>,
    /// Fraction of draws below 0 on the log1p scale (negative counts).
    pub fraction_negative: f64,
    /// Fraction of back-transformed draws that are not integers.
    pub fraction_non_integer: f64,
}

/// The data's mean-variance relation and each likelihood's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CountVariance {
    /// Cells the gene moments are over.
    pub n_cells: usize,
    /// Gene names, G.
    pub gene_names: Vec<String>,
    /// Mean count per gene, G.
    pub gene_mean: Vec<f32>,
    /// Variance of the counts per gene (divisor n - 1), G.
    pub gene_variance: Vec<f32>,
    /// The curves' means: 60 points log-spaced over the genes' positive means.
    pub curve_mean: Vec<f64>,
    /// Poisson variance at `curve_mean`.
    pub poisson_variance: Vec<f64>,
    /// NB variance at `curve_mean` with `theta_median`.
    pub nb_variance: Vec<f64>,
    /// ZINB variance at `curve_mean` (its mean) with `theta_median` and
    /// `zinb_dropout_probability`.
    pub zinb_variance: Vec<f64>,
    /// The model's median theta over genes (inverse dispersion; a Poisson model's is
    /// its unused initial value).
    pub theta_median: f64,
    /// The model's theta per gene (first row), G.
    pub theta_per_gene: Vec<f32>,
    /// The dropout probability of the ZINB curve.
    pub zinb_dropout_probability: f64,
    /// `"model"` (a ZINB model's median) or `"illustrative"` (0.1).
    pub zinb_dropout_source: String,
    /// The model's likelihood.
    pub model_likelihood: Likelihood,
    /// Gaussians on log1p counts of the chosen genes.
    pub gaussian: Vec<GaussianGene>,
}

/// The mean-variance table over `cells`, the curves, and Gaussians for `genes` (empty:
/// the 5 genes with the highest mean) with `n_samples` draws each.
pub fn count_variance(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    genes: &[usize],
    n_samples: usize,
    seed: u64,
) -> Result<CountVariance> {
    super::need_cells(cells, "mean-variance table")?;
    super::check_cells(cells, m.n_cells, "mean-variance table")?;
    super::check_count(n_samples, 100_000, "Gaussian draws")?;
    let g = m.n_genes;
    if params.config.n_genes != g {
        return Err(Error::Config(format!(
            "mean-variance table: the model has {} genes, the data {g}",
            params.config.n_genes
        )));
    }
    if let Some(&bad) = genes.iter().find(|&&j| j >= g) {
        return Err(Error::Config(format!(
            "mean-variance table: gene {bad} does not exist (the model has {g})"
        )));
    }
    let n = cells.len() as f64;
    let (mut s1, mut s2, mut l1, mut l2) = (
        vec![0.0f64; g],
        vec![0.0f64; g],
        vec![0.0f64; g],
        vec![0.0f64; g],
    );
    for &c in cells {
        let (idx, val) = m.row(c);
        for (&j, &v) in idx.iter().zip(val) {
            let (v, j) = (f64::from(v), j as usize);
            s1[j] += v;
            s2[j] += v * v;
            let l = v.ln_1p();
            l1[j] += l;
            l2[j] += l * l;
        }
    }
    let var = |s1: f64, s2: f64| {
        if n > 1.0 {
            ((s2 - s1 * s1 / n) / (n - 1.0)).max(0.0)
        } else {
            0.0
        }
    };
    let gene_mean: Vec<f32> = s1.iter().map(|&s| (s / n) as f32).collect();
    let gene_variance: Vec<f32> = (0..g).map(|j| var(s1[j], s2[j]) as f32).collect();
    let lt = &params.values[params.layout.log_theta.clone()];
    let theta_per_gene: Vec<f32> = lt[..g].iter().map(|v| v.exp()).collect();
    let mut sorted: Vec<f64> = lt.iter().map(|&v| f64::from(v).exp()).collect();
    sorted.sort_by(f64::total_cmp);
    let theta = quantile_sorted(&sorted, 0.5);
    let (pi, source) = if params.config.likelihood == Likelihood::Zinb {
        let (mean, _) = latent(params, m, batch_codes, cells);
        let batch: Vec<u32> = cells
            .iter()
            .map(|&c| batch_codes.get(c).copied().unwrap_or(0))
            .collect();
        let pass = decode(params, &mean, &batch);
        let mut p: Vec<f64> = pass
            .pi
            .iter()
            .map(|&v| 1.0 / (1.0 + (-f64::from(v)).exp()))
            .collect();
        p.sort_by(f64::total_cmp);
        (quantile_sorted(&p, 0.5), "model")
    } else {
        (0.1, "illustrative")
    };
    let positive: Vec<f64> = gene_mean
        .iter()
        .map(|&v| f64::from(v))
        .filter(|&v| v > 0.0)
        .collect();
    let lo = positive.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = positive.iter().cloned().fold(0.0, f64::max);
    let curve_mean: Vec<f64> = if positive.is_empty() {
        Vec::new()
    } else {
        (0..60)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / 59.0).exp())
            .collect()
    };
    let nb = |mu: f64| mu + mu * mu / theta;
    let zinb = |mean: f64| {
        let mu = mean / (1.0 - pi);
        (1.0 - pi) * nb(mu) + pi * (1.0 - pi) * mu * mu
    };
    let chosen: Vec<usize> = if genes.is_empty() {
        let mut order: Vec<usize> = (0..g).collect();
        order.sort_by(|&a, &b| gene_mean[b].total_cmp(&gene_mean[a]).then(a.cmp(&b)));
        order.truncate(5);
        order
    } else {
        genes.to_vec()
    };
    let s = Stream::new(seed, streams::GAUSSIAN);
    let gaussian = chosen
        .iter()
        .map(|&j| {
            let mean = l1[j] / n;
            let sd = var(l1[j], l2[j]).sqrt();
            let samples_log1p: Vec<f32> = (0..n_samples)
                .map(|i| (mean + sd * f64::from(s.normal(j as u32, i as u32))) as f32)
                .collect();
            let samples_counts: Vec<f32> = samples_log1p.iter().map(|v| v.exp_m1()).collect();
            let ns = n_samples as f64;
            GaussianGene {
                gene: j,
                name: m.gene_names.get(j).cloned().unwrap_or_default(),
                log1p_mean: mean,
                log1p_sd: sd,
                fraction_negative: samples_log1p.iter().filter(|&&v| v < 0.0).count() as f64 / ns,
                fraction_non_integer: samples_counts.iter().filter(|v| v.fract() != 0.0).count()
                    as f64
                    / ns,
                samples_log1p,
                samples_counts,
            }
        })
        .collect();
    Ok(CountVariance {
        n_cells: cells.len(),
        gene_names: m.gene_names.clone(),
        gene_mean,
        gene_variance,
        poisson_variance: curve_mean.clone(),
        nb_variance: curve_mean.iter().map(|&mu| nb(mu)).collect(),
        zinb_variance: curve_mean.iter().map(|&mu| zinb(mu)).collect(),
        curve_mean,
        theta_median: theta,
        theta_per_gene,
        zinb_dropout_probability: pi,
        zinb_dropout_source: source.into(),
        model_likelihood: params.config.likelihood,
        gaussian,
    })
}
