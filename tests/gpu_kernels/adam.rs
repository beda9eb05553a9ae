//! GPU-vs-CPU tests of `shaders/adam.wgsl` against `cpu::adam`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn adam_gpu_matches_cpu_over_steps() {
    use cellvae::backend::gpu::dispatch;
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let n = 1031;
    let mut cpu_p = signed_values(51, n, 1.0);
    let (mut cpu_m, mut cpu_v) = (vec![0.0; n], vec![0.0; n]);
    // scvi-tools' settings with a larger lr and weight decay so every term matters.
    let (lr, beta1, beta2, eps, wd) = (1e-2, 0.9, 0.999, 1e-2, 1e-3);
    // One step on slices...
    let (mut gpu_p, mut gpu_m, mut gpu_v) = (cpu_p.clone(), cpu_m.clone(), cpu_v.clone());
    let grads0 = signed_values(60, n, 1.0);
    block_on(pipes.adam_step(
        &ctx, &mut gpu_p, &grads0, &mut gpu_m, &mut gpu_v, lr, beta1, beta2, eps, wd, 1,
    ))
    .expect("adam runs");
    cpu::adam::step(
        &mut cpu_p, &grads0, &mut cpu_m, &mut cpu_v, lr, beta1, beta2, eps, wd, 1,
    );
    assert_close("adam step 1 params", &gpu_p, &cpu_p, 1e-6, 1e-5);
    // ...then four more on resident buffers, new gradients each step.
    let p_buf = block_on(dispatch::f32_buffer(&ctx, "p", &gpu_p, true)).unwrap();
    let m_buf = block_on(dispatch::f32_buffer(&ctx, "m", &gpu_m, true)).unwrap();
    let v_buf = block_on(dispatch::f32_buffer(&ctx, "v", &gpu_v, true)).unwrap();
    for t in 2..=5u32 {
        let grads = signed_values(60 + u64::from(t), n, 1.0);
        let g_buf = block_on(dispatch::f32_buffer(&ctx, "g", &grads, false)).unwrap();
        let hyper = kernels::AdamParams::new(n as u32, lr, beta1, beta2, eps, wd, t);
        block_on(pipes.adam_step_buffers(&ctx, &p_buf, &g_buf, &m_buf, &v_buf, &hyper))
            .expect("adam runs");
        cpu::adam::step(
            &mut cpu_p, &grads, &mut cpu_m, &mut cpu_v, lr, beta1, beta2, eps, wd, t,
        );
    }
    let gpu_p = block_on(dispatch::read_f32(&ctx, &p_buf, n)).unwrap();
    let gpu_m = block_on(dispatch::read_f32(&ctx, &m_buf, n)).unwrap();
    let gpu_v = block_on(dispatch::read_f32(&ctx, &v_buf, n)).unwrap();
    assert_close("adam step 5 params", &gpu_p, &cpu_p, 1e-6, 1e-5);
    assert_close("adam step 5 m", &gpu_m, &cpu_m, 1e-7, 1e-5);
    assert_close("adam step 5 v", &gpu_v, &cpu_v, 1e-9, 1e-5);
}
