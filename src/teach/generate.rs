//! Lesson 2, the generative story, and lesson 9, what the decoder assumes.
//!
//! [`generate_cells`]: n cells drawn from the model as the model tells it: `z ~ N(0, I)`,
//! decoded to gene proportions rho; a library size `l ~ LogNormal(m, s)` with m and s
//! the mean and standard deviation of the training cells' log library sizes (scVI's
//! library prior, fitted once to the data rather than per batch); counts from the
//! model's likelihood with mean `l rho` ([`crate::backend::cpu::sample`]: NB, ZINB or
//! Poisson). The generated cells are then encoded like real ones, so the page can place
//! them on the map next to the z they came from.
//!
//! [`decoder_correlations`]: gene-gene Pearson correlations among the K most variable
//! genes (variance of `log1p(10^4 x / l)` over the cells, l the cell's library size)
//! in real cells and in cells generated from each real cell's posterior (one z from
//! q(z|x), counts drawn with the real cell's library size, transformed the same way),
//! over all cells and within one neighbourhood (the k cells whose latent means are
//! nearest a point; there each cell gives several draws). Given z the model's genes are
//! independent: within a small neighbourhood its correlations shrink toward 0, while
//! over all cells they follow the real ones (cell types move many genes together).

use super::decoder::decode;
use super::{mean_var, pearson, streams};
use crate::backend::cpu::sample;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::eval::latent;
use crate::explore::nearest_cells;
use crate::model::cpu_model::theta_rows;
use crate::model::{Likelihood, Params};
use crate::rng::Stream;
use serde::Serialize;

/// Cells drawn from the model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GeneratedCells {
    /// n: cells generated.
    pub n_cells: usize,
    /// G: genes (the model's).
    pub n_genes: usize,
    /// The batch they were decoded in.
    pub batch: u32,
    /// How library sizes were drawn.
    pub library_prior: String,
    /// Mean of the training cells' natural-log library sizes (the log-normal's m).
    pub log_library_mean: f64,
    /// Their standard deviation (the log-normal's s).
    pub log_library_sd: f64,
    /// Mean library size (total counts) of the training cells.
    pub data_mean_library: f64,
    /// z of each cell, n x Z row-major.
    pub z: Vec<f32>,
    /// Each cell's drawn library size l (the mean of its total counts).
    pub library_size: Vec<f32>,
    /// Each cell's total generated counts.
    pub total_counts: Vec<f32>,
    /// Counts, n x G row-major (integers).
    pub counts: Vec<f32>,
    /// The generated cells' latent means through the encoder, n x Z.
    pub encoded_mean: Vec<f32>,
}

/// Mean and sd of the natural-log library sizes of `cells` (those with counts), and
/// their mean library.
fn library_fit(m: &CountMatrix, cells: &[usize]) -> Result<(f64, f64, f64)> {
    let libs: Vec<f64> = cells
        .iter()
        .map(|&c| m.row(c).1.iter().map(|&v| f64::from(v)).sum::<f64>())
        .filter(|&l| l > 0.0)
        .collect();
    if libs.is_empty() {
        return Err(Error::Config(
            "generating cells: no cell has counts to fit library sizes to".into(),
        ));
    }
    let (lm, lv) = mean_var(libs.iter().map(|l| l.ln()));
    let mean = libs.iter().sum::<f64>() / libs.len() as f64;
    Ok((lm, lv.sqrt(), mean))
}

/// Draws counts with means `mu` (b x k) for genes `genes` (their log dispersions and,
/// for ZINB, dropout logits `pi` b x k) under the model's likelihood.
#[allow(clippy::too_many_arguments)]
fn draw_counts(
    p: &Params,
    mu: &[f32],
    pi: Option<&[f32]>,
    genes: &[usize],
    batch: &[u32],
    seed: u64,
    step: u32,
    out: &mut [f32],
) {
    let cfg = &p.config;
    let (b, k, g) = (batch.len(), genes.len(), cfg.n_genes);
    let lt_all = &p.values[p.layout.log_theta.clone()];
    let lt: Vec<f32> = (0..cfg.theta_rows())
        .flat_map(|r| genes.iter().map(move |&j| lt_all[r * g + j]))
        .collect();
    let rows = theta_rows(cfg, batch);
    match cfg.likelihood {
        Likelihood::Poisson => sample::poisson(mu, seed, step, out),
        Likelihood::Nb => sample::nb(mu, &lt, &rows, None, b, k, seed, step, out),
        Likelihood::Zinb => sample::nb(mu, &lt, &rows, pi, b, k, seed, step, out),
    }
}

/// `n` cells from the model in batch `batch` (see the module docs); library sizes fitted
/// to `train_cells` of `m`.
pub fn generate_cells(
    params: &Params,
    m: &CountMatrix,
    train_cells: &[usize],
    n: usize,
    batch: u32,
    seed: u64,
) -> Result<GeneratedCells> {
    super::need_cells(train_cells, "generating cells")?;
    super::check_cells(train_cells, m.n_cells, "generating cells")?;
    super::check_count(n, 1000, "cells to generate")?;
    super::check_batch(params, batch)?;
    let (zd, g) = (params.config.n_latent, params.config.n_genes);
    let (lm, ls, data_mean) = library_fit(m, train_cells)?;
    let s = Stream::new(seed, streams::GENERATE);
    let z: Vec<f32> = (0..n * zd).map(|i| s.normal(0, i as u32)).collect();
    let library_size: Vec<f32> = (0..n)
        .map(|i| (lm + ls * f64::from(s.normal(1, i as u32))).exp() as f32)
        .collect();
    let batches = vec![batch; n];
    let pass = decode(params, &z, &batches);
    let mu: Vec<f32> = pass
        .rho
        .iter()
        .enumerate()
        .map(|(i, &r)| r * library_size[i / g])
        .collect();
    let genes: Vec<usize> = (0..g).collect();
    let mut counts = vec![0.0f32; n * g];
    let pi = (!pass.pi.is_empty()).then_some(pass.pi.as_slice());
    let cseed = seed ^ (u64::from(streams::GENERATE) << 40);
    draw_counts(params, &mu, pi, &genes, &batches, cseed, 0, &mut counts);
    let total_counts: Vec<f32> = counts
        .chunks_exact(g)
        .map(|r| r.iter().map(|&v| f64::from(v)).sum::<f64>() as f32)
        .collect();
    let mut triplets = Vec::new();
    for (i, &v) in counts.iter().enumerate() {
        if v > 0.0 {
            triplets.push(((i / g) as u32, (i % g) as u32, v));
        }
    }
    let generated = CountMatrix::from_triplets(n, g, triplets);
    let all: Vec<usize> = (0..n).collect();
    let (encoded_mean, _) = latent(params, &generated, &batches, &all);
    Ok(GeneratedCells {
        n_cells: n,
        n_genes: g,
        batch,
        library_prior: "log-normal fitted to the training cells' log library sizes".into(),
        log_library_mean: lm,
        log_library_sd: ls,
        data_mean_library: data_mean,
        z,
        library_size,
        total_counts,
        counts,
        encoded_mean,
    })
}

/// A K x K correlation matrix of one set of cells.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CorrelationMatrix {
    /// Cells (or draws) the correlations are over.
    pub n_samples: usize,
    /// Pearson correlations, K x K row-major (0 where a gene is constant).
    pub correlation: Vec<f32>,
    /// Mean |correlation| over the off-diagonal pairs.
    pub mean_abs_offdiag: f64,
}

impl CorrelationMatrix {
    /// Correlations of the columns of `x` (n x k).
    fn of(x: &[f64], n: usize, k: usize) -> CorrelationMatrix {
        let cols: Vec<Vec<f64>> = (0..k)
            .map(|j| (0..n).map(|r| x[r * k + j]).collect())
            .collect();
        let mut correlation = vec![0.0f32; k * k];
        let mut sum = 0.0f64;
        for a in 0..k {
            correlation[a * k + a] = 1.0;
            for b in a + 1..k {
                let c = pearson(&cols[a], &cols[b]);
                correlation[a * k + b] = c as f32;
                correlation[b * k + a] = c as f32;
                sum += 2.0 * c.abs();
            }
        }
        CorrelationMatrix {
            n_samples: n,
            correlation,
            mean_abs_offdiag: if k > 1 {
                sum / (k * (k - 1)) as f64
            } else {
                0.0
            },
        }
    }

    fn offdiag(&self, k: usize) -> Vec<f64> {
        (0..k)
            .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
            .map(|(a, b)| f64::from(self.correlation[a * k + b]))
            .collect()
    }
}

/// Real vs generated gene-gene correlations, overall and in one neighbourhood.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecoderCorrelations {
    /// The K genes (indices into the model's genes), most variable first.
    pub genes: Vec<usize>,
    /// Their names.
    pub gene_names: Vec<String>,
    /// The transform correlated: `log1p(10^4 x / l)`.
    pub transform: String,
    /// Real cells, all.
    pub real_overall: CorrelationMatrix,
    /// Generated from every cell's posterior, one draw each.
    pub generated_overall: CorrelationMatrix,
    /// Real cells of the neighbourhood.
    pub real_neighbourhood: CorrelationMatrix,
    /// Generated from the neighbourhood's cells, `draws_per_neighbour` draws each.
    pub generated_neighbourhood: CorrelationMatrix,
    /// The neighbourhood's centre (Z).
    pub neighbourhood_centre: Vec<f32>,
    /// The neighbourhood's cells (rows of the data), nearest first.
    pub neighbourhood_cells: Vec<usize>,
    /// Draws per neighbourhood cell.
    pub draws_per_neighbour: usize,
    /// Pearson correlation between the off-diagonal real and generated overall
    /// correlations (how well the model reproduces the gene-gene structure).
    pub overall_agreement: f64,
}

/// Generated values (`log1p(10^4 x / l)`, n x K) for `cells`, each repeated `draws`
/// times: one z from q(z|x) per repeat, counts of `genes` with the cell's library.
#[allow(clippy::too_many_arguments)]
fn generated_values(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    draws: usize,
    genes: &[usize],
    seed: u64,
    step: u32,
) -> Vec<f64> {
    let (zd, g, k) = (params.config.n_latent, params.config.n_genes, genes.len());
    let (mean, var) = latent(params, m, batch_codes, cells);
    let s = Stream::new(seed, streams::GENERATE);
    let rows: Vec<(usize, usize)> = (0..cells.len())
        .flat_map(|i| (0..draws).map(move |d| (i, d)))
        .collect();
    let mut out = Vec::with_capacity(rows.len() * k);
    for (ci, chunk) in rows.chunks(256).enumerate() {
        let mut z = Vec::with_capacity(chunk.len() * zd);
        let mut batch = Vec::with_capacity(chunk.len());
        let mut libs = Vec::with_capacity(chunk.len());
        for (r, &(i, _)) in chunk.iter().enumerate() {
            for j in 0..zd {
                let e = s.normal(step, ((ci * 256 + r) * zd + j) as u32);
                z.push(mean[i * zd + j] + var[i * zd + j].sqrt() * e);
            }
            batch.push(batch_codes.get(cells[i]).copied().unwrap_or(0));
            libs.push(m.row(cells[i]).1.iter().map(|&v| f64::from(v)).sum::<f64>() as f32);
        }
        let pass = decode(params, &z, &batch);
        let b = chunk.len();
        let mut mu = Vec::with_capacity(b * k);
        let mut pi = Vec::new();
        for (r, &lib) in libs.iter().enumerate() {
            for &j in genes {
                mu.push(lib * pass.rho[r * g + j]);
                if !pass.pi.is_empty() {
                    pi.push(pass.pi[r * g + j]);
                }
            }
        }
        let mut counts = vec![0.0f32; b * k];
        let pi = (!pi.is_empty()).then_some(pi.as_slice());
        let cseed = seed ^ (u64::from(streams::GENERATE) << 40) ^ (u64::from(step) << 20);
        draw_counts(
            params,
            &mu,
            pi,
            genes,
            &batch,
            cseed,
            ci as u32,
            &mut counts,
        );
        for r in 0..b {
            for a in 0..k {
                out.push(norm_log(counts[r * k + a], libs[r]));
            }
        }
    }
    out
}

fn norm_log(x: f32, lib: f32) -> f64 {
    if lib <= 0.0 {
        return 0.0;
    }
    (1e4 * f64::from(x) / f64::from(lib)).ln_1p()
}

/// Real values (`log1p(10^4 x / l)`, n x K) of `genes` in `cells`.
fn real_values(m: &CountMatrix, cells: &[usize], genes: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(cells.len() * genes.len());
    for &c in cells {
        let row = m.dense_row(c);
        let lib: f32 = row.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        out.extend(genes.iter().map(|&j| norm_log(row[j], lib)));
    }
    out
}

/// The `k` genes with the largest variance of `log1p(10^4 x / l)` over `cells`.
pub fn top_variable_genes(m: &CountMatrix, cells: &[usize], k: usize) -> Vec<usize> {
    let g = m.n_genes;
    let (mut s1, mut s2) = (vec![0.0f64; g], vec![0.0f64; g]);
    for &c in cells {
        let (idx, val) = m.row(c);
        let lib: f32 = val.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
        for (&j, &v) in idx.iter().zip(val) {
            let t = norm_log(v, lib);
            s1[j as usize] += t;
            s2[j as usize] += t * t;
        }
    }
    let n = cells.len().max(1) as f64;
    let mut order: Vec<(usize, f64)> = (0..g)
        .map(|j| (j, s2[j] / n - (s1[j] / n).powi(2)))
        .collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    order.into_iter().take(k).map(|(j, _)| j).collect()
}

/// Real vs generated correlations of the `k_genes` most variable genes over `cells`,
/// and within the `k_neighbours` cells nearest `centre` (Z; by latent means), with
/// `draws_per_neighbour` generated draws each there (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn decoder_correlations(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    k_genes: usize,
    centre: &[f32],
    k_neighbours: usize,
    draws_per_neighbour: usize,
    seed: u64,
) -> Result<DecoderCorrelations> {
    super::need_cells(cells, "gene correlations")?;
    super::check_cells(cells, m.n_cells, "gene correlations")?;
    super::check_count(k_genes, 200.min(m.n_genes).max(1), "genes to correlate")?;
    super::check_count(k_neighbours, cells.len(), "cells in the neighbourhood")?;
    super::check_count(draws_per_neighbour, 100, "draws per neighbourhood cell")?;
    let zd = params.config.n_latent;
    if centre.len() != zd || centre.iter().any(|v| !v.is_finite()) {
        return Err(Error::Config(format!(
            "gene correlations: the neighbourhood's centre needs {zd} finite coordinates"
        )));
    }
    let genes = top_variable_genes(m, cells, k_genes);
    let k = genes.len();
    let real = real_values(m, cells, &genes);
    let generated = generated_values(params, m, batch_codes, cells, 1, &genes, seed, 0);
    let (means, _) = latent(params, m, batch_codes, cells);
    let near: Vec<usize> = nearest_cells(&means, zd, centre, k_neighbours)
        .into_iter()
        .map(|(i, _)| cells[i])
        .collect();
    let real_n = real_values(m, &near, &genes);
    let gen_n = generated_values(
        params,
        m,
        batch_codes,
        &near,
        draws_per_neighbour,
        &genes,
        seed,
        1,
    );
    let real_overall = CorrelationMatrix::of(&real, cells.len(), k);
    let generated_overall = CorrelationMatrix::of(&generated, cells.len(), k);
    let overall_agreement = pearson(&real_overall.offdiag(k), &generated_overall.offdiag(k));
    Ok(DecoderCorrelations {
        gene_names: genes.iter().map(|&j| m.gene_names[j].clone()).collect(),
        genes,
        transform: "log1p(10^4 x / l)".into(),
        real_overall,
        generated_overall,
        real_neighbourhood: CorrelationMatrix::of(&real_n, near.len(), k),
        generated_neighbourhood: CorrelationMatrix::of(&gen_n, near.len() * draws_per_neighbour, k),
        neighbourhood_centre: centre.to_vec(),
        neighbourhood_cells: near,
        draws_per_neighbour,
        overall_agreement,
    })
}
