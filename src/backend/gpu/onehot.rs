//! Dispatch of `shaders/onehot.wgsl` (twins `cpu::onehot::{forward, backward}`): the
//! one-hot covariate rows added to a layer's output and their weight gradient.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, to_u32, uniform_buffer,
    Binding, Recorder,
};
use super::kernels::{OnehotParams, Pipelines};
use super::GpuContext;
use crate::error::{Error, Result};

/// Checks and packs the params of `shaders/onehot.wgsl`.
fn onehot_params(b: usize, n_out: usize, base: usize, k: usize) -> Result<OnehotParams> {
    to_u32(b * n_out, "B x n_out")?;
    to_u32((base + k) * n_out, "(base + K) x n_out")?;
    Ok(OnehotParams {
        b: to_u32(b, "B")?,
        n_out: to_u32(n_out, "n_out")?,
        base: to_u32(base, "base")?,
        k: to_u32(k, "K")?,
    })
}

impl Pipelines {
    /// Records `y[r] += w[base + codes[r]]` (w is (base + K) x n_out, y B x n_out, codes
    /// B u32 < K): the one-hot covariate rows of a layer (twin
    /// `cpu::onehot::forward`). One dispatch.
    pub fn encode_onehot(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        codes: &dyn Binding,
        w: &dyn Binding,
        y: &dyn Binding,
        b: usize,
        n_out: usize,
        base: usize,
        k: usize,
    ) -> Result<()> {
        let p = onehot_params(b, n_out, base, k)?;
        let p_buf = uniform_buffer(ctx, "onehot.params", &p);
        encode(
            ctx,
            encoder,
            "onehot",
            &self.onehot,
            &[(0, codes), (1, w), (2, y), (5, &p_buf)],
            grid(p.b * p.n_out, 256),
        )
    }

    /// Records the gradient of [`Pipelines::encode_onehot`]: rows `base..base + K` of
    /// `dw` ((base + K) x n_out) get the sums of dy's rows per category (overwritten;
    /// twin `cpu::onehot::backward`). One dispatch.
    pub fn encode_onehot_grad(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        codes: &dyn Binding,
        dy: &dyn Binding,
        dw: &dyn Binding,
        b: usize,
        n_out: usize,
        base: usize,
        k: usize,
    ) -> Result<()> {
        let p = onehot_params(b, n_out, base, k)?;
        let p_buf = uniform_buffer(ctx, "onehot.params", &p);
        encode(
            ctx,
            encoder,
            "onehot.grad",
            &self.onehot_grad,
            &[(0, codes), (3, dy), (4, dw), (5, &p_buf)],
            grid(p.k * p.n_out, 256),
        )
    }

    /// Uploads, runs [`Pipelines::encode_onehot`] then [`Pipelines::encode_onehot_grad`]
    /// and reads back `(y + w[base + codes], dw)` (tests). `w` is (base + K) x n_out;
    /// rows of `dw` before `base` are returned as zero.
    pub async fn onehot(
        &self,
        ctx: &GpuContext,
        codes: &[u32],
        w: &[f32],
        y: &[f32],
        dy: &[f32],
        b: usize,
        n_out: usize,
        base: usize,
        k: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        check_len("onehot codes", codes.len(), b)?;
        check_len("onehot w", w.len(), (base + k) * n_out)?;
        check_len("onehot y", y.len(), b * n_out)?;
        check_len("onehot dy", dy.len(), b * n_out)?;
        if let Some(&bad) = codes[..b].iter().find(|&&c| c as usize >= k) {
            return Err(Error::Gpu(format!(
                "onehot: category {bad} is outside the {k} categories"
            )));
        }
        let c_buf = ctx
            .storage_buffer("onehot.codes", bytemuck::cast_slice(&codes[..b]), false)
            .await?;
        let w_buf = f32_buffer(ctx, "onehot.w", &w[..(base + k) * n_out], false).await?;
        let y_buf = f32_buffer(ctx, "onehot.y", &y[..b * n_out], true).await?;
        let dy_buf = f32_buffer(ctx, "onehot.dy", &dy[..b * n_out], false).await?;
        let dw_buf = f32_output(ctx, "onehot.dw", (base + k) * n_out).await?;
        submit(ctx, "onehot", |enc| {
            self.encode_onehot(ctx, enc, &c_buf, &w_buf, &y_buf, b, n_out, base, k)?;
            self.encode_onehot_grad(ctx, enc, &c_buf, &dy_buf, &dw_buf, b, n_out, base, k)
        })
        .await?;
        Ok((
            read_f32(ctx, &y_buf, b * n_out).await?,
            read_f32(ctx, &dw_buf, (base + k) * n_out).await?,
        ))
    }
}
