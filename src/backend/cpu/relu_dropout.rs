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
    let s = Stream::new(seed, stream);
    let scale = keep_scale(p_drop);
    for (i, e) in v.iter_mut().enumerate() {
        *e = if *e > 0.0 && s.uniform(step, i as u32) >= p_drop {
            *e * scale
        } else {
            0.0
        };
    }
}

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

/// Backward from the forward's output: `dx = dy / (1 - p_drop)` where `y > 0`, else 0.
/// `dy`, `y`, `dx` are B x n (`dx` overwritten; it may not alias `dy`, use
/// [`relu_dropout_backward_inplace`] for that).
pub fn relu_dropout_backward(
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

/// [`relu_dropout_backward`] in place on the upstream gradient `d` (B x n).
pub fn relu_dropout_backward_inplace(d: &mut [f32], y: &[f32], b: usize, n: usize, p_drop: f32) {
    let scale = keep_scale(p_drop.max(0.0));
    for (g, &yi) in d[..b * n].iter_mut().zip(y) {
        *g = if yi > 0.0 { *g * scale } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{uniform, DROPOUT_ENCODER};

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
