//! GPU-vs-CPU tests of `shaders/softmax.wgsl` against `cpu::softmax`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn softmax_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // G over the 256 invocations of a row's workgroup (the loop), large logits in one row.
    let (b, g) = (7, 2003);
    let mut logits = signed_values(21, b * g, 8.0);
    logits[g + 5] = 80.0;
    logits[g + 6] = 79.0;
    let got = block_on(pipes.softmax(&ctx, &logits, b, g)).expect("softmax runs");
    let mut want = vec![0.0; b * g];
    cpu::softmax::forward(&logits, b, g, &mut want);
    assert_close("softmax", &got, &want, 1e-7, 1e-5);
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn softmax_edge_shapes_match_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // A single gene, and a row count over 65535 workgroups (the grid folds over y).
    for &(b, g) in &[(3, 1), (65_537, 3)] {
        let logits = signed_values(85, b * g, 5.0);
        let got = block_on(pipes.softmax(&ctx, &logits, b, g)).unwrap();
        let mut want = vec![0.0; b * g];
        cpu::softmax::forward(&logits, b, g, &mut want);
        assert_close("softmax edge", &got, &want, 1e-7, 1e-5);
    }
}
