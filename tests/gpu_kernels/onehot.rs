//! GPU-vs-CPU tests of `shaders/onehot.wgsl` against `cpu::onehot`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn onehot_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // Category 3 of 5 is absent: its gradient rows must come back zero.
    let (b, n_out, base, k) = (37, 45, 11, 5);
    let codes: Vec<u32> = (0..b as u32)
        .map(|r| [0, 1, 2, 4][r as usize % 4])
        .collect();
    let w = signed_values(76, (base + k) * n_out, 1.0);
    let y = signed_values(77, b * n_out, 1.0);
    let dy = signed_values(78, b * n_out, 1.0);
    let (got_y, got_dw) =
        block_on(pipes.onehot(&ctx, &codes, &w, &y, &dy, b, n_out, base, k)).expect("runs");
    let mut want_y = y.clone();
    cpu::onehot::forward(&codes, &w[base * n_out..], n_out, &mut want_y);
    let mut want_dw = vec![0.0; (base + k) * n_out];
    cpu::onehot::backward(&codes, &dy, n_out, &mut want_dw[base * n_out..]);
    assert_close("onehot forward", &got_y, &want_y, 1e-6, 1e-6);
    assert_close("onehot weight grad", &got_dw, &want_dw, 1e-6, 1e-6);
    assert!(got_dw[(base + 3) * n_out..(base + 4) * n_out]
        .iter()
        .all(|&v| v == 0.0));
    assert_ne!(got_y, y, "the one-hot rows were not added");
    let err = block_on(pipes.onehot(&ctx, &[5], &w, &y[..n_out], &dy[..n_out], 1, n_out, base, k))
        .expect_err("a category outside K");
    assert!(err.to_string().contains("category 5"), "{err}");
}
