//! Synthetic count matrices of any size, for benchmarks (`cellvae bench`) and the
//! encoding-at-scale measurement (`examples/synthetic_cells.rs`).
//!
//! Cells belong to 8 clusters, each with its own expression programme over the genes
//! (a shared power-law base; one gene in ten boosted eightfold per cluster). With
//! `density` 0 each cell draws 4-12% of the genes by their programme's weights, the
//! sparsity of droplet data on highly variable genes; with `density` > 0 (e.g. 0.78 for
//! about 55% non-zero: wide, dense data as deeply sequenced plate-based protocols give)
//! each gene is expressed with a probability that follows its programme. Counts are
//! geometric with mean about 2. Deterministic for a seed.

use super::{CountMatrix, ObsColumn, ObsTable};

/// A small, fast, deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The number of clusters (cell `c` is in cluster `c % CLUSTERS`).
pub const CLUSTERS: usize = 8;

/// Draws cells of `n_genes` genes one at a time ([`Generator::cell`]).
pub struct Generator {
    rng: Rng,
    /// Per cluster, the cumulative weights of its genes.
    cum: Vec<Vec<f64>>,
    density: f64,
}

impl Generator {
    /// A generator of cells of `n_genes` genes (`density` as in the module docs).
    pub fn new(n_genes: usize, density: f64, seed: u64) -> Generator {
        let mut rng = Rng::new(seed);
        let cum = (0..CLUSTERS)
            .map(|_| {
                let mut acc = 0.0;
                (0..n_genes.max(1))
                    .map(|g| {
                        let base = 1.0 / (1.0 + g as f64).powf(0.6);
                        let boost = if rng.unit() < 0.1 { 8.0 } else { 1.0 };
                        acc += base * boost * (0.5 + rng.unit());
                        acc
                    })
                    .collect()
            })
            .collect();
        Generator { rng, cum, density }
    }

    /// Cell `c`'s sorted genes and counts (cells must be drawn in order).
    pub fn cell(&mut self, c: usize, genes: &mut Vec<u32>, counts: &mut Vec<f32>) {
        genes.clear();
        counts.clear();
        let cum = &self.cum[c % CLUSTERS];
        let rng = &mut self.rng;
        let n_genes = cum.len();
        let total = cum[n_genes - 1];
        if self.density > 0.0 {
            let mean = total / n_genes as f64;
            let depth = 0.6 + 0.8 * rng.unit();
            for g in 0..n_genes {
                let w = cum[g] - if g == 0 { 0.0 } else { cum[g - 1] };
                if rng.unit() < (self.density * depth * (w / mean).sqrt()).min(1.0) {
                    genes.push(g as u32);
                }
            }
        } else {
            let k = ((n_genes as f64) * (0.04 + 0.08 * rng.unit())) as usize;
            for _ in 0..k.max(1) {
                let u = rng.unit() * total;
                genes.push(cum.partition_point(|&x| x < u).min(n_genes - 1) as u32);
            }
            genes.sort_unstable();
            genes.dedup();
        }
        for _ in 0..genes.len() {
            let k = 1.0 + (rng.unit().max(1e-12).ln() / 0.5f64.ln()).floor();
            counts.push(k as f32);
        }
    }
}

/// Gene names `Gene0`.., ids `ENSG00000000000`..
pub fn gene_names(n_genes: usize) -> (Vec<String>, Vec<String>) {
    (
        (0..n_genes).map(|g| format!("ENSG{g:011}")).collect(),
        (0..n_genes).map(|g| format!("Gene{g}")).collect(),
    )
}

/// Cell `c`'s barcode.
pub fn barcode(c: usize) -> String {
    format!("CELL{c:08}-1")
}

/// A whole matrix of `n_cells` x `n_genes`, with a `cluster` column.
pub fn matrix(n_cells: usize, n_genes: usize, density: f64, seed: u64) -> CountMatrix {
    let mut gen = Generator::new(n_genes, density, seed);
    let (gene_ids, gene_names) = gene_names(n_genes);
    let mut m = CountMatrix {
        n_cells,
        n_genes,
        indptr: Vec::with_capacity(n_cells + 1),
        gene_ids,
        gene_names,
        cell_ids: (0..n_cells).map(barcode).collect(),
        format: "synthetic".into(),
        ..Default::default()
    };
    m.indptr.push(0);
    let (mut g, mut v) = (Vec::new(), Vec::new());
    for c in 0..n_cells {
        gen.cell(c, &mut g, &mut v);
        m.indices.extend_from_slice(&g);
        m.data.extend_from_slice(&v);
        m.indptr.push(m.indices.len());
    }
    let labels: Vec<String> = (0..n_cells)
        .map(|c| format!("cluster{}", c % CLUSTERS))
        .collect();
    m.obs = ObsTable {
        columns: vec![ObsColumn::categorical_from_strings("cluster", &labels)],
    };
    m
}

/// A Cell Ranger v3 `.h5` of `m` (genes x cells CSC in `/matrix`, the CSR of cells x
/// genes; every feature `Gene Expression`), for synthetic data sets and tests.
pub fn tenx_h5_bytes(m: &CountMatrix) -> crate::Result<Vec<u8>> {
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let mut fb = hdf5_pure::FileBuilder::new();
    let mut g = fb.create_group("matrix");
    let data: Vec<i32> = m.data.iter().map(|&x| x as i32).collect();
    g.create_dataset("data").with_i32_data(&data);
    let idx: Vec<i64> = m.indices.iter().map(|&i| i64::from(i)).collect();
    g.create_dataset("indices").with_i64_data(&idx);
    let ptr: Vec<i64> = m.indptr.iter().map(|&p| p as i64).collect();
    g.create_dataset("indptr").with_i64_data(&ptr);
    g.create_dataset("shape")
        .with_i32_data(&[m.n_genes as i32, m.n_cells as i32]);
    g.create_dataset("barcodes")
        .with_vlen_strings(&strs(&m.cell_ids));
    let mut f = g.create_group("features");
    f.create_dataset("id").with_vlen_strings(&strs(&m.gene_ids));
    f.create_dataset("name")
        .with_vlen_strings(&strs(&m.gene_names));
    let types = vec!["Gene Expression"; m.n_genes];
    f.create_dataset("feature_type").with_vlen_strings(&types);
    g.add_group(f.finish());
    fb.add_group(g.finish());
    fb.finish()
        .map_err(|e| crate::Error::Config(format!("cannot write the .h5: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn densities_are_as_documented_and_draws_repeat() {
        let sparse = super::matrix(400, 1000, 0.0, 1);
        let dense = super::matrix(200, 1000, 0.78, 7);
        let share = |m: &crate::data::CountMatrix| m.nnz() as f64 / (m.n_cells * m.n_genes) as f64;
        assert!((0.03..0.12).contains(&share(&sparse)), "{}", share(&sparse));
        assert!((0.45..0.65).contains(&share(&dense)), "{}", share(&dense));
        sparse.validate().unwrap();
        assert_eq!(super::matrix(400, 1000, 0.0, 1).data, sparse.data);
        assert!(sparse.data.iter().all(|&x| x >= 1.0 && x == x.floor()));
    }
}
