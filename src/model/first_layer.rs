//! The encoder's first layer: `log1p(counts) W + bias` (+ the cell's batch row of W with
//! `encode_batch`), forward and weight gradients. A training minibatch of 30% non-zero
//! or more is read dense, as one matrix product (`x_log`, kept for the backward pass,
//! from the dense counts; such minibatches are gathered without their sparse rows);
//! sparser minibatches, and every encoding, as sparse rows. Encoding never goes dense, so
//! a cell's latent means do not depend on the cells encoded with it (their rounding would).

use super::batch::{log1p_into, reads_dense};
use super::cpu_model::{add_batch_grads, add_batch_rows};
use super::{Minibatch, ModelConfig};
use crate::backend::cpu::{linear, par};

/// The first layer's input as the forward pass read it, for the backward pass.
#[derive(Debug, Clone, Default)]
pub(super) struct FirstInput {
    /// The dense log1p counts (B x G) when the minibatch was read dense.
    x_log: Vec<f32>,
    dense: bool,
}

/// `pre` (B x H, overwritten) for the cells `rows` of `mb`; `weight` is the layer's
/// n_in x H matrix (genes, then batches), `bias` H.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    cfg: &ModelConfig,
    mb: &Minibatch,
    rows: &[usize],
    training: bool,
    weight: &[f32],
    bias: &[f32],
    input: &mut FirstInput,
    pre: &mut [f32],
) {
    let (b, g, h) = (rows.len(), cfg.n_genes, cfg.n_hidden);
    // A minibatch without its sparse rows is read dense; only training plans them
    // (encodings gather whole minibatches and read them sparse).
    debug_assert!(
        training || !mb.without_csr,
        "an encoding of a training minibatch"
    );
    input.dense = mb.without_csr || (training && dense_input(mb, rows, g));
    if input.dense {
        fill_dense_log1p(mb, rows, g, &mut input.x_log);
        linear::forward(
            &input.x_log[..b * g],
            &weight[..g * h],
            bias,
            b,
            g,
            h,
            &mut pre[..b * h],
        );
    } else {
        let n_in = weight.len() / h.max(1);
        linear::forward_sparse(
            &mb.indptr,
            &mb.indices,
            &mb.log1p_values,
            rows,
            |v| v,
            weight,
            bias,
            n_in,
            h,
            &mut pre[..b * h],
        );
    }
    if cfg.encode_batch {
        add_batch_rows(pre, weight, g, h, &mb.batch, cfg.batch_inputs());
    }
}

/// Weight and bias gradients (overwritten) from `d_pre` (B x H), reading the input the
/// way [`forward`] read it.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    cfg: &ModelConfig,
    mb: &Minibatch,
    rows: &[usize],
    input: &FirstInput,
    d_pre: &[f32],
    dw: &mut [f32],
    dbias: &mut [f32],
) {
    let (b, g, h) = (rows.len(), cfg.n_genes, cfg.n_hidden);
    if input.dense {
        let x = &input.x_log[..b * g];
        linear::backward(x, &[], d_pre, b, g, h, None, &mut dw[..g * h], dbias);
    } else {
        let n_in = dw.len() / h.max(1);
        linear::backward_sparse_weights(
            &mb.indptr,
            &mb.indices,
            &mb.log1p_values,
            rows,
            |v| v,
            d_pre,
            n_in,
            h,
            dw,
            dbias,
        );
    }
    if cfg.encode_batch {
        add_batch_grads(dw, d_pre, g, h, &mb.batch, cfg.batch_inputs());
    }
}

/// Whether the cells `rows` of a minibatch are read dense ([`reads_dense`]).
fn dense_input(mb: &Minibatch, rows: &[usize], n_genes: usize) -> bool {
    let nnz: usize = rows.iter().map(|&r| mb.indptr[r + 1] - mb.indptr[r]).sum();
    reads_dense(nnz, rows.len(), n_genes)
}

/// `out` (rows.len() x n_genes) = the log1p counts of `rows`, zeros included: each
/// dense row of counts through the log1p table (vectorised, no scattered writes, the
/// bits of the sparse values' `ln_1p`); rows over the kernels' threads.
fn fill_dense_log1p(mb: &Minibatch, rows: &[usize], n_genes: usize, out: &mut Vec<f32>) {
    // Every value is written below: no clearing.
    out.resize(rows.len() * n_genes, 0.0);
    let parts = par::ranges(rows.len(), rows.len() * n_genes);
    let outs = par::split_rows(&mut out[..], &parts, n_genes);
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(outs)
        .map(|(part, o)| {
            move || {
                for (r, &cell) in rows[part].iter().enumerate() {
                    let counts = &mb.counts[cell * n_genes..(cell + 1) * n_genes];
                    log1p_into(counts, &mut o[r * n_genes..(r + 1) * n_genes]);
                }
            }
        })
        .collect();
    par::run(jobs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::CountMatrix;

    #[test]
    fn the_dense_input_has_the_bits_of_the_sparse_values() {
        // Counts the table holds, and others: big, fractional, a stored zero.
        let vals = [1.0f32, 2.0, 1023.0, 1024.0, 5000.0, 0.5, 3.25, 0.0, 17.0];
        let (cells, genes) = (6, 37);
        let mut trip = Vec::new();
        for c in 0..cells {
            for j in (c % 3..genes).step_by(2 + c % 2) {
                trip.push((c as u32, j as u32, vals[(c * 7 + j) % vals.len()]));
            }
        }
        let m = CountMatrix::from_triplets(cells, genes, trip);
        let mb = Minibatch::gather(&m, &[], &[4, 0, 5, 2, 1, 3]);
        let rows = [3, 1, 4];
        let mut dense = vec![f32::NAN; 7];
        fill_dense_log1p(&mb, &rows, genes, &mut dense);
        assert_eq!(dense.len(), rows.len() * genes);
        for (r, &cell) in rows.iter().enumerate() {
            let mut want = vec![0f32; genes];
            for nz in mb.indptr[cell]..mb.indptr[cell + 1] {
                want[mb.indices[nz] as usize] = mb.log1p_values[nz];
            }
            let got = &dense[r * genes..(r + 1) * genes];
            assert!(got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
}
