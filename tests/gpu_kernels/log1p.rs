//! GPU-vs-CPU tests of the log1p kernel, and the context's error reporting through it (a broken shader, a lost device).

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn log1p_gpu_matches_cpu() {
    let ctx = gpu_context();
    let summary = ctx.adapter_summary();
    eprintln!("adapter: {summary:?}");
    // Counts-like values, tiny values (where ln(1+x) loses precision naively) and a size
    // that is not a multiple of the workgroup.
    let mut x = seeded_values(7, 10_007, 500.0);
    x.extend([0.0, 1e-7, 3e-4, 1.0, 65_535.0]);
    let got = block_on(kernels::log1p(&ctx, &x)).expect("log1p runs");
    let mut want = vec![0.0; x.len()];
    cpu::log1p::log1p(&x, &mut want);
    assert_close("log1p", &got, &want, 1e-6, 1e-5);
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn log1p_broken_shader_is_a_clear_error() {
    let ctx = gpu_context();
    let broken = kernels::shader_source("log1p")
        .unwrap()
        .replace("log(u)", "log(u, u)");
    let err = block_on(kernels::log1p_with_source(&ctx, &[1.0, 2.0], &broken))
        .expect_err("a shader that does not compile must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("log1p") && msg.contains("compile"),
        "unclear error: {msg}"
    );
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn log1p_on_a_destroyed_device_is_reported() {
    let ctx = gpu_context();
    ctx.device.destroy();
    let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
    let err = block_on(kernels::log1p(&ctx, &[1.0, 2.0])).expect_err("a lost device must fail");
    assert!(
        err.to_string().contains("GPU device was lost"),
        "unclear error: {err}"
    );
}
