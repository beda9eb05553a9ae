//! The reparameterisation trick: `z = mean + sqrt(var) * eps`, `eps ~ N(0, I)`, with
//! `var = exp(v) + kl::VAR_EPS` (scvi-tools). Element `i = row * Z + j` draws
//! `eps = rng::normal(seed, stream, step, i)` (Box-Muller on words 0 and 1 of its
//! Philox block; see `rng`). `mean`, `v`, `eps`, `z` and the gradients are B x Z.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::kl::VAR_EPS;
use crate::rng::Stream;

/// Draws `eps_out` and writes `z_out = mean + sqrt(exp(v) + 1e-4) * eps` (both
/// overwritten; `eps` is kept for [`backward`]).
pub fn forward(
    mean: &[f32],
    v: &[f32],
    b: usize,
    z_dim: usize,
    seed: u64,
    step: u32,
    stream: u32,
    eps_out: &mut [f32],
    z_out: &mut [f32],
) {
    let s = Stream::new(seed, stream);
    for i in 0..b * z_dim {
        let e = s.normal(step, i as u32);
        eps_out[i] = e;
        z_out[i] = mean[i] + (v[i].exp() + VAR_EPS).sqrt() * e;
    }
}

/// Backward given `dz`: OVERWRITES `d_mean = dz` and
/// `d_v = dz * eps * exp(v) / (2 sqrt(var))` (the first writer of these gradients; the
/// KL term then adds with `kl::backward`).
pub fn backward(
    dz: &[f32],
    eps: &[f32],
    v: &[f32],
    b: usize,
    z_dim: usize,
    d_mean: &mut [f32],
    d_v: &mut [f32],
) {
    for i in 0..b * z_dim {
        let e = v[i].exp();
        d_mean[i] = dz[i];
        d_v[i] = dz[i] * eps[i] * e / (2.0 * (e + VAR_EPS).sqrt());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{normal, REPARAM};

    #[test]
    fn uses_the_documented_noise() {
        let (mean, v) = ([1.0f32, -2.0, 0.5, 0.0], [0.0f32, 1.0, -3.0, 2.0]);
        let (mut eps, mut z) = ([0.0f32; 4], [0.0f32; 4]);
        forward(&mean, &v, 2, 2, 99, 4, REPARAM, &mut eps, &mut z);
        for i in 0..4 {
            assert_eq!(eps[i], normal(99, REPARAM, 4, i as u32));
            let want = mean[i] + (v[i].exp() + 1e-4).sqrt() * eps[i];
            assert!((z[i] - want).abs() < 1e-6);
        }
    }
}
