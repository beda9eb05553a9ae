//! Evaluation in nats per cell (higher is better): ELBO, an importance-weighted estimate
//! of log p(x), reconstruction, KL per latent dimension and active units, and the kNN
//! label accuracy of the latent means. Always computed by the CPU reference model, so
//! every backend is judged by the same arithmetic.

use crate::data::CountMatrix;
use crate::model::cpu_model::{CpuModel, Mode, Workspace};
use crate::model::{Minibatch, Params};
use crate::rng;
use serde::Serialize;

/// Held-out metrics, per cell, in nats.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    /// Cells evaluated.
    pub n_cells: usize,
    /// ELBO = E_q[log p(x|z)] - KL (the expectation averaged over the samples).
    pub elbo_per_cell: f64,
    /// Importance-weighted log p(x) with `n_samples` samples (Burda et al. 2016).
    pub log_px_iw_per_cell: f64,
    /// E_q[log p(x|z)].
    pub reconstruction_per_cell: f64,
    /// Mean KL(q(z|x) || N(0, I)) per latent dimension.
    pub kl_per_dim: Vec<f64>,
    /// Dimensions whose posterior mean varies across cells (Cov_x E_q[z_j] > 0.01).
    pub active_units: usize,
    /// Samples used.
    pub n_samples: usize,
}

/// What `cellvae eval` prints and the page's evaluation panel shows: the held-out
/// metrics, the kNN label accuracy of every cell's latent means (when labels are given)
/// and the batch-mixing score (when the data has more than one batch). One function for
/// both, so the page's numbers are the command line's.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Cells of the data (every input cell, in the model's genes).
    pub n_cells: usize,
    /// Genes of the model.
    pub n_genes: usize,
    /// Cells evaluated (the held-out cells, or the training cells when none is held out).
    pub n_evaluated_cells: usize,
    /// Whether the evaluated cells were held out of training.
    pub heldout: bool,
    /// ELBO per evaluated cell (nats).
    pub heldout_elbo_per_cell: f64,
    /// Importance-weighted log p(x) per evaluated cell (nats), `n_samples` samples (the
    /// name `cellvae train`'s metrics.json has always used: 100 samples by default).
    pub heldout_log_px_iw100_per_cell: f64,
    /// E_q[log p(x|z)] per evaluated cell (nats).
    pub heldout_reconstruction_per_cell: f64,
    /// Mean KL(q(z|x) || N(0, I)) per latent dimension (nats).
    pub kl_per_dim: Vec<f64>,
    /// Dimensions whose posterior mean varies across cells.
    pub active_units: usize,
    /// Importance samples per cell.
    pub n_samples: usize,
    /// 5-fold kNN (k = 15) label accuracy of every labelled cell's latent means.
    pub knn15_accuracy: Option<f64>,
    /// Batch mixing of the latent means (see [`batch_mixing`]; k = 15), with 2+ batches.
    pub batch_mixing15: Option<f64>,
}

/// The report on `cells` of `m` (`heldout`: whether they were held out), with labels
/// for the kNN accuracy and the batch codes' level count for the mixing score.
#[allow(clippy::too_many_arguments)]
pub fn report(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    n_batches: usize,
    cells: &[usize],
    heldout: bool,
    labels: Option<&[Option<u32>]>,
    n_samples: usize,
    seed: u64,
) -> Report {
    let metrics = evaluate(params, m, batch_codes, cells, n_samples, seed);
    let z = params.config.n_latent;
    let needs_means = labels.is_some() || n_batches > 1;
    let mean = if needs_means {
        let all: Vec<usize> = (0..m.n_cells).collect();
        latent(params, m, batch_codes, &all).0
    } else {
        Vec::new()
    };
    Report {
        n_cells: m.n_cells,
        n_genes: m.n_genes,
        n_evaluated_cells: cells.len(),
        heldout,
        heldout_elbo_per_cell: metrics.elbo_per_cell,
        heldout_log_px_iw100_per_cell: metrics.log_px_iw_per_cell,
        heldout_reconstruction_per_cell: metrics.reconstruction_per_cell,
        kl_per_dim: metrics.kl_per_dim,
        active_units: metrics.active_units,
        n_samples: metrics.n_samples,
        knn15_accuracy: labels.and_then(|l| knn_accuracy(&mean, z, l, 15, 5, seed)),
        batch_mixing15: (n_batches > 1)
            .then(|| batch_mixing(&mean, z, batch_codes, 15, 2000, seed))
            .flatten(),
    }
}

/// Batch mixing of the points `x` (N x d) with batch codes `batches` over every cell:
/// [`batch_mixing_entropy`] with k neighbours, scored on up to `max_cells` cells (a
/// seeded choice; every cell when fewer): 1 when every neighbourhood holds the batches
/// in equal shares, 0 when each holds one batch (Haghverdi et al. 2018's entropy of batch
/// mixing, normalised by ln of the batches present). None with fewer than 2 batches.
pub fn batch_mixing(
    x: &[f32],
    d: usize,
    batches: &[u32],
    k: usize,
    max_cells: usize,
    seed: u64,
) -> Option<f64> {
    let n = batches.len();
    if x.len() < n * d {
        return None;
    }
    let cells: Vec<usize> = (0..n).collect();
    let query: Vec<usize> = if n > max_cells {
        let order = rng::shuffle(seed, 1, n);
        order[..max_cells].iter().map(|&i| i as usize).collect()
    } else {
        cells.clone()
    };
    batch_mixing_entropy(x, d, batches, &cells, &query, k)
}

/// The mean normalised batch entropy among the `k` nearest neighbours of each of
/// `query` (indices into the points) among `cells` (the cell itself excluded); `latent`
/// is every cell's point (n x d), `batch` every cell's batch. None with fewer than two
/// batches among `cells`.
pub fn batch_mixing_entropy(
    latent: &[f32],
    d: usize,
    batch: &[u32],
    cells: &[usize],
    query: &[usize],
    k: usize,
) -> Option<f64> {
    let n_levels = cells.iter().map(|&c| batch[c] as usize + 1).max()?;
    let present = (0..n_levels)
        .filter(|&b| cells.iter().any(|&c| batch[c] as usize == b))
        .count();
    if present < 2 || d == 0 || k == 0 || query.is_empty() {
        return None;
    }
    let ln_k = (present as f64).ln();
    let mut dists: Vec<(f32, u32)> = Vec::with_capacity(cells.len());
    let mut total = 0.0f64;
    for &q in query {
        dists.clear();
        let pq = &latent[q * d..(q + 1) * d];
        for &c in cells {
            if c == q {
                continue;
            }
            let pc = &latent[c * d..(c + 1) * d];
            let dist: f32 = pq.iter().zip(pc).map(|(a, b)| (a - b) * (a - b)).sum();
            dists.push((dist, batch[c]));
        }
        let kk = k.min(dists.len());
        if kk == 0 {
            continue;
        }
        dists.select_nth_unstable_by(kk - 1, |a, b| a.0.total_cmp(&b.0));
        let mut counts = vec![0usize; n_levels];
        for &(_, b) in &dists[..kk] {
            counts[b as usize] += 1;
        }
        total += entropy(&counts) / ln_k;
    }
    Some(total / query.len() as f64)
}

/// The entropy (nats) of the proportions `counts` / their sum (0 for no counts).
pub fn entropy(counts: &[usize]) -> f64 {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum()
}

/// Latent means and variances of `cells` (eval mode), row-major N x Z.
pub fn latent(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let (mean, mut var) = latent_raw(params, m, batch_codes, cells);
    let eps = params.config.var_eps;
    for v in &mut var {
        *v = v.exp() + eps;
    }
    (mean, var)
}

/// Latent means and the variance head's raw output `v` (variance `exp(v) + var_eps`,
/// what `backend::cpu::kl` takes) of `cells` (eval mode), row-major N x Z.
pub fn latent_raw(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
) -> (Vec<f32>, Vec<f32>) {
    let mut p = params.clone();
    let mut ws = Workspace::default();
    let z = p.config.n_latent;
    let mut mean = Vec::with_capacity(cells.len() * z);
    let mut raw_v = Vec::with_capacity(cells.len() * z);
    let mut mb = Minibatch::default();
    for chunk in cells.chunks(256) {
        mb.gather_into(m, batch_codes, chunk);
        CpuModel::encode(&mut p, &mut ws, &mb, Mode::Eval);
        mean.extend_from_slice(&ws.qm[..chunk.len() * z]);
        raw_v.extend_from_slice(&ws.qv[..chunk.len() * z]);
    }
    (mean, raw_v)
}

/// Evaluates `cells` with `n_samples` posterior samples per cell (seeded by `seed`).
pub fn evaluate(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    n_samples: usize,
    seed: u64,
) -> Metrics {
    let mut p = params.clone();
    let cfg = p.config.clone();
    let z = cfg.n_latent;
    let s_n = n_samples.max(1);
    let (mean, var) = latent(params, m, batch_codes, cells);
    let ln_2pi = (2.0 * std::f64::consts::PI).ln();
    let mut ws = Workspace::default();
    let mut rep = Minibatch::default();
    let (mut sum_iw, mut sum_rec, mut sum_kl) = (0.0f64, 0.0f64, 0.0f64);
    let mut kl_dim = vec![0.0f64; z];
    let cells_per_chunk = (4096 / s_n).max(1);
    for (chunk_i, chunk) in cells.chunks(cells_per_chunk).enumerate() {
        // Each cell repeated S times.
        let rows: Vec<usize> = chunk
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, s_n))
            .collect();
        rep.gather_into(m, batch_codes, &rows);
        let b = rows.len();
        let mut log_q = vec![0.0f64; b];
        let mut log_prior = vec![0.0f64; b];
        if ws.z.len() < b * z {
            ws.z.resize(b * z, 0.0);
        }
        for (ci, _) in chunk.iter().enumerate() {
            let cell_pos = chunk_i * cells_per_chunk + ci;
            for s in 0..s_n {
                let r = ci * s_n + s;
                let (mut lq, mut lp) = (0.0f64, 0.0f64);
                for j in 0..z {
                    let mu = mean[cell_pos * z + j] as f64;
                    let v = var[cell_pos * z + j] as f64;
                    let eps =
                        rng::normal(seed, rng::SAMPLE, s as u32, (cell_pos * z + j) as u32) as f64;
                    let zz = mu + v.sqrt() * eps;
                    ws.z[r * z + j] = zz as f32;
                    lq += -0.5 * eps * eps - 0.5 * (ln_2pi + v.ln());
                    lp += -0.5 * zz * zz - 0.5 * ln_2pi;
                }
                log_q[r] = lq;
                log_prior[r] = lp;
            }
            for j in 0..z {
                let mu = mean[cell_pos * z + j] as f64;
                let v = var[cell_pos * z + j] as f64;
                let k = 0.5 * (v + mu * mu - 1.0 - v.ln());
                kl_dim[j] += k;
                sum_kl += k;
            }
        }
        CpuModel::decode(&mut p, &mut ws, &rep.batch, b, Mode::Eval);
        CpuModel::loglik(&p, &mut ws, &rep);
        for ci in 0..chunk.len() {
            let lw: Vec<f64> = (0..s_n)
                .map(|s| {
                    let r = ci * s_n + s;
                    ws.loglik[r] as f64 + log_prior[r] - log_q[r]
                })
                .collect();
            let mx = lw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = mx + lw.iter().map(|&w| (w - mx).exp()).sum::<f64>().ln();
            sum_iw += lse - (s_n as f64).ln();
            sum_rec += (0..s_n)
                .map(|s| ws.loglik[ci * s_n + s] as f64)
                .sum::<f64>()
                / s_n as f64;
        }
    }
    let n = cells.len().max(1) as f64;
    // Active units: variance over cells of the posterior means.
    let mut active = 0;
    for j in 0..z {
        let vals: Vec<f64> = (0..cells.len()).map(|c| mean[c * z + j] as f64).collect();
        let mu = vals.iter().sum::<f64>() / n;
        let cov = vals.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / n;
        if cov > 0.01 {
            active += 1;
        }
    }
    Metrics {
        n_cells: cells.len(),
        elbo_per_cell: (sum_rec - sum_kl) / n,
        log_px_iw_per_cell: sum_iw / n,
        reconstruction_per_cell: sum_rec / n,
        kl_per_dim: kl_dim.iter().map(|k| k / n).collect(),
        active_units: active,
        n_samples: s_n,
    }
}

/// k-fold cross-validated kNN accuracy of `labels` (None: excluded) from the points
/// `x` (N x d): for each fold, each held-out point takes the majority label of its `k`
/// nearest training points (Euclidean; ties to the smallest label code, like scikit-learn).
pub fn knn_accuracy(
    x: &[f32],
    d: usize,
    labels: &[Option<u32>],
    k: usize,
    folds: usize,
    seed: u64,
) -> Option<f64> {
    let idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].is_some()).collect();
    if idx.len() < folds.max(2) || d == 0 {
        return None;
    }
    let order = rng::shuffle(seed, 0, idx.len());
    let fold_of: Vec<usize> = {
        let mut f = vec![0; idx.len()];
        for (pos, &o) in order.iter().enumerate() {
            f[o as usize] = pos % folds;
        }
        f
    };
    let n_labels = labels
        .iter()
        .flatten()
        .max()
        .map(|&m| m as usize + 1)
        .unwrap_or(0);
    let mut correct = 0usize;
    let mut dists: Vec<(f32, u32)> = Vec::with_capacity(idx.len());
    for (a_pos, &a) in idx.iter().enumerate() {
        dists.clear();
        for (b_pos, &b) in idx.iter().enumerate() {
            if fold_of[b_pos] == fold_of[a_pos] {
                continue;
            }
            let dist: f32 = (0..d).map(|j| (x[a * d + j] - x[b * d + j]).powi(2)).sum();
            dists.push((dist, labels[b].unwrap_or(0)));
        }
        let kk = k.min(dists.len());
        if kk == 0 {
            continue;
        }
        dists.select_nth_unstable_by(kk - 1, |p, q| p.0.total_cmp(&q.0));
        let mut votes = vec![0usize; n_labels];
        for &(_, l) in &dists[..kk] {
            votes[l as usize] += 1;
        }
        let best = votes
            .iter()
            .enumerate()
            .max_by(|p, q| p.1.cmp(q.1).then(q.0.cmp(&p.0)))
            .map(|(i, _)| i as u32);
        if best == labels[a] {
            correct += 1;
        }
    }
    Some(correct as f64 / idx.len() as f64)
}

#[cfg(test)]
mod mixing_tests {
    use super::batch_mixing;

    /// Two batches on a line: interleaved (every neighbourhood mixed) against in two
    /// far-apart clumps (every neighbourhood one batch).
    #[test]
    fn mixing_is_one_when_interleaved_and_zero_when_apart() {
        let n = 200;
        let batches: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
        let interleaved: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let apart: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { i as f32 } else { 1e4 + i as f32 })
            .collect();
        let mixed = batch_mixing(&interleaved, 1, &batches, 14, 1000, 0).unwrap();
        let separated = batch_mixing(&apart, 1, &batches, 14, 1000, 0).unwrap();
        assert!(mixed > 0.95, "interleaved: {mixed}");
        assert!(separated < 1e-9, "apart: {separated}");
        // A subsample of the cells gives nearly the same answer.
        let sub = batch_mixing(&interleaved, 1, &batches, 14, 50, 3).unwrap();
        assert!((sub - mixed).abs() < 0.05, "{sub} vs {mixed}");
        assert_eq!(
            batch_mixing(&interleaved, 1, &vec![0; n], 14, 1000, 0),
            None
        );
    }
}
