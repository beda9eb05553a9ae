//! Twin of `shaders/relu_dropout.wgsl`: ReLU fused with inverted dropout (scvi-tools' encoder: Linear, BatchNorm, ReLU,
//! Dropout(0.1); the decoder uses no dropout, `p_drop = 0`).
//!
//! Element `i = row * n + col` of a B x n activation is kept iff
//! `rng::uniform(seed, stream, step, i) >= p_drop` (probability 1 - p_drop) and a kept
//! value is scaled by `1 / (1 - p_drop)`, so `y = relu(x) * keep / (1 - p_drop)`. With
//! `p_drop = 0` no random number is drawn. The backward needs only `y`: `y > 0` exactly
//! when `x > 0` and the element was kept, so no mask is stored.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use crate::rng::Stream;

/// Scale of a kept element, `1 / (1 - p_drop)` (0 when `p_drop >= 1`: all dropped).
fn keep_scale(p_drop: f32) -> f32 {
    if p_drop >= 1.0 {
        0.0
    } else {
        1.0 / (1.0 - p_drop)
    }
}

/// A dropout draw's settings: probability and the Philox key and counter words
/// (`rng::uniform(seed, stream, step, i)` for element i).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// Dropout probability (no draws when <= 0: plain ReLU).
    pub p_drop: f32,
    /// Philox key.
    pub seed: u64,
    /// The optimiser step.
    pub step: u32,
    /// The stream id (`rng::DROPOUT_ENCODER + 16 * layer`).
    pub stream: u32,
}

/// In place: `v = relu(v)`, then inverted dropout with probability `p_drop`
/// (see the module docs for the random numbers). `v` is B x n.
pub fn relu_dropout_inplace(
    v: &mut [f32],
    b: usize,
    n: usize,
    p_drop: f32,
    seed: u64,
    step: u32,
    stream: u32,
) {
    let v = &mut v[..b * n];
    if p_drop <= 0.0 {
        for e in v.iter_mut() {
            *e = e.max(0.0);
        }
        return;
    }
    dropout_run(
        v,
        Stream::new(seed, stream),
        step,
        p_drop,
        keep_scale(p_drop),
    );
}

/// [`relu_dropout_inplace`]'s draws and scaling: every element's uniform drawn (a pure
/// function of its index: drawing the ones a zero would skip changes nothing), so the
/// loop has no branch and Philox's integer rounds run in vector lanes.
#[inline(always)]
fn dropout_run_body(v: &mut [f32], s: Stream, step: u32, p_drop: f32, scale: f32) {
    for (i, e) in v.iter_mut().enumerate() {
        let keep = (*e > 0.0) & (s.uniform(step, i as u32) >= p_drop);
        *e = if keep { *e * scale } else { 0.0 };
    }
}

super::fastmath::wide_kernel!(
    /// [`dropout_run_body`] compiled for the baseline, AVX2 and AVX-512.
    fn dropout_run(v: &mut [f32], s: Stream, step: u32, p_drop: f32, scale: f32) -> ()
        => dropout_run_body
);

/// `y = dropout(relu(x))` with `x`, `y` B x n (`y` overwritten); see
/// [`relu_dropout_inplace`].
pub fn relu_dropout_forward(
    x: &[f32],
    b: usize,
    n: usize,
    p_drop: f32,
    seed: u64,
    step: u32,
    stream: u32,
    y: &mut [f32],
) {
    y[..b * n].copy_from_slice(&x[..b * n]);
    relu_dropout_inplace(y, b, n, p_drop, seed, step, stream);
}

/// [`relu_dropout_backward`]'s arithmetic (compiled wide by it).
#[inline(always)]
fn relu_dropout_backward_body(
    dy: &[f32],
    y: &[f32],
    b: usize,
    n: usize,
    p_drop: f32,
    dx: &mut [f32],
) {
    let scale = keep_scale(p_drop.max(0.0));
    for ((d, &g), &yi) in dx[..b * n].iter_mut().zip(dy).zip(y) {
        *d = if yi > 0.0 { g * scale } else { 0.0 };
    }
}

super::fastmath::wide_kernel!(
    /// Backward from the forward's output: `dx = dy / (1 - p_drop)` where `y > 0`, else 0.
    /// `dy`, `y`, `dx` are B x n (`dx` overwritten; it may not alias `dy`, use
    /// [`relu_dropout_backward_inplace`] for that).
    /// Compiled for the baseline, AVX2 and AVX-512: the same arithmetic, the same bits.
    pub fn relu_dropout_backward(
        dy: &[f32],
        y: &[f32],
        b: usize,
        n: usize,
        p_drop: f32,
        dx: &mut [f32]
    ) -> () => relu_dropout_backward_body
);

/// [`relu_dropout_backward_inplace`]'s arithmetic (compiled wide by it).
#[inline(always)]
fn relu_dropout_backward_inplace_body(d: &mut [f32], y: &[f32], b: usize, n: usize, p_drop: f32) {
    let scale = keep_scale(p_drop.max(0.0));
    for (g, &yi) in d[..b * n].iter_mut().zip(y) {
        *g = if yi > 0.0 { *g * scale } else { 0.0 };
    }
}

super::fastmath::wide_kernel!(
    /// [`relu_dropout_backward`] in place on the upstream gradient `d` (B x n).
    /// Compiled for the baseline, AVX2 and AVX-512: the same arithmetic, the same bits.
    pub fn relu_dropout_backward_inplace(
        d: &mut [f32],
        y: &[f32],
        b: usize,
        n: usize,
        p_drop: f32
    ) -> () => relu_dropout_backward_inplace_body
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{uniform, DROPOUT_ENCODER};

    /// The branch-free draws, dispatched wide and as the baseline body, give what one
    /// draw per positive element gives (NaN, zeros and negatives dropped to 0).
    #[test]
    fn every_draw_gives_the_draws_of_the_positive_elements() {
        let (b, n, p, seed, step) = (37, 131, 0.3, 0x1234_5678_9abc, 17);
        let x: Vec<f32> = (0..b * n)
            .map(|i| match i % 11 {
                0 => f32::NAN,
                1 => 0.0,
                2 => -0.0,
                _ => ((i * 7919) % 1000) as f32 / 250.0 - 1.5,
            })
            .collect();
        let want: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v > 0.0 && uniform(seed, DROPOUT_ENCODER, step, i as u32) >= p {
                    v * keep_scale(p)
                } else {
                    0.0
                }
            })
            .collect();
        let mut wide = x.clone();
        relu_dropout_inplace(&mut wide, b, n, p, seed, step, DROPOUT_ENCODER);
        let mut base = x.clone();
        dropout_run_body(
            &mut base,
            Stream::new(seed, DROPOUT_ENCODER),
            step,
            p,
            keep_scale(p),
        );
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&wide), bits(&want));
        assert_eq!(bits(&base), bits(&want));
        assert!(want.iter().filter(|&&v| v == 0.0).count() > b * n * 4 / 10);
    }

    /// The backward kernels dispatched wide give the bits of their baseline bodies.
    #[test]
    fn the_wide_backward_gives_the_baseline_bits() {
        let (b, n, p) = (13, 77, 0.25);
        let y: Vec<f32> = (0..b * n).map(|i| ((i * 31) % 17) as f32 - 8.0).collect();
        let dy: Vec<f32> = (0..b * n)
            .map(|i| ((i * 13) % 29) as f32 / 7.0 - 2.0)
            .collect();
        let (mut wide, mut base) = (vec![0.0; b * n], vec![0.0; b * n]);
        relu_dropout_backward(&dy, &y, b, n, p, &mut wide);
        relu_dropout_backward_body(&dy, &y, b, n, p, &mut base);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&wide), bits(&base));
        let (mut wide_in, mut base_in) = (dy.clone(), dy.clone());
        relu_dropout_backward_inplace(&mut wide_in, &y, b, n, p);
        relu_dropout_backward_inplace_body(&mut base_in, &y, b, n, p);
        assert_eq!(bits(&wide_in), bits(&base_in));
        assert_eq!(bits(&wide_in), bits(&wide));
    }

    #[test]
    fn relu_only_without_dropout() {
        let x = [-1.0, 0.0, 2.0, -0.5, 3.0, 0.1];
        let mut y = [f32::NAN; 6];
        relu_dropout_forward(&x, 2, 3, 0.0, 1, 0, DROPOUT_ENCODER, &mut y);
        assert_eq!(y, [0.0, 0.0, 2.0, 0.0, 3.0, 0.1]);
        let mut dx = [f32::NAN; 6];
        relu_dropout_backward(&[1.0; 6], &y, 2, 3, 0.0, &mut dx);
        assert_eq!(dx, [0.0, 0.0, 1.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn dropout_keeps_the_right_elements_and_fraction() {
        let (b, n, p) = (200, 50, 0.1f32);
        let x = vec![1.0f32; b * n];
        let mut y = vec![0.0f32; b * n];
        relu_dropout_forward(&x, b, n, p, 77, 3, DROPOUT_ENCODER, &mut y);
        let mut kept = 0;
        for (i, &yi) in y.iter().enumerate() {
            let keep = uniform(77, DROPOUT_ENCODER, 3, i as u32) >= p;
            assert_eq!(yi, if keep { 1.0 / 0.9 } else { 0.0 }, "element {i}");
            kept += usize::from(keep);
        }
        let frac = kept as f64 / (b * n) as f64;
        assert!((frac - 0.9).abs() < 0.01, "kept fraction {frac}");
        // Mean preserved in expectation.
        let mean = y.iter().map(|&v| f64::from(v)).sum::<f64>() / (b * n) as f64;
        assert!((mean - 1.0).abs() < 0.015, "mean {mean}");
    }
}
