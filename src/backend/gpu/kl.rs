//! Dispatch of `shaders/kl.wgsl` (twins `cpu::kl::{forward, backward}`): the per-cell
//! KL of q(z|x) from the prior, and its gradient (accumulated).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, uniform_buffer, Binding,
    Recorder,
};
use super::kernels::Pipelines;
use super::softmax::row_params;
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// Records the per-cell KL of q(z|x) = N(mean, exp(v) + 1e-4) from N(0, I) into
    /// `kl` (B); `mean`, `v` B x Z. One dispatch.
    pub fn encode_kl(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        mean: &dyn Binding,
        v: &dyn Binding,
        kl: &dyn Binding,
        b: usize,
        z: usize,
    ) -> Result<()> {
        let p = row_params(b, z, "Z")?;
        let p_buf = uniform_buffer(ctx, "kl.params", &p);
        encode(
            ctx,
            encoder,
            "kl",
            &self.kl,
            &[(0, mean), (1, v), (2, kl), (3, &p_buf)],
            grid(p.b, 256),
        )
    }

    /// Records the KL gradient of `sum_cells weight[c] * KL[c]`, ACCUMULATED into
    /// `d_mean` and `d_v` (B x Z); `weight` is B. One dispatch.
    pub fn encode_kl_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        mean: &dyn Binding,
        v: &dyn Binding,
        weight: &dyn Binding,
        d_mean: &dyn Binding,
        d_v: &dyn Binding,
        b: usize,
        z: usize,
    ) -> Result<()> {
        let p = row_params(b, z, "Z")?;
        let p_buf = uniform_buffer(ctx, "kl.backward.params", &p);
        encode(
            ctx,
            encoder,
            "kl.backward",
            &self.kl_backward,
            &[
                (0, mean),
                (1, v),
                (3, &p_buf),
                (4, weight),
                (5, d_mean),
                (6, d_v),
            ],
            grid(p.b * p.g, 256),
        )
    }

    /// Per-cell KL on slices (`mean`, `v` B x Z), returning kl (B).
    pub async fn kl(
        &self,
        ctx: &GpuContext,
        mean: &[f32],
        v: &[f32],
        b: usize,
        z: usize,
    ) -> Result<Vec<f32>> {
        check_len("kl mean", mean.len(), b * z)?;
        check_len("kl v", v.len(), b * z)?;
        let m_buf = f32_buffer(ctx, "kl.mean", mean, false).await?;
        let v_buf = f32_buffer(ctx, "kl.v", v, false).await?;
        let kl_buf = f32_output(ctx, "kl.kl", b).await?;
        submit(ctx, "kl", |enc| {
            self.encode_kl(ctx, enc, &m_buf, &v_buf, &kl_buf, b, z)
        })
        .await?;
        read_f32(ctx, &kl_buf, b).await
    }
}
