//! GPU-vs-CPU tests of `shaders/kl.wgsl` against `cpu::kl`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn kl_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, z) = (301, 10);
    let mean = signed_values(31, b * z, 2.0);
    let v = signed_values(32, b * z, 3.0);
    let got = block_on(pipes.kl(&ctx, &mean, &v, b, z)).expect("kl runs");
    let mut want = vec![0.0; b];
    cpu::kl::forward(&mean, &v, b, z, &mut want);
    assert_close("kl", &got, &want, 1e-5, 1e-5);
}
