//! Minibatches: the rows of a training step gathered from the sparse matrix.

use crate::data::CountMatrix;

/// B cells of one step: their counts (dense, B x G, for the likelihood), the sparse
/// rows (for the encoder's first layer; left out of a dense training minibatch, see
/// [`Minibatch::without_csr`]), library sizes and batch indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minibatch {
    /// B: number of cells.
    pub n_rows: usize,
    /// G: number of genes.
    pub n_genes: usize,
    /// Dense counts, B x G.
    pub counts: Vec<f32>,
    /// CSR row pointers of the same cells (B + 1; empty with `without_csr`).
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
    /// The sparse rows were left out (`indptr`, `indices`, `values`, `log1p_values`
    /// empty): a training minibatch dense enough that the first layer reads `counts`
    /// ([`Minibatch::gather_for_training`]). For training only: the first layer reads
    /// such a minibatch dense, where an encoding would read sparse rows.
    pub without_csr: bool,
}

/// Whether the first layer reads `nnz` non-zeros of `b` cells x `g` genes dense in
/// training: from 30% non-zero on, the product is the faster.
pub fn reads_dense(nnz: usize, b: usize, g: usize) -> bool {
    nnz * 10 >= b * g * 3
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
        self.gather_rows(m, batch_codes, rows, true);
    }

    /// [`Minibatch::gather_into`] for a training step: when the cells are dense enough
    /// that the first layer reads them dense ([`reads_dense`]), the sparse rows, which
    /// nothing in a training step then reads, are left out ([`Minibatch::without_csr`]).
    pub fn gather_for_training(&mut self, m: &CountMatrix, batch_codes: &[u32], rows: &[usize]) {
        let nnz: usize = rows.iter().map(|&c| m.indptr[c + 1] - m.indptr[c]).sum();
        let csr = !reads_dense(nnz, rows.len(), m.n_genes);
        self.gather_rows(m, batch_codes, rows, csr);
    }

    fn gather_rows(&mut self, m: &CountMatrix, batch_codes: &[u32], rows: &[usize], csr: bool) {
        let (b, g) = (rows.len(), m.n_genes);
        self.without_csr = !csr;
        self.n_rows = b;
        self.n_genes = g;
        // Each row is zeroed just before its counts are written (in cache), not the
        // whole B x G first.
        self.counts.resize(b * g, 0.0);
        self.indptr.clear();
        if csr {
            self.indptr.push(0);
        }
        self.indices.clear();
        self.values.clear();
        self.log1p_values.clear();
        self.library.clear();
        self.batch.clear();
        let table = log1p_table();
        for (r, &cell) in rows.iter().enumerate() {
            let (idx, val) = m.row(cell);
            let dense = &mut self.counts[r * g..(r + 1) * g];
            dense.fill(0.0);
            for (&j, &v) in idx.iter().zip(val) {
                dense[j as usize] = v;
            }
            if csr {
                self.indices.extend_from_slice(idx);
                self.values.extend_from_slice(val);
                log1p_counts(table, val, &mut self.log1p_values);
                self.indptr.push(self.indices.len());
            }
            self.library
                .push(crate::backend::cpu::counts::sum_f64(val) as f32);
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

/// `f32::ln_1p(k)` for the integer counts k = 0..=1023 (most of them).
fn log1p_table() -> &'static [f32; 1024] {
    static TABLE: std::sync::OnceLock<[f32; 1024]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|k| (k as f32).ln_1p()))
}

/// Appends `f32::ln_1p(v)` of every value to `out`: from [`log1p_table`] for the
/// integer counts 0..=1023, read in a loop without branches (the count from the bits of
/// `v + 2^23`; vectorised, the reads gathered, by [`table_log1p`]), then `ln_1p` for the
/// few other values.
fn log1p_counts(table: &[f32; 1024], val: &[f32], out: &mut Vec<f32>) {
    let start = out.len();
    out.resize(start + val.len(), 0.0);
    log1p_with(table, val, &mut out[start..]);
}

/// `out[i] = f32::ln_1p(val[i])` bit for bit, as [`log1p_counts`] computes it (a dense
/// row of counts, zeros included: the first layer's dense input).
pub(super) fn log1p_into(val: &[f32], out: &mut [f32]) {
    log1p_with(log1p_table(), val, out);
}

/// [`log1p_into`] with the table.
fn log1p_with(table: &[f32; 1024], val: &[f32], out: &mut [f32]) {
    if table_log1p(table, val, out) > 0 {
        for (o, &v) in out.iter_mut().zip(val) {
            if !table_index(v).0 {
                *o = v.ln_1p();
            }
        }
    }
}

/// `out[i] = table[k]` for each value's table index k; returns how many values the table
/// does not hold.
#[inline(always)]
fn table_log1p_body(table: &[f32; 1024], val: &[f32], out: &mut [f32]) -> u32 {
    let mut misses = 0u32;
    for (o, &v) in out.iter_mut().zip(val) {
        let (hit, k) = table_index(v);
        *o = table[k];
        misses += u32::from(!hit);
    }
    misses
}

crate::backend::cpu::fastmath::wide_kernel!(
    fn table_log1p(table: &[f32; 1024], val: &[f32], out: &mut [f32]) -> u32 => table_log1p_body
);

/// Whether `v` is one of the integers 0..=1023 (not -0, whose `ln_1p` is -0), and its
/// index in [`log1p_table`] (0 when it is not).
#[inline(always)]
#[allow(clippy::manual_clamp)] // NaN must give 0, where `clamp` gives NaN
fn table_index(v: f32) -> (bool, usize) {
    let f = v.max(0.0).min(1023.0) + 8_388_608.0;
    let k = (f.to_bits().wrapping_sub(0x4b00_0000) & 1023) as usize;
    (f - 8_388_608.0 == v && v.to_bits() != 0x8000_0000, k)
}

#[cfg(test)]
mod log1p_tests {
    #[test]
    fn the_table_is_ln_1p_bit_for_bit() {
        let vals = [
            0.0f32, -0.0, 1.0, 2.0, 7.0, 1023.0, 1024.0, 0.5, 3.25, 1e6, -2.0,
        ];
        let mut out = vec![9.0];
        super::log1p_counts(super::log1p_table(), &vals, &mut out);
        for (v, o) in vals.iter().zip(&out[1..]) {
            assert_eq!(o.to_bits(), v.ln_1p().to_bits(), "{v}");
        }
        assert_eq!(out[0], 9.0);
    }
}
