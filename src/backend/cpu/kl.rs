//! KL divergence of the encoder's diagonal Gaussian q(z|x) from the prior N(0, I), in
//! closed form: `KL = 0.5 * sum_j (var_j + mean_j^2 - 1 - ln var_j)`.
//!
//! As in scvi-tools the encoder's raw output `v` parameterises the variance as
//! `var = exp(v) + VAR_EPS`. `mean`, `v`, `d_mean`, `d_v` are B x Z, row-major.

/// Added to `exp(v)` to form the variance of q(z|x) (scvi-tools' 1e-4).
pub const VAR_EPS: f32 = 1e-4;

/// Per-cell KL(q(z|x) || N(0, I)) into `kl` (B, overwritten); f64 sums over Z.
pub fn forward(mean: &[f32], v: &[f32], b: usize, z: usize, kl: &mut [f32]) {
    for (r, out) in kl[..b].iter_mut().enumerate() {
        let mut s = 0f64;
        for i in r * z..(r + 1) * z {
            s += term(mean[i], v[i]);
        }
        *out = (0.5 * s) as f32;
    }
}

/// `var + mean^2 - 1 - ln var` for one latent dimension, in f64.
fn term(mean: f32, v: f32) -> f64 {
    let var = f64::from(v).exp() + f64::from(VAR_EPS);
    var + f64::from(mean).powi(2) - 1.0 - var.ln()
}

/// Gradient of `sum_cells weight[c] * KL[c]`, ACCUMULATED (`+=`) into `d_mean` and `d_v`
/// (B x Z) because the reparameterisation path writes them first:
/// `d_mean += w * mean`, `d_v += w * 0.5 * (1 - 1/var) * exp(v)`. `weight` is B (e.g.
/// `kl_weight / B` for every cell).
pub fn backward(
    mean: &[f32],
    v: &[f32],
    weight: &[f32],
    b: usize,
    z: usize,
    d_mean: &mut [f32],
    d_v: &mut [f32],
) {
    for (r, &w) in weight[..b].iter().enumerate() {
        for i in r * z..(r + 1) * z {
            let e = v[i].exp();
            let var = e + VAR_EPS;
            d_mean[i] += w * mean[i];
            d_v[i] += w * 0.5 * (1.0 - 1.0 / var) * e;
        }
    }
}

/// Per-dimension KL summed over the B cells, ADDED into `per_dim` (Z, f64) so an
/// evaluation can run over many minibatches; divide by the number of cells afterwards.
/// Dimensions with a mean KL near 0 are inactive ("collapsed").
pub fn per_dim(mean: &[f32], v: &[f32], b: usize, z: usize, per_dim: &mut [f64]) {
    for r in 0..b {
        for (j, acc) in per_dim[..z].iter_mut().enumerate() {
            let i = r * z + j;
            *acc += 0.5 * term(mean[i], v[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_values() {
        // var = 1 - 1e-4 + 1e-4 = 1 and mean 0: KL 0; mean 2: KL 2 per dimension.
        let v0 = (1.0f32 - VAR_EPS).ln();
        let mut kl = [f32::NAN; 2];
        forward(&[0.0, 0.0, 2.0, 0.0], &[v0; 4], 2, 2, &mut kl);
        assert!(kl[0].abs() < 1e-6 && (kl[1] - 2.0).abs() < 1e-6, "{kl:?}");
        // var = e + 1e-4 (v = 1): 0.5 (var - 1 - ln var).
        let var = 1f64.exp() + 1e-4;
        forward(&[0.0], &[1.0], 1, 1, &mut kl);
        assert!((f64::from(kl[0]) - 0.5 * (var - 1.0 - var.ln())).abs() < 1e-6);
        let mut pd = [1.0f64, 0.0];
        per_dim(&[0.0, 0.0, 2.0, 0.0], &[v0; 4], 2, 2, &mut pd);
        assert!((pd[0] - 3.0).abs() < 1e-6 && pd[1].abs() < 1e-6);
        let (mut dm, mut dv) = ([1.0f32], [1.0f32]);
        backward(&[2.0], &[1.0], &[0.5], 1, 1, &mut dm, &mut dv);
        assert!((dm[0] - 2.0).abs() < 1e-6);
        let want = 1.0 + 0.25 * (1.0 - 1.0 / var) * 1f64.exp();
        assert!((f64::from(dv[0]) - want).abs() < 1e-6);
    }
}
