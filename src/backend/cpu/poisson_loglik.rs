//! Twin of `shaders/poisson_loglik.wgsl`: the Poisson log-likelihood per cell, fused
//! with its logit gradient (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{drive, CountScratch, Grads, Inputs, Kind};

/// The inputs of a Poisson row set (no dispersion).
fn inputs<'a>(
    x: &'a [f32],
    library: &'a [f32],
    rho: &'a [f32],
    weight: &'a [f32],
    b: usize,
    g: usize,
) -> Inputs<'a> {
    Inputs {
        x,
        library,
        rho,
        log_theta: &[],
        theta_row: &[],
        weight,
        b,
        g,
    }
}

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
    let scratch = &mut CountScratch::default();
    forward_backward_with(x, library, rho, weight, b, g, loglik, d_logits, scratch);
}

/// [`forward_backward`] with buffers kept between calls (a training step's).
pub fn forward_backward_with(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    d_logits: &mut [f32],
    scratch: &mut CountScratch,
) {
    let grads = Grads {
        d_logits,
        d_log_theta: None,
        d_pi: None,
    };
    let inp = inputs(x, library, rho, weight, b, g);
    drive(&inp, Kind::Poisson, loglik, Some(grads), scratch);
}

/// Poisson log-likelihood per cell only (`loglik`, B, overwritten).
pub fn forward(x: &[f32], library: &[f32], rho: &[f32], b: usize, g: usize, loglik: &mut [f32]) {
    forward_with(x, library, rho, b, g, loglik, &mut CountScratch::default());
}

/// [`forward`] with buffers kept between calls.
pub fn forward_with(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    scratch: &mut CountScratch,
) {
    let inp = inputs(x, library, rho, &[], b, g);
    drive(&inp, Kind::Poisson, loglik, None, scratch);
}
