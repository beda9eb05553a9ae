//! Twin of `shaders/nb_loglik.wgsl`: the negative binomial log-likelihood per cell,
//! fused with its gradients (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{drive, nb_elem};

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
    d_log_theta.fill(0.0);
    drive(
        x,
        library,
        rho,
        weight,
        b,
        g,
        loglik,
        Some(d_logits),
        |r, j, xv, mu| {
            let k = theta_row[r] as usize * g + j;
            let (lp, a, th) = nb_elem(xv, f64::from(log_theta[k]), mu, true);
            d_log_theta[k] += (f64::from(weight[r]) * th) as f32;
            (lp, a)
        },
    );
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
    drive(x, library, rho, &[], b, g, loglik, None, |r, j, xv, mu| {
        let k = theta_row[r] as usize * g + j;
        (nb_elem(xv, f64::from(log_theta[k]), mu, false).0, 0.0)
    });
}
