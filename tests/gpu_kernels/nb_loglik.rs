//! GPU-vs-CPU tests of `shaders/nb_loglik.wgsl` against `cpu::nb_loglik`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn nb_loglik_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, g, k) = (23, 301, 2);
    let (x, library, rho, log_theta, theta_row, weight) = count_inputs(b, g, k);
    let (ll, dl, dt) = block_on(pipes.nb_forward_backward(
        &ctx, &x, &library, &rho, &log_theta, &theta_row, &weight, b, g, k,
    ))
    .expect("nb_loglik runs");
    let (mut want_ll, mut want_dl, mut want_dt) =
        (vec![0.0; b], vec![0.0; b * g], vec![0.0; k * g]);
    cpu::nb_loglik::forward_backward(
        &x,
        &library,
        &rho,
        &log_theta,
        &theta_row,
        &weight,
        b,
        g,
        &mut want_ll,
        &mut want_dl,
        &mut want_dt,
    );
    // f32 on the GPU against f64 on the CPU: per-cell sums of ~300 terms of size ~1-10.
    assert_close("nb loglik", &ll, &want_ll, 1e-2, 1e-5);
    assert_close("nb d_logits", &dl, &want_dl, 1e-5, 1e-4);
    assert_close("nb d_log_theta", &dt, &want_dt, 1e-5, 1e-3);
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn nb_loglik_wrong_lengths_are_errors_not_panics() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let err = block_on(pipes.nb_forward_backward(
        &ctx,
        &[1.0; 4],
        &[100.0; 2],
        &[0.25; 4],
        &[0.0; 2],
        &[0, 1],
        &[1.0; 2],
        2,
        2,
        1,
    ))
    .expect_err("theta_row out of range");
    assert!(err.to_string().contains("theta_row"), "{err}");
}
