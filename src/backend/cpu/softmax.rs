//! Row softmax: the decoder's gene proportions `rho = softmax(logits)` per cell.
//!
//! `logits` and `rho` are B x G, row-major. The count likelihoods return gradients with
//! respect to the logits directly (see `likelihood`), so training needs only
//! [`forward`]; [`backward`] is the general vector-Jacobian product.

/// `rho[r] = exp(logits[r] - max) / sum exp(logits[r] - max)`, sums in f64. `rho` is
/// overwritten.
pub fn forward(logits: &[f32], b: usize, g: usize, rho: &mut [f32]) {
    for r in 0..b {
        let lr = &logits[r * g..(r + 1) * g];
        let pr = &mut rho[r * g..(r + 1) * g];
        let max = lr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f64;
        for (p, &l) in pr.iter_mut().zip(lr) {
            let e = (l - max).exp();
            *p = e;
            sum += f64::from(e);
        }
        let inv = (1.0 / sum) as f32;
        for p in pr.iter_mut() {
            *p *= inv;
        }
    }
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
}
