//! GPU-vs-CPU tests of `shaders/relu_dropout.wgsl` against `cpu::relu_dropout`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn relu_dropout_gpu_matches_cpu_exactly() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, n) = (37, 131);
    let x = signed_values(91, b * n, 2.0);
    let seed = 0xfeed_0000_0000_beefu64;
    for p_drop in [0.0f32, 0.1, 0.5] {
        let got =
            block_on(pipes.relu_dropout(&ctx, &x, p_drop, seed, 9, cellvae::rng::DROPOUT_ENCODER))
                .unwrap();
        let mut want = vec![0.0; b * n];
        cpu::relu_dropout::relu_dropout_forward(
            &x,
            b,
            n,
            p_drop,
            seed,
            9,
            cellvae::rng::DROPOUT_ENCODER,
            &mut want,
        );
        // The mask comes from exact integer arithmetic: results agree bit for bit.
        assert_close("relu_dropout", &got, &want, 0.0, 0.0);
        let dy = signed_values(92, b * n, 1.0);
        let got_dx = block_on(pipes.relu_dropout_backward(&ctx, &dy, &want, p_drop)).unwrap();
        let mut want_dx = vec![0.0; b * n];
        cpu::relu_dropout::relu_dropout_backward(&dy, &want, b, n, p_drop, &mut want_dx);
        assert_close("relu_dropout backward", &got_dx, &want_dx, 0.0, 0.0);
    }
}
