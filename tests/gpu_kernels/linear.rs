//! GPU-vs-CPU tests of `shaders/linear.wgsl` (forward, dx, dw, dbias) against `cpu::linear`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn linear_gpu_matches_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // Shapes that are not multiples of the 64 x 64 tiles.
    let (b, n_in, n_out) = (37, 53, 29);
    let x = signed_values(11, b * n_in, 1.0);
    let w = signed_values(12, n_in * n_out, 0.5);
    let bias = signed_values(13, n_out, 1.0);
    let got = block_on(pipes.linear_forward(&ctx, &x, &w, &bias, b, n_in, n_out))
        .expect("linear_forward runs");
    let mut want = vec![0.0; b * n_out];
    cpu::linear::forward(&x, &w, &bias, b, n_in, n_out, &mut want);
    assert_close("linear_forward", &got, &want, 1e-5, 1e-5);

    let dy = signed_values(14, b * n_out, 1.0);
    let (dx, dw, dbias) = block_on(pipes.linear_backward(
        &ctx,
        &x,
        &w,
        &dy,
        b,
        n_in,
        n_out,
        Some(&vec![0.0; b * n_in]),
    ))
    .expect("linear_backward runs");
    let (mut want_dx, mut want_dw, mut want_db) = (
        vec![0.0; b * n_in],
        vec![0.0; n_in * n_out],
        vec![0.0; n_out],
    );
    cpu::linear::backward(
        &x,
        &w,
        &dy,
        b,
        n_in,
        n_out,
        Some(&mut want_dx),
        &mut want_dw,
        &mut want_db,
    );
    assert_close("linear_backward dx", &dx, &want_dx, 1e-5, 1e-5);
    assert_close("linear_backward dw", &dw, &want_dw, 1e-5, 1e-5);
    assert_close("linear_backward dbias", &dbias, &want_db, 1e-5, 1e-5);
    let (no_dx, dw2, _) = block_on(pipes.linear_backward(&ctx, &x, &w, &dy, b, n_in, n_out, None))
        .expect("linear_backward without dx runs");
    assert!(no_dx.is_empty());
    assert_eq!(dw2, dw);
    // dx accumulated onto what the buffer holds (the step sums two heads' gradients so):
    // the twin is the CPU's dx added to the start values.
    let start = signed_values(15, b * n_in, 1.0);
    let (acc, _, _) =
        block_on(pipes.linear_backward(&ctx, &x, &w, &dy, b, n_in, n_out, Some(&start)))
            .expect("linear_backward accumulating dx runs");
    let want_acc: Vec<f32> = start.iter().zip(&want_dx).map(|(s, d)| s + d).collect();
    assert_close(
        "linear_backward dx accumulated",
        &acc,
        &want_acc,
        1e-5,
        1e-5,
    );
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn linear_edge_shapes_match_cpu() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    // One row, one input, one output: a single partial tile.
    // Several 64 x 64 tiles and k-slices, sizes off the multiples.
    for &(b, n_in, n_out) in &[
        (1, 1, 1),
        (1, 17, 3),
        (16, 16, 16),
        (33, 1, 40),
        (64, 64, 64),
        (130, 150, 70),
        (65, 129, 66),
    ] {
        let x = signed_values(81, b * n_in, 1.0);
        let w = signed_values(82, n_in * n_out, 1.0);
        let bias = signed_values(83, n_out, 1.0);
        let got = block_on(pipes.linear_forward(&ctx, &x, &w, &bias, b, n_in, n_out)).unwrap();
        let mut want = vec![0.0; b * n_out];
        cpu::linear::forward(&x, &w, &bias, b, n_in, n_out, &mut want);
        assert_close("linear_forward edge", &got, &want, 1e-5, 1e-5);
        let dy = signed_values(84, b * n_out, 1.0);
        let (dx, dw, db) = block_on(pipes.linear_backward(
            &ctx,
            &x,
            &w,
            &dy,
            b,
            n_in,
            n_out,
            Some(&vec![0.0; b * n_in]),
        ))
        .unwrap();
        let (mut wdx, mut wdw, mut wdb) = (
            vec![0.0; b * n_in],
            vec![0.0; n_in * n_out],
            vec![0.0; n_out],
        );
        cpu::linear::backward(
            &x,
            &w,
            &dy,
            b,
            n_in,
            n_out,
            Some(&mut wdx),
            &mut wdw,
            &mut wdb,
        );
        assert_close("linear_backward dx edge", &dx, &wdx, 1e-5, 1e-5);
        assert_close("linear_backward dw edge", &dw, &wdw, 1e-5, 1e-5);
        assert_close("linear_backward dbias edge", &db, &wdb, 1e-5, 1e-5);
    }
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn linear_wrong_lengths_are_errors_not_panics() {
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let err = block_on(pipes.linear_forward(&ctx, &[1.0; 5], &[1.0; 6], &[0.0; 3], 3, 2, 3))
        .expect_err("x too short");
    assert!(err.to_string().contains("linear_forward x"), "{err}");
}
