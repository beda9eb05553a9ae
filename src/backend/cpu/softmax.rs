//! Row softmax: the decoder's gene proportions `rho = softmax(logits)` per cell.
//!
//! `logits` and `rho` are B x G, row-major. The count likelihoods return gradients with
//! respect to the logits directly (see `likelihood`), so training needs only
//! [`forward`]; [`backward`] is the general vector-Jacobian product.

use super::count_rows::sum_f64_body;
use super::fastmath::{exp, wide_kernel};
use super::par;

/// The largest value of `v` (`-inf` for none), in 8 lanes; `max` is exact, so the lanes
/// give what one pass would.
#[inline(always)]
fn row_max(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = a.max(x);
        }
    }
    acc.into_iter()
        .chain(rest.iter().copied())
        .fold(f32::NEG_INFINITY, f32::max)
}

/// One row: `rho = exp(l - max)` ([`super::fastmath::exp`], within 1e-7), then scaled by
/// one over its f64 sum.
#[inline(always)]
fn softmax_row_body(l: &[f32], rho: &mut [f32]) {
    let n = l.len();
    let rho = &mut rho[..n];
    let max = row_max(l);
    for j in 0..n {
        rho[j] = exp(l[j] - max);
    }
    let inv = (1.0 / sum_f64_body(rho)) as f32;
    for p in rho.iter_mut() {
        *p *= inv;
    }
}

wide_kernel!(
    /// [`softmax_row_body`] compiled for the baseline and AVX2.
    fn softmax_row(l: &[f32], rho: &mut [f32]) -> () => softmax_row_body
);

/// `rho[r] = exp(logits[r] - max) / sum exp(logits[r] - max)`, sums in f64. `rho` is
/// overwritten. Rows are split over threads ([`super::par`]), each computed alone.
pub fn forward(logits: &[f32], b: usize, g: usize, rho: &mut [f32]) {
    let parts = par::ranges(b, b * g * 4);
    let outs = par::split_rows(&mut rho[..b * g], &parts, g);
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(outs)
        .map(|(rows, out)| {
            move || {
                let start = rows.start;
                for r in rows {
                    let o = &mut out[(r - start) * g..(r - start + 1) * g];
                    softmax_row(&logits[r * g..(r + 1) * g], o);
                }
            }
        })
        .collect();
    par::run(jobs);
}
/// Backward: `dlogits[k] = rho[k] * (drho[k] - sum_g drho[g] rho[g])` per row (f64 sum).
/// `rho`, `drho`, `dlogits` are B x G; `dlogits` is overwritten.
pub fn backward(rho: &[f32], drho: &[f32], b: usize, g: usize, dlogits: &mut [f32]) {
    for r in 0..b {
        let range = r * g..(r + 1) * g;
        let (pr, dr) = (&rho[range.clone()], &drho[range.clone()]);
        let dot: f64 = pr
            .iter()
            .zip(dr)
            .map(|(&p, &d)| f64::from(p) * f64::from(d))
            .sum();
        let dot = dot as f32;
        for ((o, &p), &d) in dlogits[range].iter_mut().zip(pr).zip(dr) {
            *o = p * (d - dot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sum_to_one_and_survive_large_logits() {
        let logits = [1.0, 2.0, 3.0, 1000.0, 1000.0, -1000.0];
        let mut rho = [0.0f32; 6];
        forward(&logits, 2, 3, &mut rho);
        let e = [(-2f64).exp(), (-1f64).exp(), 1.0];
        let s: f64 = e.iter().sum();
        for k in 0..3 {
            assert!((f64::from(rho[k]) - e[k] / s).abs() < 1e-7);
        }
        assert_eq!(&rho[3..], &[0.5, 0.5, 0.0]);
    }

    #[test]
    fn the_avx2_row_gives_the_baseline_bits() {
        let l: Vec<f32> = (0..1003)
            .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 9.0)
            .collect();
        let (mut wide, mut base) = (vec![0.0; 1003], vec![0.0; 1003]);
        softmax_row(&l, &mut wide);
        softmax_row_body(&l, &mut base);
        assert!(wide
            .iter()
            .zip(&base)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        let s: f64 = wide.iter().map(|&p| f64::from(p)).sum();
        assert!((s - 1.0).abs() < 1e-6);
    }
}
