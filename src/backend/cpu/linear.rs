//! Twin of `shaders/linear.wgsl`: fully connected layers `y = x W + bias`, dense and
//! sparse (the encoder's first layer reads only the non-zero counts of a CSR minibatch).
//! One-hot covariate rows are [`super::onehot`].
//!
//! Shapes, all row-major: `x` is B x n_in, `w` is n_in x n_out (so a row of `w` is one
//! input's weights, which the sparse layer reads contiguously), `bias` is n_out, `y` is
//! B x n_out. Outputs are overwritten, never accumulated. Dense products go through
//! [`super::gemm`] (matrixmultiply's cache-blocked SIMD on blocks over threads;
//! transposes by strides).
//!
//! Panics (programming errors, not data errors) if a slice is shorter than its shape.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::fastmath::wide_generic;
use super::gemm::{sgemm, Start};

/// Column sums of `dy` (B x n) into `dbias` (n), overwritten; f64 accumulation, each
/// column summed over the rows in order (row by row, so the reads are contiguous). Wide
/// outputs are split by columns over threads: each column is still summed alone, in
/// row order, so the threads change nothing.
fn column_sums(dy: &[f32], b: usize, n: usize, dbias: &mut [f32]) {
    let parts = super::par::ranges(n.div_ceil(64), b * n);
    let cols: Vec<_> = parts
        .iter()
        .map(|r| (r.start * 64).min(n)..(r.end * 64).min(n))
        .collect();
    let outs = super::par::split_rows(&mut dbias[..n], &cols, 1);
    let jobs: Vec<_> = cols
        .into_iter()
        .zip(outs)
        .map(|(c, out)| {
            move || {
                let mut acc = vec![0.0f64; c.len()];
                for row in dy[..b * n].chunks_exact(n.max(1)) {
                    for (a, &v) in acc.iter_mut().zip(&row[c.clone()]) {
                        *a += f64::from(v);
                    }
                }
                for (d, &a) in out.iter_mut().zip(&acc) {
                    *d = a as f32;
                }
            }
        })
        .collect();
    super::par::run(jobs);
}

/// Forward: `y = x W + bias`. `x` B x n_in, `w` n_in x n_out, `bias` n_out, `y` B x n_out
/// (overwritten).
pub fn forward(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    b: usize,
    n_in: usize,
    n_out: usize,
    y: &mut [f32],
) {
    sgemm(
        b,
        n_in,
        n_out,
        x,
        (n_in, 1),
        w,
        (n_out, 1),
        Start::Rows(bias),
        y,
        n_out,
    );
}

/// Backward of [`forward`] given `dy` (B x n_out): `dx = dy W^T` (B x n_in, skipped when
/// `None`), `dw = x^T dy` (n_in x n_out), `dbias = colsum(dy)` (n_out). All overwritten.
pub fn backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    b: usize,
    n_in: usize,
    n_out: usize,
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    dbias: &mut [f32],
) {
    if let Some(dx) = dx {
        // dx (B x n_in) = dy (B x n_out) * W^T, W^T element (o, i) at i * n_out + o.
        sgemm(
            b,
            n_out,
            n_in,
            dy,
            (n_out, 1),
            w,
            (1, n_out),
            Start::Beta(0.0),
            dx,
            n_in,
        );
    }
    // dw (n_in x n_out) = x^T (n_in x B) * dy, x^T element (i, r) at r * n_in + i.
    sgemm(
        n_in,
        b,
        n_out,
        x,
        (1, n_in),
        dy,
        (n_out, 1),
        Start::Beta(0.0),
        dw,
        n_out,
    );
    column_sums(dy, b, n_out, dbias);
}

/// Sparse forward: `y = t(x) W + bias` for the minibatch of CSR rows `rows`, where
/// `t` (`transform`, e.g. `f32::ln_1p`) is applied to each stored value and zeros stay
/// zero (so `t(0)` must be 0). CSR: `indptr` (n_rows + 1), `indices` (column of each
/// stored value, < n_in), `values`. `w` n_in x n_out, `bias` n_out, `y` rows.len() x n_out
/// (overwritten). Work is proportional to the stored values times n_out.
pub fn forward_sparse<F: Fn(f32) -> f32 + Sync>(
    indptr: &[usize],
    indices: &[u32],
    values: &[f32],
    rows: &[usize],
    transform: F,
    w: &[f32],
    bias: &[f32],
    n_in: usize,
    n_out: usize,
    y: &mut [f32],
) {
    let w = &w[..n_in * n_out];
    let nnz: usize = rows.iter().map(|&c| indptr[c + 1] - indptr[c]).sum();
    let parts = super::par::ranges(rows.len(), nnz * n_out);
    let ys = super::par::split_rows(&mut y[..rows.len() * n_out], &parts, n_out);
    let transform = &transform;
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(ys)
        .map(|(range, y)| {
            move || {
                let rows = &rows[range];
                wide_generic!(sparse_rows_forward(
                    indptr, indices, values, rows, transform, w, bias, n_out, y
                ));
            }
        })
        .collect();
    super::par::run(jobs);
}

/// [`forward_sparse`]'s rows `rows` into `y` (rows.len() x n_out).
#[inline(always)]
fn sparse_rows_forward<F: Fn(f32) -> f32>(
    indptr: &[usize],
    indices: &[u32],
    values: &[f32],
    rows: &[usize],
    transform: &F,
    w: &[f32],
    bias: &[f32],
    n_out: usize,
    y: &mut [f32],
) {
    for (r, &cell) in rows.iter().enumerate() {
        let yr = &mut y[r * n_out..(r + 1) * n_out];
        yr.copy_from_slice(&bias[..n_out]);
        for nz in indptr[cell]..indptr[cell + 1] {
            let t = transform(values[nz]);
            let col = indices[nz] as usize;
            let wr = &w[col * n_out..(col + 1) * n_out];
            for (yj, &wj) in yr.iter_mut().zip(wr) {
                *yj += t * wj;
            }
        }
    }
}

/// Weight gradients of [`forward_sparse`]: `dw = t(x)^T dy` (n_in x n_out, overwritten:
/// zeroed, then one row update per stored value) and `dbias = colsum(dy)` (n_out).
/// `dy` is rows.len() x n_out. (The encoder's input needs no `dx`.) Threads share the
/// rows of `dw` (genes), each adding its genes' values cell after cell, as one would.
pub fn backward_sparse_weights<F: Fn(f32) -> f32 + Sync>(
    indptr: &[usize],
    indices: &[u32],
    values: &[f32],
    rows: &[usize],
    transform: F,
    dy: &[f32],
    n_in: usize,
    n_out: usize,
    dw: &mut [f32],
    dbias: &mut [f32],
) {
    let dw = &mut dw[..n_in * n_out];
    dw.fill(0.0);
    let nnz: usize = rows.iter().map(|&c| indptr[c + 1] - indptr[c]).sum();
    let parts = super::par::ranges(n_in, nnz * n_out);
    let dws = super::par::split_rows(dw, &parts, n_out);
    let transform = &transform;
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(dws)
        .map(|(genes, dw)| {
            move || {
                wide_generic!(sparse_rows_weights(
                    indptr, indices, values, rows, transform, dy, n_out, genes, dw
                ));
            }
        })
        .collect();
    super::par::run(jobs);
    column_sums(dy, rows.len(), n_out, dbias);
}

/// [`backward_sparse_weights`]'s rows `genes` of `dw` (zeroed), from every cell of `rows`.
#[inline(always)]
fn sparse_rows_weights<F: Fn(f32) -> f32>(
    indptr: &[usize],
    indices: &[u32],
    values: &[f32],
    rows: &[usize],
    transform: &F,
    dy: &[f32],
    n_out: usize,
    genes: std::ops::Range<usize>,
    dw: &mut [f32],
) {
    for (r, &cell) in rows.iter().enumerate() {
        let dyr = &dy[r * n_out..(r + 1) * n_out];
        for nz in indptr[cell]..indptr[cell + 1] {
            let col = indices[nz] as usize;
            if !genes.contains(&col) {
                continue;
            }
            let t = transform(values[nz]);
            let c = col - genes.start;
            for (dwj, &g) in dw[c * n_out..(c + 1) * n_out].iter_mut().zip(dyr) {
                *dwj += t * g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_matches_hand_product() {
        // x = [[1, 2], [3, 4], [5, 6]], W = [[1, 0, -1], [2, 1, 0]], bias = [0.5, 0, 1]
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, -1.0, 2.0, 1.0, 0.0];
        let bias = [0.5, 0.0, 1.0];
        let mut y = [f32::NAN; 9];
        forward(&x, &w, &bias, 3, 2, 3, &mut y);
        assert_eq!(y, [5.5, 2.0, 0.0, 11.5, 4.0, -2.0, 17.5, 6.0, -4.0]);
        let dy = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let (mut dx, mut dw, mut db) = ([f32::NAN; 6], [f32::NAN; 6], [f32::NAN; 3]);
        backward(&x, &w, &dy, 3, 2, 3, Some(&mut dx), &mut dw, &mut db);
        // dx row r = W[:, r]; dw = x^T.
        assert_eq!(dx, [1.0, 2.0, 0.0, 1.0, -1.0, 0.0]);
        assert_eq!(dw, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
        assert_eq!(db, [1.0, 1.0, 1.0]);
    }

    /// The sparse rows compiled for the widest instructions here (`wide_generic!`) give
    /// the bits of the same loops compiled for the baseline.
    #[test]
    fn sparse_rows_give_the_baseline_bits() {
        let (n_cells, n_in, n_out) = (40usize, 300usize, 37usize);
        let mut indptr = vec![0usize];
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        for c in 0..n_cells {
            for g in 0..n_in {
                if (c * 7 + g * 13) % 5 == 0 {
                    indices.push(g as u32);
                    values.push(((c + g) % 9) as f32 * 0.37 + 0.1);
                }
            }
            indptr.push(indices.len());
        }
        let rows: Vec<usize> = (0..n_cells).rev().collect();
        let w: Vec<f32> = (0..n_in * n_out)
            .map(|i| ((i * 31) % 17) as f32 * 0.013 - 0.1)
            .collect();
        let bias: Vec<f32> = (0..n_out).map(|i| i as f32 * 0.01).collect();
        let (mut y, mut y_base) = (vec![0.0f32; n_cells * n_out], vec![0.0f32; n_cells * n_out]);
        forward_sparse(
            &indptr,
            &indices,
            &values,
            &rows,
            f32::ln_1p,
            &w,
            &bias,
            n_in,
            n_out,
            &mut y,
        );
        sparse_rows_forward(
            &indptr,
            &indices,
            &values,
            &rows,
            &f32::ln_1p,
            &w,
            &bias,
            n_out,
            &mut y_base,
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&y_base));
        let dy: Vec<f32> = (0..n_cells * n_out)
            .map(|i| ((i * 11) % 23) as f32 * 0.05 - 0.5)
            .collect();
        let (mut dw, mut db) = (vec![f32::NAN; n_in * n_out], vec![0.0f32; n_out]);
        backward_sparse_weights(
            &indptr,
            &indices,
            &values,
            &rows,
            f32::ln_1p,
            &dy,
            n_in,
            n_out,
            &mut dw,
            &mut db,
        );
        let mut dw_base = vec![0.0f32; n_in * n_out];
        sparse_rows_weights(
            &indptr,
            &indices,
            &values,
            &rows,
            &f32::ln_1p,
            &dy,
            n_out,
            0..n_in,
            &mut dw_base,
        );
        assert_eq!(bits(&dw), bits(&dw_base));
        assert!(dw.iter().any(|&v| v != 0.0));
    }

    #[test]
    fn sparse_matches_dense() {
        // CSR 3 x 4: row0 {1: 2}, row1 {}, row2 {0: 1, 3: 5}; minibatch rows [2, 0, 1].
        let indptr = [0, 1, 1, 3];
        let indices = [1u32, 0, 3];
        let values = [2.0f32, 1.0, 5.0];
        let rows = [2usize, 0, 1];
        let w: Vec<f32> = (0..8).map(|i| i as f32 * 0.5 - 1.0).collect();
        let bias = [0.25, -0.5];
        let mut ys = [0.0f32; 6];
        forward_sparse(
            &indptr,
            &indices,
            &values,
            &rows,
            f32::ln_1p,
            &w,
            &bias,
            4,
            2,
            &mut ys,
        );
        let mut dense = [0.0f32; 12];
        for (r, &c) in rows.iter().enumerate() {
            for nz in indptr[c]..indptr[c + 1] {
                dense[r * 4 + indices[nz] as usize] = values[nz].ln_1p();
            }
        }
        let mut yd = [0.0f32; 6];
        forward(&dense, &w, &bias, 3, 4, 2, &mut yd);
        for (a, b) in ys.iter().zip(&yd) {
            assert!((a - b).abs() < 1e-6);
        }
    }
}
