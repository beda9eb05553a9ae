//! Dispatch of `shaders/adam.wgsl` (twin `cpu::adam::step`): on resident buffers (the
//! training path: parameters, gradients and moments stay on the GPU, the step guard's
//! flag decides whether the step applies) and, for tests, on slices.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, grid, read_f32, submit, to_u32, uniform_buffer, Binding,
    Recorder,
};
use super::kernels::{AdamParams, Pipelines};
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// Records one Adam step in place on resident buffers of `hyper.n` f32 each:
    /// `params`, `m`, `v` updated, `grads` read, skipped when `flag[0]` (u32) is 0.
    /// One dispatch.
    pub fn encode_adam_step(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        params: &dyn Binding,
        grads: &dyn Binding,
        m: &dyn Binding,
        v: &dyn Binding,
        hyper: &AdamParams,
        flag: &dyn Binding,
    ) -> Result<()> {
        let h_buf = uniform_buffer(ctx, "adam.hyper", hyper);
        encode(
            ctx,
            encoder,
            "adam",
            &self.adam,
            &[
                (0, params),
                (1, grads),
                (2, m),
                (3, v),
                (4, &h_buf),
                (5, flag),
            ],
            grid(hyper.n, 256),
        )
    }

    /// [`Pipelines::encode_adam_step`] submitted on its own, with a flag of 1 (applied).
    pub async fn adam_step_buffers(
        &self,
        ctx: &GpuContext,
        params: &wgpu::Buffer,
        grads: &wgpu::Buffer,
        m: &wgpu::Buffer,
        v: &wgpu::Buffer,
        hyper: &AdamParams,
    ) -> Result<()> {
        let flag = ctx
            .storage_buffer("adam.flag", bytemuck::bytes_of(&1u32), false)
            .await?;
        submit(ctx, "adam", |enc| {
            self.encode_adam_step(ctx, enc, params, grads, m, v, hyper, &flag)
        })
        .await
    }

    /// One Adam step on slices, as `cpu::adam::step(params, grads, m, v, lr, beta1,
    /// beta2, eps, weight_decay, t)`: uploads, dispatches once and reads `params`, `m`
    /// and `v` back into the slices.
    pub async fn adam_step(
        &self,
        ctx: &GpuContext,
        params: &mut [f32],
        grads: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        t: u32,
    ) -> Result<()> {
        let n = params.len();
        check_len("adam grads", grads.len(), n)?;
        check_len("adam m", m.len(), n)?;
        check_len("adam v", v.len(), n)?;
        let hyper = AdamParams::new(
            to_u32(n, "parameters")?,
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            t,
        );
        let p_buf = f32_buffer(ctx, "adam.params", params, true).await?;
        let g_buf = f32_buffer(ctx, "adam.grads", grads, false).await?;
        let m_buf = f32_buffer(ctx, "adam.m", m, true).await?;
        let v_buf = f32_buffer(ctx, "adam.v", v, true).await?;
        self.adam_step_buffers(ctx, &p_buf, &g_buf, &m_buf, &v_buf, &hyper)
            .await?;
        params.copy_from_slice(&read_f32(ctx, &p_buf, n).await?);
        m[..n].copy_from_slice(&read_f32(ctx, &m_buf, n).await?);
        v[..n].copy_from_slice(&read_f32(ctx, &v_buf, n).await?);
        Ok(())
    }
}
