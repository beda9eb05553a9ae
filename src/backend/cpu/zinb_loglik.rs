//! Twin of `shaders/zinb_loglik.wgsl`: the zero-inflated negative binomial
//! log-likelihood per cell (scvi-tools' `log_zinb_positive`), fused with its gradients
//! (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{drive, CountScratch, Grads, Inputs, Kind};

/// ZINB log-likelihood per cell with gradients: as [`super::nb_loglik::forward_backward`] plus the
/// dropout logits `pi` (B x G) and their gradient `d_pi` (B x G, overwritten, weighted).
pub fn forward_backward(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    pi: &[f32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    d_logits: &mut [f32],
    d_log_theta: &mut [f32],
    d_pi: &mut [f32],
) {
    let scratch = &mut CountScratch::default();
    forward_backward_with(
        x,
        library,
        rho,
        log_theta,
        theta_row,
        pi,
        weight,
        b,
        g,
        loglik,
        d_logits,
        d_log_theta,
        d_pi,
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
    pi: &[f32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    d_logits: &mut [f32],
    d_log_theta: &mut [f32],
    d_pi: &mut [f32],
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
        d_pi: Some(d_pi),
    };
    drive(&inputs, Kind::Zinb(pi), loglik, Some(grads), scratch);
}

/// ZINB log-likelihood per cell only (`loglik`, B, overwritten).
pub fn forward(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    pi: &[f32],
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
        pi,
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
    pi: &[f32],
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
    drive(&inputs, Kind::Zinb(pi), loglik, None, scratch);
}
