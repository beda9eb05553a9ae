//! GPU-vs-CPU tests of `shaders/step_guard.wgsl` against `cpu::step_guard`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn step_guard_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // Over one workgroup's 256 rows, the bad value in the last row.
    let b = 300;
    let loglik = signed_values(95, b, 1e4);
    let kl = seeded_values(96, b, 10.0);
    for bad in [
        None,
        Some(f32::NAN),
        Some(f32::INFINITY),
        Some(f32::NEG_INFINITY),
    ] {
        for which in 0..2 {
            let (mut l, mut k) = (loglik.clone(), kl.clone());
            if let Some(v) = bad {
                if which == 0 {
                    l[b - 1] = v;
                } else {
                    k[b - 1] = v;
                }
            }
            let got = block_on(pipes.step_guard(&ctx, &l, &k)).expect("step_guard runs");
            let want = cpu::step_guard::finite_flag(&l, &k);
            assert_eq!(got, want, "{bad:?} in {}", ["loglik", "kl"][which]);
            assert_eq!(want, u32::from(bad.is_none()));
        }
    }
}
