//! GPU-vs-CPU tests of `shaders/zinb_loglik.wgsl` against `cpu::zinb_loglik`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn zinb_loglik_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, g, k) = (19, 283, 3);
    let (x, library, rho, log_theta, theta_row, weight) = count_inputs(b, g, k);
    // Dropout logits over both signs and large magnitudes (both softplus branches).
    let pi = signed_values(75, b * g, 8.0);
    let (ll, dl, dt, dp) = block_on(pipes.zinb_forward_backward(
        &ctx, &x, &library, &rho, &log_theta, &theta_row, &pi, &weight, b, g, k,
    ))
    .expect("zinb_loglik runs");
    let (mut want_ll, mut want_dl, mut want_dt, mut want_dp) = (
        vec![0.0; b],
        vec![0.0; b * g],
        vec![0.0; k * g],
        vec![0.0; b * g],
    );
    cpu::zinb_loglik::forward_backward(
        &x,
        &library,
        &rho,
        &log_theta,
        &theta_row,
        &pi,
        &weight,
        b,
        g,
        &mut want_ll,
        &mut want_dl,
        &mut want_dt,
        &mut want_dp,
    );
    assert_close("zinb loglik", &ll, &want_ll, 1e-2, 1e-5);
    assert_close("zinb d_logits", &dl, &want_dl, 1e-5, 1e-4);
    assert_close("zinb d_log_theta", &dt, &want_dt, 1e-5, 1e-3);
    assert_close("zinb d_pi", &dp, &want_dp, 1e-6, 1e-4);
    // The per-cell log-likelihood is the sum of its parts, not the NB one.
    let (nb_ll, _, _) = block_on(pipes.nb_forward_backward(
        &ctx, &x, &library, &rho, &log_theta, &theta_row, &weight, b, g, k,
    ))
    .unwrap();
    assert!(ll.iter().zip(&nb_ll).any(|(a, b)| (a - b).abs() > 1.0));
}
