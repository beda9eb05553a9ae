//! What the page shows of data and a model that is arithmetic, not drawing: a gene's
//! normalised expression for colouring the map, the observed profile of the cells
//! nearest a latent point beside the decoded one, and KL per latent dimension.

use crate::backend::cpu::kl;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::explore::nearest_cells;

/// One gene's normalised expression in every cell (input order):
/// `log1p(count / total counts of the cell * 10^4)` (0 for a cell with no counts). The
/// gene is found by name, then by id.
pub fn expression(m: &CountMatrix, gene: &str) -> Result<Vec<f32>> {
    let g = m
        .gene_names
        .iter()
        .position(|n| n == gene)
        .or_else(|| m.gene_ids.iter().position(|n| n == gene))
        .ok_or_else(|| Error::Config(format!("{gene}: no such gene in the data")))?;
    let sizes = m.library_sizes();
    let mut out = vec![0.0f32; m.n_cells];
    for (c, o) in out.iter_mut().enumerate() {
        // Indices are sorted within a row (CountMatrix::validate).
        let (idx, val) = m.row(c);
        if let Ok(k) = idx.binary_search(&(g as u32)) {
            if sizes[c] > 0.0 {
                *o = (f64::from(val[k]) / sizes[c] * 1e4).ln_1p() as f32;
            }
        }
    }
    Ok(out)
}

/// The cells nearest a latent point and their mean observed profile.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NearestProfile {
    /// The cells (rows of the matrix), nearest first.
    pub cells: Vec<usize>,
    /// Their distances to the point.
    pub distances: Vec<f32>,
    /// Per gene: the mean over the cells of count / the cell's total counts * library.
    pub mean: Vec<f32>,
}

/// The `k` cells among `cells` whose latent means (`latent`, N x `d` over every row of
/// `m`) are nearest the point `z`, and their mean profile scaled to library size
/// `library` (cells without counts are left out of the mean).
pub fn nearest_profile(
    m: &CountMatrix,
    latent: &[f32],
    d: usize,
    cells: &[usize],
    z: &[f32],
    k: usize,
    library: f32,
) -> Result<NearestProfile> {
    if z.len() != d {
        return Err(Error::Config(format!(
            "a latent point has {d} coordinates, not {}",
            z.len()
        )));
    }
    let mut pts = Vec::with_capacity(cells.len() * d);
    for &c in cells {
        pts.extend_from_slice(&latent[c * d..(c + 1) * d]);
    }
    let near = nearest_cells(&pts, d, z, k);
    let sizes = m.library_sizes();
    let mut profile = vec![0.0f64; m.n_genes];
    let mut used = 0usize;
    for &(pos, _) in &near {
        let c = cells[pos];
        if sizes[c] <= 0.0 {
            continue;
        }
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            profile[g as usize] += f64::from(v) / sizes[c] * f64::from(library);
        }
        used += 1;
    }
    let n = used.max(1) as f64;
    Ok(NearestProfile {
        cells: near.iter().map(|&(pos, _)| cells[pos]).collect(),
        distances: near.iter().map(|&(_, dist)| dist).collect(),
        mean: profile.iter().map(|v| (v / n) as f32).collect(),
    })
}

/// Mean KL(q(z|x) || N(0, I)) of each latent dimension over `cells`, in nats, from the
/// latent means and the variance head's raw output (N x `d` over every row), by the
/// same kernel training uses ([`kl::per_dim`]).
pub fn kl_per_dim(mean: &[f32], raw_v: &[f32], d: usize, cells: &[usize]) -> Vec<f64> {
    let mut sums = vec![0.0f64; d];
    for &c in cells {
        let r = c * d..(c + 1) * d;
        kl::per_dim(&mean[r.clone()], &raw_v[r], 1, d, &mut sums);
    }
    let n = cells.len().max(1) as f64;
    sums.into_iter().map(|k| k / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ObsTable;

    fn matrix() -> CountMatrix {
        // 3 cells x 3 genes: [1 0 3], [0 0 0], [2 2 0].
        CountMatrix {
            n_cells: 3,
            n_genes: 3,
            indptr: vec![0, 2, 2, 4],
            indices: vec![0, 2, 0, 1],
            data: vec![1.0, 3.0, 2.0, 2.0],
            gene_ids: vec!["E0".into(), "E1".into(), "E2".into()],
            gene_names: vec!["A".into(), "B".into(), "C".into()],
            cell_ids: vec!["c0".into(), "c1".into(), "c2".into()],
            obs: ObsTable::default(),
            format: "test".into(),
            source: String::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn expression_is_log1p_of_counts_per_10k() {
        let m = matrix();
        let a = expression(&m, "A").unwrap();
        let want = [(1e4f64 / 4.0).ln_1p(), 0.0, (1e4f64 / 4.0 * 2.0).ln_1p()];
        for (got, want) in a.iter().zip(want) {
            assert!((f64::from(*got) - want).abs() < 1e-4, "{a:?}");
        }
        // By id too; an unknown gene is an error naming it.
        assert_eq!(
            expression(&m, "E2").unwrap()[0],
            expression(&m, "C").unwrap()[0]
        );
        let e = expression(&m, "ZZZ").unwrap_err().to_string();
        assert!(e.contains("ZZZ"), "{e}");
    }

    #[test]
    fn nearest_profile_averages_the_nearest_cells_proportions() {
        let m = matrix();
        // Latent means: c0 at 0, c1 at 10, c2 at 1 (1-D).
        let latent = [0.0, 10.0, 1.0];
        let p = nearest_profile(&m, &latent, 1, &[0, 1, 2], &[0.2], 2, 100.0).unwrap();
        assert_eq!(p.cells, vec![0, 2]);
        // c0: [1/4, 0, 3/4] * 100; c2: [1/2, 1/2, 0] * 100; mean of the two.
        let want = [37.5, 25.0, 37.5];
        for (g, w) in p.mean.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{:?}", p.mean);
        }
        assert!(nearest_profile(&m, &latent, 1, &[0], &[0.0, 1.0], 1, 1.0).is_err());
    }

    #[test]
    fn kl_per_dim_matches_the_closed_form() {
        // Two cells, 2 dims; raw v = ln(var - 1e-4).
        let mean = [0.0f32, 2.0, 1.0, 0.0];
        let var = [1.0f64, 0.5, 2.0, 1.0];
        let raw: Vec<f32> = var.iter().map(|v| ((v - 1e-4) as f32).ln()).collect();
        let got = kl_per_dim(&mean, &raw, 2, &[0, 1]);
        for j in 0..2 {
            let mut want = 0.0;
            for c in 0..2 {
                let (mu, v) = (f64::from(mean[c * 2 + j]), var[c * 2 + j]);
                want += 0.5 * (v + mu * mu - 1.0 - v.ln());
            }
            want /= 2.0;
            assert!((got[j] - want).abs() < 1e-4, "{got:?} vs {want}");
        }
    }
}
