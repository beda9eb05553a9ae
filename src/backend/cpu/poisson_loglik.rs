//! Twin of `shaders/poisson_loglik.wgsl`: the Poisson log-likelihood per cell, fused
//! with its logit gradient (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{drive, poisson_elem, Grads};

/// Poisson log-likelihood per cell with the weighted logit gradient (`loglik` B,
/// `d_logits` B x G, overwritten).
pub fn forward_backward(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    d_logits: &mut [f32],
) {
    drive(
        x,
        library,
        rho,
        weight,
        b,
        g,
        loglik,
        Some(Grads {
            d_logits,
            th: None,
            d_pi: None,
        }),
        |_, _, xv, mu| {
            let (lp, a) = poisson_elem(xv, mu);
            (lp, a, 0.0, 0.0)
        },
    );
}

/// Poisson log-likelihood per cell only (`loglik`, B, overwritten).
pub fn forward(x: &[f32], library: &[f32], rho: &[f32], b: usize, g: usize, loglik: &mut [f32]) {
    drive(x, library, rho, &[], b, g, loglik, None, |_, _, xv, mu| {
        (poisson_elem(xv, mu).0, 0.0, 0.0, 0.0)
    });
}
