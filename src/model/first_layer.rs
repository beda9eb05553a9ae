//! The encoder's first layer: `log1p(counts) W + bias` (+ the cell's batch row of W with
//! `encode_batch`), forward and weight gradients. A training minibatch of 30% non-zero
//! or more is read dense, as one matrix product (`x_log`, kept for the backward pass);
//! sparser minibatches, and every encoding, as sparse rows. Encoding never goes dense, so
//! a cell's latent means do not depend on the cells encoded with it (their rounding would).

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
    input.dense = training && dense_input(mb, rows, g);
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

/// Whether a minibatch is read dense: from 30% non-zero on, the product is the faster.
fn dense_input(mb: &Minibatch, rows: &[usize], n_genes: usize) -> bool {
    let nnz: usize = rows.iter().map(|&r| mb.indptr[r + 1] - mb.indptr[r]).sum();
    nnz * 10 >= rows.len() * n_genes * 3
}

/// `out` (rows.len() x n_genes) = the log1p counts of `rows`, zeros included; rows over
/// the kernels' threads.
fn fill_dense_log1p(mb: &Minibatch, rows: &[usize], n_genes: usize, out: &mut Vec<f32>) {
    out.clear();
    out.resize(rows.len() * n_genes, 0.0);
    let parts = par::ranges(rows.len(), rows.len() * n_genes);
    let outs = par::split_rows(&mut out[..], &parts, n_genes);
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(outs)
        .map(|(part, o)| {
            move || {
                for (r, &cell) in rows[part].iter().enumerate() {
                    let row = &mut o[r * n_genes..(r + 1) * n_genes];
                    for nz in mb.indptr[cell]..mb.indptr[cell + 1] {
                        row[mb.indices[nz] as usize] = mb.log1p_values[nz];
                    }
                }
            }
        })
        .collect();
    par::run(jobs);
}
