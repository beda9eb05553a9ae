//! Twin of `shaders/nb_loglik.wgsl`: the negative binomial log-likelihood per cell,
//! fused with its gradients (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{dispersions, drive, nb_elem, sum_theta_rows, Grads};

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
    let mut th = vec![0f32; b * g];
    let grads = Grads {
        d_logits,
        th: Some(&mut th),
        d_pi: None,
    };
    let disp = dispersions(log_theta);
    drive(
        x,
        library,
        rho,
        weight,
        b,
        g,
        loglik,
        Some(grads),
        |r, j, xv, mu| {
            let (ln_t, t) = disp[theta_row[r] as usize * g + j];
            let (lp, a, t) = nb_elem(xv, ln_t, t, mu, true);
            (lp, a, t, 0.0)
        },
    );
    sum_theta_rows(&th, theta_row, b, g, d_log_theta);
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
    let disp = dispersions(log_theta);
    drive(x, library, rho, &[], b, g, loglik, None, |r, j, xv, mu| {
        let (ln_t, t) = disp[theta_row[r] as usize * g + j];
        (nb_elem(xv, ln_t, t, mu, false).0, 0.0, 0.0, 0.0)
    });
}
