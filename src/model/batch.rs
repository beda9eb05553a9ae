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
