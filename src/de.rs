//! Differential expression from the model, between two groups of cells, following
//! scvi-tools' "change" mode (Boyeau et al. 2019; `scvi.model.base.DifferentialComputation`).
//!
//! For each group, `n_samples` cells are drawn with replacement; each draw takes one z
//! from that cell's posterior q(z | x) and decodes the gene proportions rho (the
//! normalised expression, `get_normalized_expression`) for a batch chosen by
//! [`DecodeAs`]. `n_pairs` pairs of draws (one from each group, from the same batch when
//! decoding as every batch) give the distribution of the log2 fold change per gene,
//! `lfc = log2(rho1 + pseudocount) - log2(rho2 + pseudocount)`, summarised by its mean,
//! standard deviation and range; the probability of a change is the share of pairs with
//! |lfc| >= `delta`, its Bayes factor `ln p - ln (1 - p)` (each plus 1e-8), and the genes
//! called at the expected false discovery rate `fdr_target` are the most probable ones
//! whose running mean of `1 - p` stays at or below it (`_fdr_de_prediction`).
//!
//! Dimension legend: G genes, Z latent dimensions, S draws per group, P pairs.

use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::eval;
use crate::model::cpu_model::{CpuModel, Mode, Workspace};
use crate::model::Params;
use crate::rng::Stream;
use serde::{Deserialize, Serialize};

/// Random streams of the estimator (distinct from training's).
const STREAM_CELLS: u32 = 16;
const STREAM_Z: u32 = 17;
const STREAM_PAIRS: u32 = 18;

/// The batch the groups' cells are decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "batch")]
pub enum DecodeAs {
    /// Each cell as its own batch (scvi-tools' default, `batch_correction=False`): a
    /// difference between batches stays in the answer.
    Observed,
    /// Every cell as this batch (its code).
    Batch(u32),
    /// Every cell as each batch in turn, pairs formed within a batch
    /// (`batch_correction=True`): batch effects cancel.
    AllBatches,
}

/// How the probability of a change is counted (scvi-tools' `test_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestMode {
    /// Up and down apart: the larger of P(lfc >= delta) and P(lfc < -delta).
    Three,
    /// Both together: P(|lfc| >= delta).
    Two,
}

/// Settings of one comparison (the page may give only some: the rest are defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeOptions {
    /// S: posterior draws per group (scvi-tools: `n_samples`, 5000).
    pub n_samples: usize,
    /// P: pairs of draws forming the fold-change distribution (`m_permutation`, 10000).
    pub n_pairs: usize,
    /// The smallest |log2 fold change| that counts as a change (`delta`, 0.25).
    pub delta: f32,
    /// Expected false discovery rate of the genes called (`fdr_target`, 0.05).
    pub fdr_target: f64,
    /// Added to the proportions before the logarithm (`pseudocounts`); `None`:
    /// estimated from the data, as scvi-tools does by default.
    pub pseudocount: Option<f32>,
    /// How the probability of a change is counted (`test_mode`).
    pub test_mode: TestMode,
    /// The batch cells are decoded as.
    pub decode_as: DecodeAs,
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for DeOptions {
    fn default() -> Self {
        DeOptions {
            n_samples: 5000,
            n_pairs: 10_000,
            delta: 0.25,
            fdr_target: 0.05,
            pseudocount: None,
            test_mode: TestMode::Three,
            decode_as: DecodeAs::Observed,
            seed: 0,
        }
    }
}

/// One gene's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneDe {
    /// Index in the model's genes.
    pub gene: usize,
    /// Mean of the log2 fold change (group 1 over group 2).
    pub lfc_mean: f32,
    /// Its standard deviation over the pairs.
    pub lfc_std: f32,
    /// Its smallest value over the pairs.
    pub lfc_min: f32,
    /// Its largest value over the pairs.
    pub lfc_max: f32,
    /// Posterior probability that |lfc| >= delta.
    pub proba_de: f32,
    /// ln(proba_de + 1e-8) - ln(1 - proba_de + 1e-8).
    pub bayes_factor: f32,
    /// Called at the expected false discovery rate.
    pub is_de_fdr: bool,
    /// Mean decoded proportion in group 1.
    pub scale1: f32,
    /// Mean decoded proportion in group 2.
    pub scale2: f32,
    /// Mean raw count in group 1.
    pub raw_mean1: f32,
    /// Mean raw count in group 2.
    pub raw_mean2: f32,
    /// Share of group 1's cells with a non-zero count.
    pub nonzero1: f32,
    /// Share of group 2's cells with a non-zero count.
    pub nonzero2: f32,
}

/// The answer for every gene, most probable change first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeResult {
    /// One entry per gene, sorted by `proba_de` (then |lfc_mean|), descending.
    pub genes: Vec<GeneDe>,
    /// Cells in group 1.
    pub n_cells1: usize,
    /// Cells in group 2.
    pub n_cells2: usize,
    /// Genes called at the false discovery rate.
    pub n_de: usize,
    /// The pseudocount used (given, or estimated from the data).
    pub pseudocount: f32,
    /// The settings used.
    pub options: DeOptions,
}

impl DeOptions {
    /// Checks the settings, in the words of the page and the command line.
    pub fn validate(&self, n_batches: usize) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_string()));
        if self.n_samples == 0 || self.n_samples > 1_000_000 {
            return bad("the number of posterior samples must be between 1 and 1,000,000");
        }
        if self.n_pairs == 0 || self.n_pairs > 10_000_000 {
            return bad("the number of pairs must be between 1 and 10,000,000");
        }
        if !(self.delta.is_finite() && self.delta >= 0.0) {
            return bad("the fold-change threshold (delta) must be a number >= 0");
        }
        if !(self.fdr_target > 0.0 && self.fdr_target < 1.0) {
            return bad("the false discovery rate must be between 0 and 1");
        }
        if let Some(pc) = self.pseudocount {
            if !(pc.is_finite() && pc >= 0.0) {
                return bad("the pseudocount must be a number >= 0");
            }
        }
        if let DecodeAs::Batch(k) = self.decode_as {
            if k as usize >= n_batches {
                return Err(Error::Config(format!(
                    "batch {k} does not exist (the model has {n_batches})"
                )));
            }
        }
        Ok(())
    }
}

/// Draws of one group: S rows of G proportions, the batch of each row, and the mean
/// and largest proportion per gene.
struct Draws {
    rho: Vec<f32>,
    batch: Vec<u32>,
    mean_rho: Vec<f64>,
    max_rho: Vec<f32>,
}

/// Compares `group1` with `group2` (cell indices into `m`, whose genes are the model's
/// and whose batch codes are `batch_codes`).
pub fn differential_expression(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    group1: &[usize],
    group2: &[usize],
    opts: &DeOptions,
) -> Result<DeResult> {
    let cfg = &params.config;
    opts.validate(cfg.n_batches)?;
    if m.n_genes != cfg.n_genes {
        return Err(Error::Config(format!(
            "the data has {} genes but the model {}",
            m.n_genes, cfg.n_genes
        )));
    }
    for (name, g) in [("group 1", group1), ("group 2", group2)] {
        if g.is_empty() {
            return Err(Error::Config(format!(
                "{name} has no cells: select some first"
            )));
        }
        if let Some(&c) = g.iter().find(|&&c| c >= m.n_cells) {
            return Err(Error::Config(format!(
                "{name} names cell {c}, but the data has {} cells",
                m.n_cells
            )));
        }
    }
    let d1 = draw(params, m, batch_codes, group1, opts, 0)?;
    let d2 = draw(params, m, batch_codes, group2, opts, 1)?;
    let g = cfg.n_genes;

    // Pairs: within each batch when decoding as every batch, else across all draws.
    let pairs = Stream::new(opts.seed, STREAM_PAIRS);
    let buckets: Vec<(Vec<usize>, Vec<usize>, usize)> = match opts.decode_as {
        DecodeAs::AllBatches => {
            let k = cfg.n_batches;
            (0..k as u32)
                .map(|b| {
                    let rows = |d: &Draws| -> Vec<usize> {
                        (0..d.batch.len()).filter(|&i| d.batch[i] == b).collect()
                    };
                    (
                        rows(&d1),
                        rows(&d2),
                        opts.n_pairs / k + usize::from((b as usize) < opts.n_pairs % k),
                    )
                })
                .collect()
        }
        _ => vec![(
            (0..d1.batch.len()).collect(),
            (0..d2.batch.len()).collect(),
            opts.n_pairs,
        )],
    };
    let (raw1, nz1) = raw_stats(m, group1);
    let (raw2, nz2) = raw_stats(m, group2);
    let pc = match opts.pseudocount {
        Some(pc) => pc,
        None => estimate_pseudocount(&d1.max_rho, &raw1, &d2.max_rho, &raw2),
    };
    let pc_stats = 1e-3 * pc;
    let mut sum = vec![0f64; g];
    let mut sum_sq = vec![0f64; g];
    let mut n_up = vec![0u32; g];
    let mut n_down = vec![0u32; g];
    let mut lo = vec![f32::INFINITY; g];
    let mut hi = vec![f32::NEG_INFINITY; g];
    let mut n_pairs = 0u64;
    let mut index = 0u32;
    for (rows1, rows2, count) in &buckets {
        if rows1.is_empty() || rows2.is_empty() {
            continue;
        }
        for _ in 0..*count {
            let w = pairs.block(0, index, 0);
            index = index.wrapping_add(1);
            let i1 = rows1[pick(w[0], rows1.len())];
            let i2 = rows2[pick(w[1], rows2.len())];
            let a = &d1.rho[i1 * g..(i1 + 1) * g];
            let b = &d2.rho[i2 * g..(i2 + 1) * g];
            for j in 0..g {
                // The test with the pseudocount, the summary with a thousandth of it.
                let test = (a[j] + pc).log2() - (b[j] + pc).log2();
                n_up[j] += u32::from(test >= opts.delta);
                n_down[j] += u32::from(test < -opts.delta);
                let lfc = (a[j] + pc_stats).log2() - (b[j] + pc_stats).log2();
                sum[j] += f64::from(lfc);
                sum_sq[j] += f64::from(lfc) * f64::from(lfc);
                lo[j] = lo[j].min(lfc);
                hi[j] = hi[j].max(lfc);
            }
            n_pairs += 1;
        }
    }
    let np = n_pairs as f64;
    let mut genes: Vec<GeneDe> = (0..g)
        .map(|j| {
            let mean = sum[j] / np;
            let var = (sum_sq[j] / np - mean * mean).max(0.0);
            let (up, down) = (f64::from(n_up[j]) / np, f64::from(n_down[j]) / np);
            let p = match opts.test_mode {
                TestMode::Three => up.max(down),
                TestMode::Two => up + down,
            };
            GeneDe {
                gene: j,
                lfc_mean: mean as f32,
                lfc_std: var.sqrt() as f32,
                lfc_min: lo[j],
                lfc_max: hi[j],
                proba_de: p as f32,
                bayes_factor: ((p + 1e-8).ln() - (1.0 - p + 1e-8).ln()) as f32,
                is_de_fdr: false,
                scale1: d1.mean_rho[j] as f32,
                scale2: d2.mean_rho[j] as f32,
                raw_mean1: raw1[j],
                raw_mean2: raw2[j],
                nonzero1: nz1[j],
                nonzero2: nz2[j],
            }
        })
        .collect();
    genes.sort_by(|a, b| {
        b.proba_de
            .total_cmp(&a.proba_de)
            .then(b.lfc_mean.abs().total_cmp(&a.lfc_mean.abs()))
            .then(a.gene.cmp(&b.gene))
    });
    let called = fdr_calls(
        &genes
            .iter()
            .map(|x| f64::from(x.proba_de))
            .collect::<Vec<_>>(),
        opts.fdr_target,
    );
    for x in genes.iter_mut().take(called) {
        x.is_de_fdr = true;
    }
    Ok(DeResult {
        genes,
        n_cells1: group1.len(),
        n_cells2: group2.len(),
        n_de: called,
        pseudocount: pc,
        options: opts.clone(),
    })
}

/// The two groups of a comparison by a metadata column: the cells among `cells` whose
/// value of `column` is `group1`, and those whose value is `group2` (or, without it,
/// every other cell among `cells`: "the rest").
pub fn groups_by_column(
    m: &CountMatrix,
    cells: &[usize],
    column: &str,
    group1: &str,
    group2: Option<&str>,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let col = crate::pipeline::find_column(m, column, "the group column")?;
    let (codes, levels) = crate::pipeline::column_codes(col);
    let level = |name: &str| {
        levels.iter().position(|l| l == name).ok_or_else(|| {
            Error::Config(format!(
                "column {column:?} has no value {name:?}; its values are: {}",
                levels.join(", ")
            ))
        })
    };
    let l1 = level(group1)? as u32;
    let l2 = group2.map(level).transpose()?.map(|l| l as u32);
    if l2 == Some(l1) {
        return Err(Error::Config(format!(
            "group 1 and group 2 are both {group1:?}: choose two different values"
        )));
    }
    let mut g1 = Vec::new();
    let mut g2 = Vec::new();
    for &c in cells {
        let code = codes.get(c).copied().flatten();
        if code == Some(l1) {
            g1.push(c);
        } else if l2.is_none() || code == l2 {
            g2.push(c);
        }
    }
    Ok((g1, g2))
}

/// scvi-tools' `estimate_pseudocounts_offset`: for each group, the 0.9 quantile (linear
/// interpolation, numpy's default) of the largest drawn proportion over the genes the
/// group does not express (mean raw count below 0.01; 1e-10 when there are none); the
/// larger of the two, divided by the number of genes, at least 1e-10. (scvi-tools takes
/// the largest over the paired draws; here over all draws, nearly the same set.)
pub fn estimate_pseudocount(max1: &[f32], raw1: &[f32], max2: &[f32], raw2: &[f32]) -> f32 {
    let eps = |max: &[f32], raw: &[f32]| -> f64 {
        let mut v: Vec<f64> = max
            .iter()
            .zip(raw)
            .filter(|(_, &r)| r < 0.01)
            .map(|(&m, _)| f64::from(m))
            .collect();
        if v.is_empty() {
            return 1e-10;
        }
        v.sort_by(f64::total_cmp);
        let pos = 0.9 * (v.len() - 1) as f64;
        let (i, f) = (pos.floor() as usize, pos - pos.floor());
        let hi = v.get(i + 1).copied().unwrap_or(v[i]);
        v[i] + f * (hi - v[i])
    };
    let e = eps(max1, raw1).max(eps(max2, raw2));
    ((e / max1.len().max(1) as f64).max(1e-10)) as f32
}

/// How many of the genes, sorted by probability of change (descending), are called at
/// the expected false discovery rate: the most for which the running mean of
/// `1 - p` is at most `target` (scvi-tools counts every position where it holds; the
/// running mean only rises along a sorted list, so both count the same).
pub fn fdr_calls(sorted_proba: &[f64], target: f64) -> usize {
    let mut miss = 0.0;
    let mut n = 0;
    for (i, p) in sorted_proba.iter().enumerate() {
        miss += 1.0 - p;
        if miss / (i as f64 + 1.0) <= target {
            n = i + 1;
        }
    }
    n
}

/// A uniform index below `n` from one random word.
fn pick(word: u32, n: usize) -> usize {
    ((u64::from(word) * n as u64) >> 32) as usize
}

/// S draws of a group: cells with replacement, one z from each cell's posterior,
/// decoded for the batch [`DecodeAs`] gives.
fn draw(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    group: &[usize],
    opts: &DeOptions,
    which: u32,
) -> Result<Draws> {
    let cfg = &params.config;
    let (zd, g, s) = (cfg.n_latent, cfg.n_genes, opts.n_samples);
    let cells = Stream::new(opts.seed, STREAM_CELLS);
    let noise = Stream::new(opts.seed, STREAM_Z);
    // The posterior of each distinct cell, once.
    let mut unique: Vec<usize> = group.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let (mean, var) = eval::latent(params, m, batch_codes, &unique);
    let mut z = vec![0f32; s * zd];
    let mut batch = vec![0u32; s];
    for i in 0..s {
        let c = group[pick(cells.block(which, i as u32, 0)[0], group.len())];
        let u = unique
            .binary_search(&c)
            .map_err(|_| Error::Config("internal: cell lost".into()))?;
        for k in 0..zd {
            let eps = noise.normal(which, (i * zd + k) as u32);
            z[i * zd + k] = mean[u * zd + k] + var[u * zd + k].sqrt() * eps;
        }
        batch[i] = match opts.decode_as {
            DecodeAs::Observed => batch_codes.get(c).copied().unwrap_or(0),
            DecodeAs::Batch(k) => k,
            DecodeAs::AllBatches => (i % cfg.n_batches) as u32,
        };
    }
    let mut p = params.clone();
    let mut ws = Workspace::default();
    let mut rho = Vec::with_capacity(s * g);
    let mut mean_rho = vec![0f64; g];
    let mut max_rho = vec![0f32; g];
    for (zc, bc) in z.chunks(256 * zd).zip(batch.chunks(256)) {
        let b = bc.len();
        if ws.z.len() < zc.len() {
            ws.z.resize(zc.len(), 0.0);
        }
        ws.z[..zc.len()].copy_from_slice(zc);
        CpuModel::decode(&mut p, &mut ws, bc, b, Mode::Eval);
        rho.extend_from_slice(&ws.rho[..b * g]);
        for row in ws.rho[..b * g].chunks_exact(g) {
            for (j, &r) in row.iter().enumerate() {
                mean_rho[j] += f64::from(r);
                max_rho[j] = max_rho[j].max(r);
            }
        }
    }
    for v in &mut mean_rho {
        *v /= s as f64;
    }
    Ok(Draws {
        rho,
        batch,
        mean_rho,
        max_rho,
    })
}

/// Mean raw count and share of non-zero cells per gene over `cells`.
fn raw_stats(m: &CountMatrix, cells: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f64; m.n_genes];
    let mut nz = vec![0u32; m.n_genes];
    for &c in cells {
        for k in m.indptr[c]..m.indptr[c + 1] {
            let j = m.indices[k] as usize;
            sum[j] += f64::from(m.data[k]);
            nz[j] += u32::from(m.data[k] > 0.0);
        }
    }
    let n = cells.len().max(1) as f64;
    (
        sum.iter().map(|v| (v / n) as f32).collect(),
        nz.iter().map(|&v| (f64::from(v) / n) as f32).collect(),
    )
}

/// The result as CSV, one row per gene in the result's order, with the model's gene ids
/// and names (quoted as RFC 4180 when they need it).
pub fn to_csv(r: &DeResult, gene_ids: &[String], gene_names: &[String]) -> String {
    let mut out = String::from(
        "gene_id,gene_name,lfc_mean,lfc_std,lfc_min,lfc_max,proba_de,proba_not_de,bayes_factor,\
         is_de_fdr,scale1,scale2,raw_mean1,raw_mean2,non_zeros_proportion1,non_zeros_proportion2\n",
    );
    for x in &r.genes {
        let name = |v: &[String]| v.get(x.gene).map(|s| csv_field(s)).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            name(gene_ids),
            name(gene_names),
            x.lfc_mean,
            x.lfc_std,
            x.lfc_min,
            x.lfc_max,
            x.proba_de,
            1.0 - x.proba_de,
            x.bayes_factor,
            x.is_de_fdr,
            x.scale1,
            x.scale2,
            x.raw_mean1,
            x.raw_mean2,
            x.nonzero1,
            x.nonzero2
        ));
    }
    out
}

/// One CSV field: RFC 4180 quoting (`data::quote_field`), and a leading `=`, `+`, `-` or
/// `@` prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_field(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@']) {
        crate::data::quote_field(&format!("'{s}"), ',').into_owned()
    } else {
        crate::data::quote_field(s, ',').into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdr_calls_follow_the_running_mean() {
        // running mean of 1 - p: 0.0, 0.01, 0.04, 0.105 -> three called at 0.05
        assert_eq!(fdr_calls(&[1.0, 0.98, 0.9, 0.7], 0.05), 3);
        assert_eq!(fdr_calls(&[0.5, 0.4], 0.05), 0);
        assert_eq!(fdr_calls(&[], 0.05), 0);
    }

    #[test]
    fn pick_stays_in_range_and_covers_it() {
        let mut seen = [false; 7];
        for w in [0u32, 1, u32::MAX / 7, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
            let i = pick(w, 7);
            assert!(i < 7);
            seen[i] = true;
        }
        assert!(seen[0] && seen[6]);
    }

    /// numpy: np.quantile([1e-5, 2e-5, 4e-5, 8e-5], 0.9) = 6.8e-5 (the genes group 1 does
    /// not express), divided by the 5 genes.
    #[test]
    fn the_pseudocount_is_scvi_tools_estimate() {
        let max1 = [1e-5f32, 2e-5, 4e-5, 8e-5, 0.5];
        let raw1 = [0.0f32, 0.001, 0.0, 0.005, 3.0];
        let max2 = [1.0f32; 5];
        let raw2 = [1.0f32; 5];
        let pc = estimate_pseudocount(&max1, &raw1, &max2, &raw2);
        assert!((pc - 6.8e-5 / 5.0).abs() < 1e-10, "{pc}");
        // Every gene expressed in both groups: the floor.
        assert_eq!(estimate_pseudocount(&max2, &raw2, &max2, &raw2), 1e-10);
    }

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("CD3E"), "CD3E");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
    }
}
