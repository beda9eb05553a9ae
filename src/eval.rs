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
