//! GPU-vs-CPU tests of `shaders/poisson_loglik.wgsl` against `cpu::poisson_loglik`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn poisson_loglik_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, g) = (21, 517);
    let (x, library, rho, _, _, weight) = count_inputs(b, g, 1);
    let (ll, dl) =
        block_on(pipes.poisson_forward_backward(&ctx, &x, &library, &rho, &weight, b, g))
            .expect("poisson_loglik runs");
    let (mut want_ll, mut want_dl) = (vec![0.0; b], vec![0.0; b * g]);
    cpu::poisson_loglik::forward_backward(
        &x,
        &library,
        &rho,
        &weight,
        b,
        g,
        &mut want_ll,
        &mut want_dl,
    );
    assert_close("poisson loglik", &ll, &want_ll, 1e-2, 1e-5);
    assert_close("poisson d_logits", &dl, &want_dl, 1e-5, 1e-4);
}
