//! Lesson 8 and the evaluation panel: how well batches mix in the latent space, next to
//! how well labels stay together ([`crate::eval::knn_accuracy`]), and a simulated batch
//! effect for the demo (which has one batch).
//!
//! **Mixing score** ([`batch_mixing_entropy`]): for each query cell, the batch labels of
//! its k nearest other cells (Euclidean, latent means); the entropy of their proportions
//! divided by `ln K` (K: the batches among the cells scored), averaged over the query
//! cells. 1: every neighbourhood holds all batches equally; 0: every neighbourhood is one
//! batch. With unbalanced batches even perfect mixing scores below 1 (the neighbourhoods
//! then match the global proportions, whose entropy is below `ln K`): compare models on
//! the same data, not across data sets. (scIB's iLISI is the same idea with a
//! perplexity-weighted neighbourhood.)
//!
//! **Simulated batch effect** ([`simulate_batch_effect`]): cells are split into batches
//! "A" and "B", alternating through each label's cells in a seeded random order
//! (stratified, so both batches hold every cell type in equal measure; by input order
//! shuffled when there are no labels). Batch B's counts of gene g are scaled by a factor
//! `f_g = exp(sigma * n_g)`, `n_g ~ N(0, 1)` per gene, drawn as integers: for `f_g < 1`
//! binomial thinning (each of the c molecules kept with probability f_g; above 1000
//! molecules a rounded normal approximation), for `f_g > 1` the count plus
//! Poisson(c (f_g - 1)). The matrix gets a categorical obs column `batch`.

use super::streams;
use crate::backend::cpu::sample;
use crate::data::{CountMatrix, ObsColumn, ObsValues};
use crate::error::{Error, Result};
pub use crate::eval::batch_mixing_entropy;
use crate::eval::entropy;
use crate::eval::knn_accuracy;
use crate::rng::{shuffle, Stream};
use serde::Serialize;

/// Batch mixing and label conservation of a set of latent points.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchMixing {
    /// k: neighbours per cell.
    pub k_neighbours: usize,
    /// Cells scored (query cells).
    pub n_cells_scored: usize,
    /// Batches among the cells.
    pub n_batches: usize,
    /// Mean normalised batch entropy of the neighbourhoods, 0 (separated) to 1 (mixed);
    /// None with fewer than two batches.
    pub batch_mixing_entropy: Option<f64>,
    /// The same score expected if batches were perfectly mixed: the normalised entropy
    /// of the global batch proportions (1 for balanced batches).
    pub batch_mixing_entropy_ideal: Option<f64>,
    /// 5-fold kNN (k = 15) accuracy of the labels from the latent means, when labels exist.
    pub label_knn_accuracy: Option<f64>,
}

/// Batch mixing ([`batch_mixing_entropy`], at most `max_query` query cells evenly spread
/// over `cells`) and the kNN label accuracy of the latent means `latent` (n x d) over
/// `cells`.
pub fn batch_mixing(
    latent: &[f32],
    d: usize,
    batch: &[u32],
    labels: Option<&[Option<u32>]>,
    cells: &[usize],
    k: usize,
    max_query: usize,
) -> Result<BatchMixing> {
    super::need_cells(cells, "batch mixing")?;
    super::check_count(k, 1000, "neighbours")?;
    let n = batch.len();
    if latent.len() != n * d {
        return Err(Error::Config(format!(
            "batch mixing: {} latent values for {n} cells of {d} dimensions",
            latent.len()
        )));
    }
    super::check_cells(cells, n, "batch mixing")?;
    let query: Vec<usize> = if max_query == 0 || cells.len() <= max_query {
        cells.to_vec()
    } else {
        (0..max_query)
            .map(|i| cells[i * cells.len() / max_query])
            .collect()
    };
    let n_levels = cells
        .iter()
        .map(|&c| batch[c] as usize + 1)
        .max()
        .unwrap_or(0);
    let mut counts = vec![0usize; n_levels];
    for &c in cells {
        counts[batch[c] as usize] += 1;
    }
    let present = counts.iter().filter(|&&c| c > 0).count();
    let label_knn_accuracy = labels.and_then(|l| {
        let sub: Vec<Option<u32>> = cells.iter().map(|&c| l.get(c).copied().flatten()).collect();
        let pts: Vec<f32> = cells
            .iter()
            .flat_map(|&c| latent[c * d..(c + 1) * d].iter().copied())
            .collect();
        knn_accuracy(&pts, d, &sub, 15, 5, 0)
    });
    Ok(BatchMixing {
        k_neighbours: k,
        n_cells_scored: query.len(),
        n_batches: present,
        batch_mixing_entropy: batch_mixing_entropy(latent, d, batch, cells, &query, k),
        batch_mixing_entropy_ideal: (present >= 2)
            .then(|| entropy(&counts) / (present as f64).ln()),
        label_knn_accuracy,
    })
}

/// What [`simulate_batch_effect`] did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchEffectReport {
    /// The obs column added: `batch`, levels "A" and "B".
    pub column: String,
    /// The label column the split was stratified by, if any.
    pub stratified_by: Option<String>,
    /// sigma of the per-gene log factor.
    pub sigma_log_factor: f64,
    /// Each gene's factor f_g applied to batch B.
    pub factor_per_gene: Vec<f32>,
    /// Cells in batch A.
    pub n_cells_a: usize,
    /// Cells in batch B.
    pub n_cells_b: usize,
    /// Total counts of batch B before and after.
    pub total_counts_b_before: f64,
    /// Total counts of batch B after the factors.
    pub total_counts_b_after: f64,
}

/// `m` with a simulated batch effect and a `batch` column (see the module docs):
/// stratified by `label_key` when given (an error if the column does not exist).
pub fn simulate_batch_effect(
    m: &CountMatrix,
    label_key: Option<&str>,
    sigma: f64,
    seed: u64,
) -> Result<(CountMatrix, BatchEffectReport)> {
    if !(sigma.is_finite() && (0.0..=5.0).contains(&sigma)) {
        return Err(Error::Config(format!(
            "simulated batch effect: sigma must be between 0 and 5, not {sigma}"
        )));
    }
    if m.n_cells < 2 {
        return Err(Error::Config(
            "simulated batch effect: needs at least 2 cells, one per batch".into(),
        ));
    }
    let groups: Vec<Option<u32>> = match label_key {
        Some(key) => {
            let col = crate::pipeline::find_column(m, key, "label column")?;
            crate::pipeline::column_codes(col).0
        }
        None => vec![None; m.n_cells],
    };
    // Each group's cells in a seeded order, alternating A, B across all groups.
    let mut keys: Vec<Option<u32>> = groups.clone();
    keys.sort_unstable();
    keys.dedup();
    let mut is_b = vec![false; m.n_cells];
    let mut toggle = false;
    let gseed = seed ^ (u64::from(streams::BATCH_EFFECT) << 40);
    for (gi, key) in keys.iter().enumerate() {
        let members: Vec<usize> = (0..m.n_cells).filter(|&c| groups[c] == *key).collect();
        for &o in &shuffle(gseed, gi as u32, members.len()) {
            is_b[members[o as usize]] = toggle;
            toggle = !toggle;
        }
    }
    let s = Stream::new(seed, streams::BATCH_EFFECT);
    let factor_per_gene: Vec<f32> = (0..m.n_genes)
        .map(|g| (sigma * f64::from(s.normal(0, g as u32))).exp() as f32)
        .collect();
    let mut out = m.clone();
    let (mut before, mut after) = (0.0f64, 0.0f64);
    // Poisson extras for factors above 1, one draw per stored value.
    let mut extra_mu = vec![0.0f32; m.data.len()];
    for c in (0..m.n_cells).filter(|&c| is_b[c]) {
        for e in m.indptr[c]..m.indptr[c + 1] {
            let f = factor_per_gene[m.indices[e] as usize];
            if f > 1.0 {
                extra_mu[e] = m.data[e] * (f - 1.0);
            }
        }
    }
    let mut extra = vec![0.0f32; m.data.len()];
    sample::poisson(&extra_mu, gseed, 1, &mut extra);
    for c in (0..m.n_cells).filter(|&c| is_b[c]) {
        for e in m.indptr[c]..m.indptr[c + 1] {
            let count = m.data[e];
            let f = f64::from(factor_per_gene[m.indices[e] as usize]);
            before += f64::from(count);
            let new = if f > 1.0 {
                count + extra[e]
            } else {
                thin(&s, e as u32, count, f)
            };
            out.data[e] = new;
            after += f64::from(new);
        }
    }
    out.drop_explicit_zeros();
    let n_b = is_b.iter().filter(|&&b| b).count();
    out.obs.insert(ObsColumn {
        name: "batch".into(),
        values: ObsValues::Categorical {
            levels: vec!["A".into(), "B".into()],
            codes: is_b.iter().map(|&b| Some(u32::from(b))).collect(),
        },
    });
    out.notes.push(format!(
        "simulated batch effect (seed {seed}): batch B's genes scaled by exp({sigma} N(0, 1))"
    ));
    Ok((
        out,
        BatchEffectReport {
            column: "batch".into(),
            stratified_by: label_key.map(str::to_string),
            sigma_log_factor: sigma,
            factor_per_gene,
            n_cells_a: m.n_cells - n_b,
            n_cells_b: n_b,
            total_counts_b_before: before,
            total_counts_b_after: after,
        },
    ))
}

/// Binomial(count, f) for stored value `e`: each molecule t kept when the uniform of
/// block `(step = t + 1, index = e)` is below f; above 1000 molecules a rounded normal
/// with the binomial's mean and variance (block `(step = 0, index = e, word3 = 1)`).
fn thin(s: &Stream, e: u32, count: f32, f: f64) -> f32 {
    let c = count as u64;
    if c > 1000 {
        let w = s.block(0, e, 1);
        let n = f64::from(crate::rng::box_muller(w[0], w[1]));
        let (mean, var) = (c as f64 * f, c as f64 * f * (1.0 - f));
        return (mean + var.sqrt() * n).round().clamp(0.0, c as f64) as f32;
    }
    (0..c as u32)
        .filter(|&t| f64::from(s.uniform(t + 1, e)) < f)
        .count() as f32
}
