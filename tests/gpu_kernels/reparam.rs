//! GPU-vs-CPU tests of `shaders/reparam.wgsl` against `cpu::reparam` (the backward with KL's, as the model runs them).

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn reparam_gpu_draws_the_cpu_noise() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // 100k draws reach far into the tails (u1 near 2^-24, |eps| up to ~5).
    let (b, z) = (10_007, 10);
    let mean = signed_values(41, b * z, 2.0);
    let v = signed_values(42, b * z, 3.0);
    // A seed with both words non-zero, a non-zero step.
    let seed = 0x1234_5678_9abc_def0u64;
    let (step, stream) = (17, cellvae::rng::REPARAM);
    let (eps, zs) =
        block_on(pipes.reparam(&ctx, &mean, &v, seed, step, stream)).expect("reparam runs");
    let want_eps: Vec<f32> = (0..b * z)
        .map(|i| cellvae::rng::normal(seed, stream, step, i as u32))
        .collect();
    assert_close("reparam eps", &eps, &want_eps, 1e-6, 1e-6);
    let (mut cpu_eps, mut cpu_z) = (vec![0.0; b * z], vec![0.0; b * z]);
    cpu::reparam::forward(
        &mean,
        &v,
        b,
        z,
        seed,
        step,
        stream,
        &mut cpu_eps,
        &mut cpu_z,
    );
    assert_close("reparam z", &zs, &cpu_z, 1e-5, 1e-5);
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn reparam_and_kl_backward_gpu_match_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, z) = (131, 10);
    let mean = signed_values(101, b * z, 2.0);
    let v = signed_values(102, b * z, 3.0);
    let eps = signed_values(103, b * z, 2.5);
    let dz = signed_values(104, b * z, 1.0);
    let weight: Vec<f32> = seeded_values(105, b, 0.02);
    let (d_mean, d_v) =
        block_on(pipes.latent_backward(&ctx, &mean, &v, &eps, &dz, &weight, b, z)).unwrap();
    let (mut want_dm, mut want_dv) = (vec![0.0; b * z], vec![0.0; b * z]);
    cpu::reparam::backward(&dz, &eps, &v, b, z, &mut want_dm, &mut want_dv);
    cpu::kl::backward(&mean, &v, &weight, b, z, &mut want_dm, &mut want_dv);
    assert_close("latent_backward d_mean", &d_mean, &want_dm, 1e-6, 1e-5);
    assert_close("latent_backward d_v", &d_v, &want_dv, 1e-6, 1e-5);
}

/// The KL fused into the reparameterisation's entry points (the training step's) against
/// the CPU composition.
#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn reparam_with_kl_fused_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, z) = (131, 10);
    let mean = signed_values(201, b * z, 2.0);
    let v = signed_values(202, b * z, 3.0);
    let (seed, step, stream) = (0x0bad_cafe_1234_5678u64, 5, cellvae::rng::REPARAM);
    let (eps, zs, kl) =
        block_on(pipes.reparam_kl(&ctx, &mean, &v, b, z, seed, step, stream)).unwrap();
    let (mut cpu_eps, mut cpu_z, mut cpu_kl) = (vec![0.0; b * z], vec![0.0; b * z], vec![0.0; b]);
    cpu::reparam::forward(
        &mean,
        &v,
        b,
        z,
        seed,
        step,
        stream,
        &mut cpu_eps,
        &mut cpu_z,
    );
    cpu::kl::forward(&mean, &v, b, z, &mut cpu_kl);
    assert_close("reparam_kl eps", &eps, &cpu_eps, 1e-6, 1e-6);
    assert_close("reparam_kl z", &zs, &cpu_z, 1e-5, 1e-5);
    // As tests/gpu_kernels/kl.rs (f32 sums here, f64 on the CPU).
    assert_close("reparam_kl kl", &kl, &cpu_kl, 1e-5, 1e-5);

    let dz = signed_values(204, b * z, 1.0);
    let weight: Vec<f32> = seeded_values(205, b, 0.02);
    let (d_mean, d_v) =
        block_on(pipes.latent_backward_fused(&ctx, &mean, &v, &eps, &dz, &weight, b, z)).unwrap();
    let (mut want_dm, mut want_dv) = (vec![0.0; b * z], vec![0.0; b * z]);
    cpu::reparam::backward(&dz, &cpu_eps, &v, b, z, &mut want_dm, &mut want_dv);
    cpu::kl::backward(&mean, &v, &weight, b, z, &mut want_dm, &mut want_dv);
    assert_close("reparam_kl d_mean", &d_mean, &want_dm, 1e-6, 1e-5);
    assert_close("reparam_kl d_v", &d_v, &want_dv, 1e-6, 1e-5);
}
