//! Batch normalisation over the minibatch, PyTorch `BatchNorm1d` semantics (scvi-tools
//! uses eps 1e-3, momentum 0.01): training normalises with the biased batch variance and
//! updates `running_var` with the unbiased one; evaluation uses the running statistics.
//!
//! Shapes, row-major: `x`, `y`, `xhat`, `dy`, `dx` are B x n; `gamma`, `beta`, the running
//! statistics, `mean`, `inv_std`, `dgamma`, `dbeta` are n. Outputs are overwritten.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::relu_dropout::{relu_dropout_backward, relu_dropout_inplace, Dropout};

/// scvi-tools' batch-norm epsilon.
pub const EPS: f32 = 1e-3;
/// scvi-tools' batch-norm momentum (weight of the new batch in the running statistics).
pub const MOMENTUM: f32 = 0.01;

/// Per-feature statistics saved by [`forward_train`] for [`backward`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BnCache {
    /// Batch mean of each feature (n).
    pub mean: Vec<f32>,
    /// `1 / sqrt(biased batch variance + eps)` of each feature (n).
    pub inv_std: Vec<f32>,
}

impl BnCache {
    /// A cache for `n` features (zeros).
    pub fn new(n: usize) -> Self {
        BnCache {
            mean: vec![0.0; n],
            inv_std: vec![0.0; n],
        }
    }
}

/// [`forward_train`]'s arithmetic (compiled wide by it).
#[inline(always)]
fn forward_train_body(
    x: &[f32],
    b: usize,
    n: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    xhat_out: &mut [f32],
    mean_out: &mut [f32],
    inv_std_out: &mut [f32],
) {
    if b == 0 {
        return;
    }
    let bf = b as f64;
    // Column sums row by row (each column still summed over the rows in order, as a
    // loop over r per column would; this way the columns run in vector lanes).
    let mut sum = vec![0f64; n];
    for row in x[..b * n].chunks_exact(n.max(1)) {
        for (s, &v) in sum.iter_mut().zip(row) {
            *s += f64::from(v);
        }
    }
    let means: Vec<f64> = sum.iter().map(|&s| s / bf).collect();
    let mut sq = vec![0f64; n];
    for row in x[..b * n].chunks_exact(n.max(1)) {
        for ((s, &v), &m) in sq.iter_mut().zip(row).zip(&means) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    for j in 0..n {
        let (mean, ss) = (means[j], sq[j]);
        let var = ss / bf;
        let unbiased = if b > 1 { ss / (bf - 1.0) } else { var };
        mean_out[j] = mean as f32;
        inv_std_out[j] = (1.0 / (var + f64::from(eps)).sqrt()) as f32;
        let m = f64::from(momentum);
        running_mean[j] = ((1.0 - m) * f64::from(running_mean[j]) + m * mean) as f32;
        running_var[j] = ((1.0 - m) * f64::from(running_var[j]) + m * unbiased) as f32;
    }
    for r in 0..b {
        for j in 0..n {
            let i = r * n + j;
            let xh = (x[i] - mean_out[j]) * inv_std_out[j];
            xhat_out[i] = xh;
            y[i] = gamma[j] * xh + beta[j];
        }
    }
}

super::fastmath::wide_kernel!(
    /// Training forward. Writes `y = gamma * xhat + beta`, `xhat = (x - mean) * inv_std`,
    /// `mean_out` and `inv_std_out` (biased variance, f64 sums over the batch), and updates
    /// `running_mean += momentum * (mean - running_mean)` and `running_var` likewise with the
    /// unbiased variance `var * B / (B - 1)` (for B = 1, where PyTorch refuses, the biased
    /// variance 0 is used). Does nothing when B = 0.
    /// Compiled for the baseline, AVX2 and AVX-512: the same arithmetic, the same bits.
    pub fn forward_train(
        x: &[f32],
        b: usize,
        n: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        momentum: f32,
        running_mean: &mut [f32],
        running_var: &mut [f32],
        y: &mut [f32],
        xhat_out: &mut [f32],
        mean_out: &mut [f32],
        inv_std_out: &mut [f32]
    ) -> () => forward_train_body
);

/// [`forward_eval`]'s arithmetic (compiled wide by it).
#[inline(always)]
fn forward_eval_body(
    x: &[f32],
    b: usize,
    n: usize,
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
    y: &mut [f32],
) {
    for r in 0..b {
        for j in 0..n {
            let i = r * n + j;
            let s = gamma[j] / (running_var[j] + eps).sqrt();
            y[i] = (x[i] - running_mean[j]) * s + beta[j];
        }
    }
}

super::fastmath::wide_kernel!(
    /// Evaluation forward: `y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta`.
    /// Compiled for the baseline, AVX2 and AVX-512: the same arithmetic, the same bits.
    pub fn forward_eval(
        x: &[f32],
        b: usize,
        n: usize,
        gamma: &[f32],
        beta: &[f32],
        running_mean: &[f32],
        running_var: &[f32],
        eps: f32,
        y: &mut [f32]
    ) -> () => forward_eval_body
);

/// [`backward`]'s arithmetic (compiled wide by it).
#[inline(always)]
fn backward_body(
    dy: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    b: usize,
    n: usize,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    // Column sums row by row (each column summed over the rows in order).
    let (mut sb, mut sg) = (vec![0f64; n], vec![0f64; n]);
    for (dr, xr) in dy[..b * n]
        .chunks_exact(n.max(1))
        .zip(xhat[..b * n].chunks_exact(n.max(1)))
    {
        for (((b_, g_), &d), &xh) in sb.iter_mut().zip(sg.iter_mut()).zip(dr).zip(xr) {
            let g = f64::from(d);
            *b_ += g;
            *g_ += g * f64::from(xh);
        }
    }
    for j in 0..n {
        dbeta[j] = sb[j] as f32;
        dgamma[j] = sg[j] as f32;
    }
    if b == 0 {
        return;
    }
    let bf = b as f32;
    for r in 0..b {
        for j in 0..n {
            let i = r * n + j;
            let k = gamma[j] * inv_std[j] / bf;
            dx[i] = k * (bf * dy[i] - dbeta[j] - xhat[i] * dgamma[j]);
        }
    }
}

super::fastmath::wide_kernel!(
    /// Backward of [`forward_train`] (batch statistics depend on `x`):
    /// `dbeta = sum_r dy`, `dgamma = sum_r dy * xhat`, and
    /// `dx = gamma * inv_std / B * (B dy - dbeta - xhat * dgamma)`. All overwritten.
    /// Compiled for the baseline, AVX2 and AVX-512: the same arithmetic, the same bits.
    pub fn backward(
        dy: &[f32],
        xhat: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
        b: usize,
        n: usize,
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32]
    ) -> () => backward_body
);

/// [`forward_train`] with ReLU and inverted dropout applied to `y` after it
/// (`relu_dropout_inplace` with `drop`): the twin of `shaders/batchnorm.wgsl`'s
/// `train_main` with its epilogue on (one dispatch on the GPU, two passes here).
pub fn forward_train_act(
    x: &[f32],
    b: usize,
    n: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    momentum: f32,
    running_mean: &mut [f32],
    running_var: &mut [f32],
    y: &mut [f32],
    xhat_out: &mut [f32],
    cache: &mut BnCache,
    drop: &Dropout,
) {
    forward_train(
        x,
        b,
        n,
        gamma,
        beta,
        eps,
        momentum,
        running_mean,
        running_var,
        y,
        xhat_out,
        &mut cache.mean,
        &mut cache.inv_std,
    );
    relu_dropout_inplace(y, b, n, drop.p_drop, drop.seed, drop.step, drop.stream);
}

/// [`forward_eval`] then ReLU and dropout as [`forward_train_act`] (`eval_main` with
/// its epilogue on).
pub fn forward_eval_act(
    x: &[f32],
    b: usize,
    n: usize,
    gamma: &[f32],
    beta: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
    eps: f32,
    y: &mut [f32],
    drop: &Dropout,
) {
    forward_eval(x, b, n, gamma, beta, running_mean, running_var, eps, y);
    relu_dropout_inplace(y, b, n, drop.p_drop, drop.seed, drop.step, drop.stream);
}

/// Backward of [`forward_train_act`] given its output `y_fwd`: the ReLU-dropout
/// backward of `dy` (`relu_dropout_backward`), then [`backward`] (`backward_main` with
/// its epilogue on).
pub fn backward_act(
    dy: &[f32],
    y_fwd: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    b: usize,
    n: usize,
    p_drop: f32,
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let mut gated = vec![0.0f32; b * n];
    relu_dropout_backward(dy, y_fwd, b, n, p_drop, &mut gated);
    backward(&gated, xhat, inv_std, gamma, b, n, dx, dgamma, dbeta);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernels dispatched wide (AVX-512 or AVX2 where the CPU has them) give the bits
    /// of their bodies compiled for the baseline, every output.
    #[test]
    fn the_wide_kernels_give_the_baseline_bits() {
        let (b, n) = (37, 131);
        let v = |k: usize, salt: usize| -> Vec<f32> {
            (0..k)
                .map(|i| (((i + salt) * 7919) % 1013) as f32 / 101.3 - 4.0)
                .collect()
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let (x, gamma, beta, dy) = (v(b * n, 1), v(n, 2), v(n, 3), v(b * n, 4));
        let run = |wide: bool| {
            let (mut rm, mut rv): (Vec<f32>, Vec<f32>) =
                (v(n, 5), v(n, 6).iter().map(|x| x.abs()).collect());
            let (mut y, mut xhat, mut mean, mut inv) = (
                vec![0.0; b * n],
                vec![0.0; b * n],
                vec![0.0; n],
                vec![0.0; n],
            );
            let (mut dx, mut dg, mut db, mut ye) = (
                vec![0.0; b * n],
                vec![0.0; n],
                vec![0.0; n],
                vec![0.0; b * n],
            );
            let f = if wide {
                forward_train
            } else {
                forward_train_body
            };
            let args = (&x[..], b, n, &gamma[..], &beta[..], 1e-3, 0.1);
            f(
                args.0, args.1, args.2, args.3, args.4, args.5, args.6, &mut rm, &mut rv, &mut y,
                &mut xhat, &mut mean, &mut inv,
            );
            let bw = if wide { backward } else { backward_body };
            bw(&dy, &xhat, &inv, &gamma, b, n, &mut dx, &mut dg, &mut db);
            let fe = if wide {
                forward_eval
            } else {
                forward_eval_body
            };
            fe(&x, b, n, &gamma, &beta, &rm, &rv, 1e-3, &mut ye);
            [y, xhat, mean, inv, rm, rv, dx, dg, db, ye].map(|o| bits(&o))
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn forward_train_matches_hand_calculation() {
        // One feature, values 1, 2, 6: mean 3, biased var 14/3, unbiased 7.
        let x = [1.0f32, 2.0, 6.0];
        let (mut rm, mut rv) = ([0.5f32], [2.0f32]);
        let (mut y, mut xh, mut m, mut is) = ([0.0; 3], [0.0; 3], [0.0], [0.0]);
        forward_train(
            &x,
            3,
            1,
            &[2.0],
            &[0.25],
            EPS,
            MOMENTUM,
            &mut rm,
            &mut rv,
            &mut y,
            &mut xh,
            &mut m,
            &mut is,
        );
        let inv = 1.0 / (14.0f64 / 3.0 + 1e-3).sqrt();
        assert!((m[0] - 3.0).abs() < 1e-6);
        assert!((f64::from(is[0]) - inv).abs() < 1e-6);
        for (k, &xi) in x.iter().enumerate() {
            let want = 2.0 * (f64::from(xi) - 3.0) * inv + 0.25;
            assert!((f64::from(y[k]) - want).abs() < 1e-5, "{k}");
        }
        assert!((rm[0] - (0.99 * 0.5 + 0.01 * 3.0)).abs() < 1e-6);
        assert!((rv[0] - (0.99 * 2.0 + 0.01 * 7.0)).abs() < 1e-6);
        let mut ye = [0.0; 3];
        forward_eval(&x, 3, 1, &[2.0], &[0.25], &rm, &rv, EPS, &mut ye);
        let want = 2.0 * (1.0 - rm[0]) / (rv[0] + 1e-3).sqrt() + 0.25;
        assert!((ye[0] - want).abs() < 1e-5);
    }

    #[test]
    fn backward_sums_vanish_for_constant_upstream() {
        // A constant dy shifts every x equally: the normalised output does not move.
        let x = [0.3f32, -1.0, 2.5, 0.7, 1.1, -0.2];
        let (mut rm, mut rv) = ([0.0; 2], [1.0; 2]);
        let (mut y, mut xh, mut m, mut is) = ([0.0; 6], [0.0; 6], [0.0; 2], [0.0; 2]);
        let g = [1.5, -0.5];
        forward_train(
            &x, 3, 2, &g, &[0.0; 2], EPS, MOMENTUM, &mut rm, &mut rv, &mut y, &mut xh, &mut m,
            &mut is,
        );
        let (mut dx, mut dg, mut db) = ([1.0; 6], [1.0; 2], [0.0; 2]);
        backward(&[1.0; 6], &xh, &is, &g, 3, 2, &mut dx, &mut dg, &mut db);
        assert!(dx.iter().all(|d| d.abs() < 1e-6), "{dx:?}");
        assert!(dg.iter().all(|d| d.abs() < 1e-6) && db == [3.0, 3.0]);
    }
}
