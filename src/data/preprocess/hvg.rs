//! Highly variable genes, scanpy's `seurat_v3` flavour (`_highly_variable_genes_seurat_v3`
//! in scanpy 1.11), on raw counts, per batch when batches are given.
//!
//! The arithmetic follows scanpy's step for step (f32 squares and f64 sums for the
//! moments, the clipped sums in f64, the same order of operations for the normalised
//! variance) so that the normalised variances agree to ~1e-13 relative. The one place
//! where results can differ is the order of exactly tied normalised variances: numpy's
//! `argsort` is not stable, this code keeps gene order.

use super::loess;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use serde::Serialize;

/// Per-gene results of seurat_v3 gene selection, as the columns scanpy adds to `.var`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HvgSeuratV3 {
    /// Mean count of each gene over all cells (`means`).
    pub means: Vec<f64>,
    /// Variance (ddof = 1) of each gene over all cells (`variances`).
    pub variances: Vec<f64>,
    /// Normalised variance, averaged over batches (`variances_norm`).
    pub variances_norm: Vec<f64>,
    /// Median over batches of the gene's rank among the top `n_top_genes`
    /// (`highly_variable_rank`; `None` where it is in no batch's top).
    pub rank: Vec<Option<f64>>,
    /// In how many batches the gene is among the top `n_top_genes`
    /// (`highly_variable_nbatches`).
    pub n_batches_highly_variable: Vec<u32>,
    /// The selected genes, ascending.
    pub selected: Vec<usize>,
    /// Number of batches.
    pub n_batches: usize,
    /// Loess vertex fits that needed a pseudoinverse, summed over batches.
    pub n_pseudoinverse: usize,
}

/// The indices (ascending) of the `n_top_genes` highly variable genes of raw counts `m`,
/// computed as scanpy 1.11's `highly_variable_genes(flavor="seurat_v3")`; `batch` gives
/// each cell's batch code (scanpy's `batch_key`).
///
/// Per batch: mean and variance (ddof = 1) of each gene; a loess fit (span 0.3, degree 2)
/// of log10 variance on log10 mean over the genes with non-zero variance gives the
/// expected variance; counts are clipped at `mean + sqrt(n_cells) * sqrt(expected)`, and
/// the normalised variance is the variance of the clipped counts around the mean divided
/// by the expected variance. Genes are ranked by it in each batch; over batches they are
/// ordered by median rank within the top `n_top_genes` (ascending), then by the number of
/// batches where they are in that top (descending), then by index. Asking for more genes
/// than there are returns them all.
pub fn highly_variable_genes_seurat_v3(
    m: &CountMatrix,
    n_top_genes: usize,
    batch: Option<&[u32]>,
) -> Result<Vec<usize>> {
    Ok(seurat_v3(m, n_top_genes, batch)?.selected)
}

/// Like [`highly_variable_genes_seurat_v3`], with every per-gene statistic.
pub fn seurat_v3(
    m: &CountMatrix,
    n_top_genes: usize,
    batch: Option<&[u32]>,
) -> Result<HvgSeuratV3> {
    seurat_v3_impl(m, n_top_genes, batch.map(|b| (b, &[][..])))
}

/// Span of the loess fit of log variance on log mean (scanpy's default).
const SPAN: f64 = 0.3;

/// [`seurat_v3`] with a label for each batch code, for error messages (codes without a
/// label are named by their number).
pub(super) fn seurat_v3_impl(
    m: &CountMatrix,
    n_top_genes: usize,
    batch: Option<(&[u32], &[String])>,
) -> Result<HvgSeuratV3> {
    if n_top_genes == 0 {
        return Err(Error::Config(
            "n_top_genes is 0: ask for at least one gene".into(),
        ));
    }
    if m.n_cells < 2 || m.n_genes == 0 {
        return Err(Error::Config(format!(
            "highly variable genes need at least 2 cells and 1 gene; the matrix has {} x {}",
            m.n_cells, m.n_genes
        )));
    }
    // Cells of each batch, batches by ascending code (the order changes nothing but the
    // rounding of the average normalised variance).
    let groups: Vec<(String, Vec<usize>)> = match batch {
        None => vec![(String::new(), (0..m.n_cells).collect())],
        Some((codes, labels)) => {
            if codes.len() != m.n_cells {
                return Err(Error::Config(format!(
                    "{} batch codes given for {} cells",
                    codes.len(),
                    m.n_cells
                )));
            }
            let mut cells: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
            for (c, &b) in codes.iter().enumerate() {
                cells.entry(b).or_default().push(c);
            }
            cells
                .into_iter()
                .map(|(b, c)| {
                    let label = labels
                        .get(b as usize)
                        .cloned()
                        .unwrap_or_else(|| b.to_string());
                    (label, c)
                })
                .collect()
        }
    };
    if let Some((label, cells)) = groups.iter().find(|(_, c)| c.len() < 2) {
        return Err(Error::Config(format!(
            "seurat_v3 cannot use batch '{label}': it has {} cell and a variance needs at least 2; \
             merge it with another batch, or choose a batch key with larger batches, or none",
            cells.len()
        )));
    }
    let all: Vec<usize> = (0..m.n_cells).collect();
    let (means, variances) = mean_var(m, &all);
    let mut norm_vars: Vec<Vec<f64>> = Vec::with_capacity(groups.len());
    let mut n_pseudoinverse = 0;
    for (label, cells) in &groups {
        let (nv, pinv) = batch_norm_var(m, cells).map_err(|problem| {
            if batch.is_some() {
                Error::Config(format!(
                    "seurat_v3 cannot use batch '{label}' ({} cells): {problem}; choose a batch key \
                     with larger batches, or none",
                    cells.len()
                ))
            } else {
                Error::Config(format!("seurat_v3 gene selection failed: {problem}"))
            }
        })?;
        n_pseudoinverse += pinv;
        norm_vars.push(nv);
    }

    // Rank within each batch (0 = most variable; ties keep gene order).
    let n_genes = m.n_genes;
    let mut ranks_in_top: Vec<Vec<u32>> = vec![Vec::new(); n_genes];
    let mut order: Vec<usize> = (0..n_genes).collect();
    for nv in &norm_vars {
        let key = |g: usize| {
            if nv[g].is_nan() {
                f64::NEG_INFINITY
            } else {
                nv[g]
            }
        };
        order.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
        for (r, &g) in order.iter().enumerate().take(n_top_genes) {
            ranks_in_top[g].push(r as u32);
        }
        order.sort_unstable();
    }
    let n_batches_hv: Vec<u32> = ranks_in_top.iter().map(|r| r.len() as u32).collect();
    let rank: Vec<Option<f64>> = ranks_in_top
        .iter_mut()
        .map(|r| {
            r.sort_unstable();
            let k = r.len();
            match k {
                0 => None,
                _ if k % 2 == 1 => Some(f64::from(r[k / 2])),
                _ => Some((f64::from(r[k / 2 - 1]) + f64::from(r[k / 2])) / 2.0),
            }
        })
        .collect();
    let mut by_rank: Vec<usize> = (0..n_genes).collect();
    by_rank.sort_by(|&a, &b| {
        let ra = rank[a].unwrap_or(f64::INFINITY);
        let rb = rank[b].unwrap_or(f64::INFINITY);
        ra.total_cmp(&rb)
            .then(n_batches_hv[b].cmp(&n_batches_hv[a]))
    });
    let mut selected: Vec<usize> = by_rank.into_iter().take(n_top_genes).collect();
    selected.sort_unstable();
    let n_b = norm_vars.len() as f64;
    let variances_norm = (0..n_genes)
        .map(|g| norm_vars.iter().map(|v| v[g]).sum::<f64>() / n_b)
        .collect();
    Ok(HvgSeuratV3 {
        means,
        variances,
        variances_norm,
        rank,
        n_batches_highly_variable: n_batches_hv,
        selected,
        n_batches: groups.len(),
        n_pseudoinverse,
    })
}

/// Mean and variance (ddof = 1) of every gene over the given cells, computed as scanpy's
/// `_get_mean_var` does for CSR float32 (squares in f32, sums in f64).
fn mean_var(m: &CountMatrix, cells: &[usize]) -> (Vec<f64>, Vec<f64>) {
    let mut sum = vec![0.0f64; m.n_genes];
    let mut sum_sq = vec![0.0f64; m.n_genes];
    for &c in cells {
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            sum[g as usize] += f64::from(v);
            sum_sq[g as usize] += f64::from(v * v);
        }
    }
    let n = cells.len() as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var = sum_sq
        .iter()
        .zip(&mean)
        .map(|(sq, mu)| {
            let v = sq / n - mu * mu;
            if cells.len() != 1 {
                v * (n / (n - 1.0))
            } else {
                v
            }
        })
        .collect();
    (mean, var)
}

/// Normalised variance of every gene within one batch, and the number of loess vertex
/// fits that needed a pseudoinverse. The error is a sentence fragment for the caller.
fn batch_norm_var(
    m: &CountMatrix,
    cells: &[usize],
) -> std::result::Result<(Vec<f64>, usize), String> {
    let (mean, var) = mean_var(m, cells);
    let varying: Vec<usize> = (0..m.n_genes).filter(|&g| var[g] > 0.0).collect();
    let x: Vec<f64> = varying.iter().map(|&g| mean[g].log10()).collect();
    let y: Vec<f64> = varying.iter().map(|&g| var[g].log10()).collect();
    let fit = loess::loess_fit(&x, &y, SPAN).map_err(|e| match e {
        loess::LoessError::TooFewPoints { n, n_neighbours } => format!(
            "only {n} genes vary in its cells, too few for the loess fit of log variance on log \
             mean (span {SPAN} gives {n_neighbours} neighbours, at least 4 are needed)"
        ),
        loess::LoessError::ZeroWidth { at, largest_tie }
        | loess::LoessError::AllOnBoundary { at, largest_tie } => format!(
            "the trend of log variance on log mean cannot be fitted near log10 mean {at:.3}: \
             {largest_tie} of its {} varying genes share one mean (typically genes with a single \
             count), more than the loess span ({SPAN}) can smooth over (scanpy fails here too)",
            varying.len()
        ),
        loess::LoessError::NotFinite => {
            "the counts hold NaN or infinite values; counts must be finite".to_string()
        }
    })?;
    let mut estimated = vec![0.0f64; m.n_genes];
    for (&g, &f) in varying.iter().zip(&fit.fitted) {
        estimated[g] = f;
    }
    let n = cells.len() as f64;
    let vmax = n.sqrt();
    let reg_std: Vec<f64> = estimated.iter().map(|&e| 10f64.powf(e).sqrt()).collect();
    let clip: Vec<f64> = reg_std
        .iter()
        .zip(&mean)
        .map(|(s, mu)| s * vmax + mu)
        .collect();
    let mut sum = vec![0.0f64; m.n_genes];
    let mut sum_sq = vec![0.0f64; m.n_genes];
    for &c in cells {
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            let g = g as usize;
            let e = f64::from(v).min(clip[g]);
            sum_sq[g] += e * e;
            sum[g] += e;
        }
    }
    let norm = (0..m.n_genes)
        .map(|g| {
            let mu = mean[g];
            (1.0 / ((n - 1.0) * (reg_std[g] * reg_std[g])))
                * ((n * (mu * mu)) + sum_sq[g] - 2.0 * sum[g] * mu)
        })
        .collect();
    Ok((norm, fit.n_pseudoinverse))
}
