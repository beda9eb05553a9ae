//! GPU-vs-CPU tests of `shaders/batchnorm.wgsl` against `cpu::batchnorm`.

use super::*;

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn batchnorm_gpu_matches_cpu() {
    use cpu::batchnorm;
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, n) = (37, 71);
    // Features with an offset, as pre-activations have.
    let x: Vec<f32> = signed_values(111, b * n, 2.0)
        .iter()
        .enumerate()
        .map(|(i, &v)| v + (i % n) as f32 * 0.1)
        .collect();
    let gamma = signed_values(112, n, 1.5);
    let beta = signed_values(113, n, 0.5);
    let rm = signed_values(114, n, 1.0);
    let rv: Vec<f32> = seeded_values(115, n, 2.0).iter().map(|v| v + 0.1).collect();
    let got = block_on(pipes.batchnorm_train(
        &ctx,
        &x,
        b,
        n,
        &gamma,
        &beta,
        batchnorm::EPS,
        batchnorm::MOMENTUM,
        &rm,
        &rv,
        None,
    ))
    .unwrap();
    let (mut want_rm, mut want_rv) = (rm.clone(), rv.clone());
    let (mut y, mut xhat) = (vec![0.0; b * n], vec![0.0; b * n]);
    let (mut mean, mut inv_std) = (vec![0.0; n], vec![0.0; n]);
    batchnorm::forward_train(
        &x,
        b,
        n,
        &gamma,
        &beta,
        batchnorm::EPS,
        batchnorm::MOMENTUM,
        &mut want_rm,
        &mut want_rv,
        &mut y,
        &mut xhat,
        &mut mean,
        &mut inv_std,
    );
    assert_close("batchnorm y", &got.y, &y, 1e-5, 1e-5);
    assert_close("batchnorm xhat", &got.xhat, &xhat, 1e-5, 1e-5);
    assert_close("batchnorm mean", &got.mean, &mean, 1e-6, 1e-5);
    assert_close("batchnorm inv_std", &got.inv_std, &inv_std, 1e-6, 1e-5);
    assert_close(
        "batchnorm running_mean",
        &got.running_mean,
        &want_rm,
        1e-6,
        1e-5,
    );
    assert_close(
        "batchnorm running_var",
        &got.running_var,
        &want_rv,
        1e-6,
        1e-5,
    );

    let y_eval = block_on(pipes.batchnorm_eval(
        &ctx,
        &x,
        b,
        n,
        &gamma,
        &beta,
        &rm,
        &rv,
        batchnorm::EPS,
        None,
    ))
    .unwrap();
    let mut want_eval = vec![0.0; b * n];
    batchnorm::forward_eval(
        &x,
        b,
        n,
        &gamma,
        &beta,
        &rm,
        &rv,
        batchnorm::EPS,
        &mut want_eval,
    );
    assert_close("batchnorm eval", &y_eval, &want_eval, 1e-5, 1e-5);

    let dy = signed_values(116, b * n, 1.0);
    let (dx, dgamma, dbeta) =
        block_on(pipes.batchnorm_backward(&ctx, &dy, &xhat, &inv_std, &gamma, b, n, None)).unwrap();
    let (mut want_dx, mut want_dg, mut want_db) = (vec![0.0; b * n], vec![0.0; n], vec![0.0; n]);
    batchnorm::backward(
        &dy,
        &xhat,
        &inv_std,
        &gamma,
        b,
        n,
        &mut want_dx,
        &mut want_dg,
        &mut want_db,
    );
    // dx subtracts three terms of size ~B|dy|: absolute error ~1e-5 * gamma * inv_std.
    assert_close("batchnorm dx", &dx, &want_dx, 1e-5, 1e-4);
    assert_close("batchnorm dgamma", &dgamma, &want_dg, 1e-5, 1e-5);
    assert_close("batchnorm dbeta", &dbeta, &want_db, 1e-5, 1e-5);
}

/// The ReLU + dropout epilogue fused into each entry point against the CPU composition
/// (`cpu::batchnorm::{forward_train_act, forward_eval_act, backward_act}`).
#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn batchnorm_with_relu_dropout_epilogue_matches_cpu() {
    use cellvae::backend::gpu::kernels::DropoutParams;
    use cpu::batchnorm;
    use cpu::relu_dropout::Dropout;
    let ctx = gpu_context();
    let pipes = block_on(kernels::Pipelines::new(&ctx)).expect("kernels compile");
    let (b, n) = (33, 45);
    let x: Vec<f32> = signed_values(121, b * n, 2.0)
        .iter()
        .enumerate()
        .map(|(i, &v)| v + (i % n) as f32 * 0.05)
        .collect();
    let gamma = signed_values(122, n, 1.5);
    let beta = signed_values(123, n, 0.5);
    let rm = signed_values(124, n, 1.0);
    let rv: Vec<f32> = seeded_values(125, n, 2.0).iter().map(|v| v + 0.1).collect();
    for &p_drop in &[0.0f32, 0.1, 0.5] {
        let drop = Dropout {
            p_drop,
            seed: 0x1234_5678_9abc,
            step: 7,
            stream: 3,
        };
        let hyper = DropoutParams::new((b * n) as u32, p_drop, drop.seed, drop.step, drop.stream);
        let got = block_on(pipes.batchnorm_train(
            &ctx,
            &x,
            b,
            n,
            &gamma,
            &beta,
            batchnorm::EPS,
            batchnorm::MOMENTUM,
            &rm,
            &rv,
            Some(&hyper),
        ))
        .unwrap();
        let (mut want_rm, mut want_rv) = (rm.clone(), rv.clone());
        let (mut y, mut xhat) = (vec![0.0; b * n], vec![0.0; b * n]);
        let mut cache = batchnorm::BnCache::new(n);
        batchnorm::forward_train_act(
            &x,
            b,
            n,
            &gamma,
            &beta,
            batchnorm::EPS,
            batchnorm::MOMENTUM,
            &mut want_rm,
            &mut want_rv,
            &mut y,
            &mut xhat,
            &mut cache,
            &drop,
        );
        let what = format!("p_drop {p_drop}");
        assert_close(&format!("fused y, {what}"), &got.y, &y, 1e-5, 1e-5);
        assert_close(&format!("fused xhat, {what}"), &got.xhat, &xhat, 1e-5, 1e-5);
        assert_close(
            &format!("fused running_var, {what}"),
            &got.running_var,
            &want_rv,
            1e-6,
            1e-5,
        );
        if p_drop > 0.0 {
            assert!(got.y.iter().zip(&y).any(|(&g, &c)| g == 0.0 && c == 0.0));
        }

        let y_eval = block_on(pipes.batchnorm_eval(
            &ctx,
            &x,
            b,
            n,
            &gamma,
            &beta,
            &rm,
            &rv,
            batchnorm::EPS,
            Some(&hyper),
        ))
        .unwrap();
        let mut want_eval = vec![0.0; b * n];
        batchnorm::forward_eval_act(
            &x,
            b,
            n,
            &gamma,
            &beta,
            &rm,
            &rv,
            batchnorm::EPS,
            &mut want_eval,
            &drop,
        );
        assert_close(
            &format!("fused eval, {what}"),
            &y_eval,
            &want_eval,
            1e-5,
            1e-5,
        );

        let dy = signed_values(126, b * n, 1.0);
        let (dx, dgamma, dbeta) = block_on(pipes.batchnorm_backward(
            &ctx,
            &dy,
            &xhat,
            &cache.inv_std,
            &gamma,
            b,
            n,
            Some((&y, p_drop)),
        ))
        .unwrap();
        let (mut want_dx, mut want_dg, mut want_db) =
            (vec![0.0; b * n], vec![0.0; n], vec![0.0; n]);
        batchnorm::backward_act(
            &dy,
            &y,
            &xhat,
            &cache.inv_std,
            &gamma,
            b,
            n,
            p_drop,
            &mut want_dx,
            &mut want_dg,
            &mut want_db,
        );
        // As the plain backward's tolerances (dx subtracts three terms of size ~B|dy|).
        assert_close(&format!("fused dx, {what}"), &dx, &want_dx, 1e-5, 1e-4);
        assert_close(
            &format!("fused dgamma, {what}"),
            &dgamma,
            &want_dg,
            1e-5,
            1e-5,
        );
        assert_close(
            &format!("fused dbeta, {what}"),
            &dbeta,
            &want_db,
            1e-5,
            1e-5,
        );
    }
}
