//! Dispatch of `shaders/batchnorm.wgsl` (twins `cpu::batchnorm::{forward_train,
//! forward_eval, backward}`): `encode_*` on resident buffers; slice methods upload,
//! dispatch, read back. The GPU's `BnCache` is one `stats` buffer of 2n values: the
//! batch mean, then `1 / sqrt(biased variance + eps)`. Each entry point takes an
//! optional ReLU + dropout epilogue (`act`), fused into the same dispatch (twins
//! `cpu::batchnorm::{forward_train_act, forward_eval_act, backward_act}`).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, to_u32, uniform_buffer,
    Binding, Recorder,
};
use super::kernels::{BnParams, DropoutParams, Pipelines};
use super::GpuContext;
use crate::error::Result;

/// What [`Pipelines::batchnorm_train`] returns (all as `cpu::batchnorm::forward_train`
/// writes them).
#[derive(Debug, Clone, PartialEq)]
pub struct BnTrainOutput {
    /// `gamma * xhat + beta`, B x n.
    pub y: Vec<f32>,
    /// The normalised input, B x n.
    pub xhat: Vec<f32>,
    /// Batch mean, n.
    pub mean: Vec<f32>,
    /// `1 / sqrt(biased batch variance + eps)`, n.
    pub inv_std: Vec<f32>,
    /// Updated running mean, n.
    pub running_mean: Vec<f32>,
    /// Updated running variance, n.
    pub running_var: Vec<f32>,
}

fn bn_params(
    b: usize,
    n: usize,
    eps: f32,
    momentum: f32,
    act: Option<&DropoutParams>,
) -> Result<BnParams> {
    to_u32(b * n, "B x n")?;
    Ok(BnParams::new(
        to_u32(b, "B")?,
        to_u32(n, "n")?,
        eps,
        momentum,
        act,
    ))
}

impl Pipelines {
    /// Records the training forward: writes `y` (through the epilogue `act` when
    /// given), `xhat` (B x n) and `stats` (2n), and updates `running_mean`,
    /// `running_var` (n) in place. Nothing is recorded for B = 0. One dispatch.
    pub fn encode_batchnorm_train(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        x: &dyn Binding,
        gamma: &dyn Binding,
        beta: &dyn Binding,
        running_mean: &dyn Binding,
        running_var: &dyn Binding,
        y: &dyn Binding,
        xhat: &dyn Binding,
        stats: &dyn Binding,
        b: usize,
        n: usize,
        eps: f32,
        momentum: f32,
        act: Option<&DropoutParams>,
    ) -> Result<()> {
        if b == 0 {
            return Ok(());
        }
        let p = bn_params(b, n, eps, momentum, act)?;
        let p_buf = uniform_buffer(ctx, "batchnorm.params", &p);
        encode(
            ctx,
            encoder,
            "batchnorm.train",
            &self.batchnorm_train,
            &[
                (0, x),
                (1, gamma),
                (2, beta),
                (3, running_mean),
                (4, running_var),
                (5, y),
                (6, xhat),
                (7, stats),
                (12, &p_buf),
            ],
            grid(p.n, 64),
        )
    }

    /// Records the evaluation forward with the running statistics into `y` (B x n),
    /// through the epilogue `act` when given.
    pub fn encode_batchnorm_eval(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        x: &dyn Binding,
        gamma: &dyn Binding,
        beta: &dyn Binding,
        running_mean: &dyn Binding,
        running_var: &dyn Binding,
        y: &dyn Binding,
        b: usize,
        n: usize,
        eps: f32,
        act: Option<&DropoutParams>,
    ) -> Result<()> {
        let p = bn_params(b, n, eps, 0.0, act)?;
        let p_buf = uniform_buffer(ctx, "batchnorm.params", &p);
        encode(
            ctx,
            encoder,
            "batchnorm.eval",
            &self.batchnorm_eval,
            &[
                (0, x),
                (1, gamma),
                (2, beta),
                (3, running_mean),
                (4, running_var),
                (5, y),
                (12, &p_buf),
            ],
            grid(p.b * p.n, 256),
        )
    }

    /// Records the backward of the training forward: `dx` (B x n), `dgamma`, `dbeta`
    /// (n), all overwritten, from `dy`, `xhat` and the forward's `stats`; with `act`,
    /// the backward of the fused epilogue first, from the forward's output `y_fwd`
    /// (unread without `act`: any buffer may stand in).
    pub fn encode_batchnorm_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        dy: &dyn Binding,
        xhat: &dyn Binding,
        stats: &dyn Binding,
        gamma: &dyn Binding,
        dx: &dyn Binding,
        dgamma: &dyn Binding,
        dbeta: &dyn Binding,
        y_fwd: &dyn Binding,
        b: usize,
        n: usize,
        act: Option<&DropoutParams>,
    ) -> Result<()> {
        let p = bn_params(b, n, 0.0, 0.0, act)?;
        let p_buf = uniform_buffer(ctx, "batchnorm.params", &p);
        encode(
            ctx,
            encoder,
            "batchnorm.backward",
            &self.batchnorm_backward,
            &[
                (1, gamma),
                (6, xhat),
                (7, stats),
                (8, dy),
                (9, dx),
                (10, dgamma),
                (11, dbeta),
                (12, &p_buf),
                (13, y_fwd),
            ],
            grid(p.n, 64),
        )
    }

    /// The training forward on slices (as `cpu::batchnorm::forward_train`, or with `act`
    /// `cpu::batchnorm::forward_train_act`).
    pub async fn batchnorm_train(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        b: usize,
        n: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        momentum: f32,
        running_mean: &[f32],
        running_var: &[f32],
        act: Option<&DropoutParams>,
    ) -> Result<BnTrainOutput> {
        check_len("batchnorm x", x.len(), b * n)?;
        for (what, s) in [
            ("batchnorm gamma", gamma),
            ("batchnorm beta", beta),
            ("batchnorm running_mean", running_mean),
            ("batchnorm running_var", running_var),
        ] {
            check_len(what, s.len(), n)?;
        }
        let x_buf = f32_buffer(ctx, "bn.x", &x[..b * n], false).await?;
        let g_buf = f32_buffer(ctx, "bn.gamma", &gamma[..n], false).await?;
        let be_buf = f32_buffer(ctx, "bn.beta", &beta[..n], false).await?;
        let rm_buf = f32_buffer(ctx, "bn.running_mean", &running_mean[..n], true).await?;
        let rv_buf = f32_buffer(ctx, "bn.running_var", &running_var[..n], true).await?;
        let y_buf = f32_output(ctx, "bn.y", b * n).await?;
        let xh_buf = f32_output(ctx, "bn.xhat", b * n).await?;
        let st_buf = f32_output(ctx, "bn.stats", 2 * n).await?;
        submit(ctx, "batchnorm.train", |enc| {
            self.encode_batchnorm_train(
                ctx, enc, &x_buf, &g_buf, &be_buf, &rm_buf, &rv_buf, &y_buf, &xh_buf, &st_buf, b,
                n, eps, momentum, act,
            )
        })
        .await?;
        let stats = read_f32(ctx, &st_buf, 2 * n).await?;
        Ok(BnTrainOutput {
            y: read_f32(ctx, &y_buf, b * n).await?,
            xhat: read_f32(ctx, &xh_buf, b * n).await?,
            mean: stats[..n].to_vec(),
            inv_std: stats[n..].to_vec(),
            running_mean: read_f32(ctx, &rm_buf, n).await?,
            running_var: read_f32(ctx, &rv_buf, n).await?,
        })
    }

    /// The evaluation forward on slices (as `cpu::batchnorm::forward_eval`, or with `act`
    /// `cpu::batchnorm::forward_eval_act`).
    pub async fn batchnorm_eval(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        b: usize,
        n: usize,
        gamma: &[f32],
        beta: &[f32],
        running_mean: &[f32],
        running_var: &[f32],
        eps: f32,
        act: Option<&DropoutParams>,
    ) -> Result<Vec<f32>> {
        check_len("batchnorm x", x.len(), b * n)?;
        for (what, s) in [
            ("batchnorm gamma", gamma),
            ("batchnorm beta", beta),
            ("batchnorm running_mean", running_mean),
            ("batchnorm running_var", running_var),
        ] {
            check_len(what, s.len(), n)?;
        }
        let x_buf = f32_buffer(ctx, "bn.x", &x[..b * n], false).await?;
        let g_buf = f32_buffer(ctx, "bn.gamma", &gamma[..n], false).await?;
        let be_buf = f32_buffer(ctx, "bn.beta", &beta[..n], false).await?;
        let rm_buf = f32_buffer(ctx, "bn.running_mean", &running_mean[..n], false).await?;
        let rv_buf = f32_buffer(ctx, "bn.running_var", &running_var[..n], false).await?;
        let y_buf = f32_output(ctx, "bn.y", b * n).await?;
        submit(ctx, "batchnorm.eval", |enc| {
            self.encode_batchnorm_eval(
                ctx, enc, &x_buf, &g_buf, &be_buf, &rm_buf, &rv_buf, &y_buf, b, n, eps, act,
            )
        })
        .await?;
        read_f32(ctx, &y_buf, b * n).await
    }

    /// The backward on slices (as `cpu::batchnorm::backward`, or given the fused
    /// forward's output and `act` = `(y_fwd, p_drop)`, `cpu::batchnorm::backward_act`):
    /// returns `(dx, dgamma, dbeta)`.
    pub async fn batchnorm_backward(
        &self,
        ctx: &GpuContext,
        dy: &[f32],
        xhat: &[f32],
        inv_std: &[f32],
        gamma: &[f32],
        b: usize,
        n: usize,
        act: Option<(&[f32], f32)>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        check_len("batchnorm dy", dy.len(), b * n)?;
        check_len("batchnorm xhat", xhat.len(), b * n)?;
        check_len("batchnorm inv_std", inv_std.len(), n)?;
        check_len("batchnorm gamma", gamma.len(), n)?;
        let mut stats = vec![0.0f32; 2 * n];
        stats[n..].copy_from_slice(&inv_std[..n]);
        let dy_buf = f32_buffer(ctx, "bn.dy", &dy[..b * n], false).await?;
        let xh_buf = f32_buffer(ctx, "bn.xhat", &xhat[..b * n], false).await?;
        let st_buf = f32_buffer(ctx, "bn.stats", &stats, false).await?;
        let g_buf = f32_buffer(ctx, "bn.gamma", &gamma[..n], false).await?;
        let dx_buf = f32_output(ctx, "bn.dx", b * n).await?;
        let dg_buf = f32_output(ctx, "bn.dgamma", n).await?;
        let db_buf = f32_output(ctx, "bn.dbeta", n).await?;
        let (y_buf, drop) = match act {
            Some((y, p_drop)) => {
                check_len("batchnorm y_fwd", y.len(), b * n)?;
                let drop = DropoutParams::new(to_u32(b * n, "B x n")?, p_drop, 0, 0, 0);
                (
                    f32_buffer(ctx, "bn.y_fwd", &y[..b * n], false).await?,
                    Some(drop),
                )
            }
            None => (f32_output(ctx, "bn.y_fwd", 1).await?, None),
        };
        submit(ctx, "batchnorm.backward", |enc| {
            self.encode_batchnorm_backward(
                ctx,
                enc,
                &dy_buf,
                &xh_buf,
                &st_buf,
                &g_buf,
                &dx_buf,
                &dg_buf,
                &db_buf,
                &y_buf,
                b,
                n,
                drop.as_ref(),
            )
        })
        .await?;
        Ok((
            read_f32(ctx, &dx_buf, b * n).await?,
            read_f32(ctx, &dg_buf, n).await?,
            read_f32(ctx, &db_buf, n).await?,
        ))
    }
}
