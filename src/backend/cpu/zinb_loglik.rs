//! Twin of `shaders/zinb_loglik.wgsl`: the zero-inflated negative binomial
//! log-likelihood per cell (scvi-tools' `log_zinb_positive`), fused with its gradients
//! (shapes and conventions in [`super::counts`]).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{dispersions, drive, sum_theta_rows, zinb_elem, Grads};

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
    let mut th = vec![0f32; b * g];
    let grads = Grads {
        d_logits,
        th: Some(&mut th),
        d_pi: Some(d_pi),
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
            zinb_elem(xv, ln_t, t, mu, f64::from(pi[r * g + j]), true)
        },
    );
    sum_theta_rows(&th, theta_row, b, g, d_log_theta);
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
    let disp = dispersions(log_theta);
    drive(x, library, rho, &[], b, g, loglik, None, |r, j, xv, mu| {
        let (ln_t, t) = disp[theta_row[r] as usize * g + j];
        let p = f64::from(pi[r * g + j]);
        (zinb_elem(xv, ln_t, t, mu, p, false).0, 0.0, 0.0, 0.0)
    });
}
