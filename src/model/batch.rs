//! Minibatches: the rows of a training step gathered from the sparse matrix.

use crate::data::CountMatrix;

/// B cells of one step: their counts (dense, B x G, for the likelihood), the sparse
/// rows (for the encoder's first layer), library sizes and batch indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minibatch {
    /// B: number of cells.
    pub n_rows: usize,
    /// G: number of genes.
    pub n_genes: usize,
    /// Dense counts, B x G.
    pub counts: Vec<f32>,
    /// CSR row pointers of the same cells (B + 1).
    pub indptr: Vec<usize>,
    /// CSR gene indices.
    pub indices: Vec<u32>,
    /// CSR values.
    pub values: Vec<f32>,
    /// `ln(1 + value)` of each CSR value: the encoder's input, computed once per
    /// minibatch (from a table for small integer counts, bit for bit `f32::ln_1p`).
    pub log1p_values: Vec<f32>,
    /// Observed library size of each cell (total counts), B.
    pub library: Vec<f32>,
    /// Batch index of each cell, B (0 when there is no batch covariate).
    pub batch: Vec<u32>,
}

impl Minibatch {
    /// An error (not a panic in a kernel) when a cell's batch code is outside a model
    /// of `n_batches` batches (0 or 1: one batch).
    pub fn check_batches(&self, n_batches: usize) -> crate::Result<()> {
        match self.batch[..self.n_rows.min(self.batch.len())]
            .iter()
            .find(|&&k| k as usize >= n_batches.max(1))
        {
            Some(&bad) => Err(crate::Error::Config(format!(
                "a cell of batch {bad} was given to a model of {n_batches} batches"
            ))),
            None => Ok(()),
        }
    }

    /// Gathers `rows` of `m`; `batch_codes` gives each cell's batch (all 0 when empty).
    /// Buffers are reused when `self` already holds a minibatch (no per-step allocation
    /// once the largest batch has been seen).
    pub fn gather_into(&mut self, m: &CountMatrix, batch_codes: &[u32], rows: &[usize]) {
        let (b, g) = (rows.len(), m.n_genes);
        self.n_rows = b;
        self.n_genes = g;
        self.counts.clear();
        self.counts.resize(b * g, 0.0);
        self.indptr.clear();
        self.indptr.push(0);
        self.indices.clear();
        self.values.clear();
        self.log1p_values.clear();
        self.library.clear();
        self.batch.clear();
        for (r, &cell) in rows.iter().enumerate() {
            let (idx, val) = m.row(cell);
            let mut total = 0.0f64;
            for (&j, &v) in idx.iter().zip(val) {
                self.counts[r * g + j as usize] = v;
                total += v as f64;
            }
            self.indices.extend_from_slice(idx);
            self.values.extend_from_slice(val);
            self.log1p_values
                .extend(val.iter().map(|&v| log1p_count(v)));
            self.indptr.push(self.indices.len());
            self.library.push(total as f32);
            self.batch.push(batch_codes.get(cell).copied().unwrap_or(0));
        }
    }

    /// A new minibatch of `rows`.
    pub fn gather(m: &CountMatrix, batch_codes: &[u32], rows: &[usize]) -> Minibatch {
        let mut mb = Minibatch::default();
        mb.gather_into(m, batch_codes, rows);
        mb
    }
}

/// `f32::ln_1p(v)`, from a table for the integer counts 0..=1023 (most of them).
fn log1p_count(v: f32) -> f32 {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| (0..1024).map(|k| (k as f32).ln_1p()).collect());
    let k = v as usize;
    if k as f32 == v {
        if let Some(&t) = table.get(k) {
            return t;
        }
    }
    v.ln_1p()
}

#[cfg(test)]
mod log1p_tests {
    #[test]
    fn the_table_is_ln_1p_bit_for_bit() {
        for v in [0.0f32, 1.0, 2.0, 7.0, 1023.0, 1024.0, 0.5, 3.25, 1e6] {
            assert_eq!(super::log1p_count(v).to_bits(), v.ln_1p().to_bits(), "{v}");
        }
    }
}
