//! Twin of `shaders/nb_loglik.wgsl`: the negative binomial log-likelihood per cell,
//! fused with its gradients (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{drive, CountScratch, Grads, Inputs, Kind};

/// NB log-likelihood per cell with gradients (see the module docs for shapes): writes
/// `loglik` (B), `d_logits` (B x G) and `d_log_theta` (K x G), all overwritten.
pub fn forward_backward(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    d_logits: &mut [f32],
    d_log_theta: &mut [f32],
) {
    let scratch = &mut CountScratch::default();
    forward_backward_with(
        x,
        library,
        rho,
        log_theta,
        theta_row,
        weight,
        b,
        g,
        loglik,
        d_logits,
        d_log_theta,
        scratch,
    );
}

/// [`forward_backward`] with buffers kept between calls (a training step's).
pub fn forward_backward_with(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    d_logits: &mut [f32],
    d_log_theta: &mut [f32],
    scratch: &mut CountScratch,
) {
    let inputs = Inputs {
        x,
        library,
        rho,
        log_theta,
        theta_row,
        weight,
        b,
        g,
    };
    let grads = Grads {
        d_logits,
        d_log_theta: Some(d_log_theta),
        d_pi: None,
    };
    drive(&inputs, Kind::Nb, loglik, Some(grads), scratch);
}

/// NB log-likelihood per cell only (`loglik`, B, overwritten).
pub fn forward(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
) {
    forward_with(
        x,
        library,
        rho,
        log_theta,
        theta_row,
        b,
        g,
        loglik,
        &mut CountScratch::default(),
    );
}

/// [`forward`] with buffers kept between calls.
pub fn forward_with(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    scratch: &mut CountScratch,
) {
    let inputs = Inputs {
        x,
        library,
        rho,
        log_theta,
        theta_row,
        weight: &[],
        b,
        g,
    };
    drive(&inputs, Kind::Nb, loglik, None, scratch);
}
