//! Dispatch of `shaders/step_guard.wgsl` (twin `cpu::step_guard::finite_flag`): decides
//! on the GPU whether Adam applies (every per-cell loss finite).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, submit, to_u32, uniform_buffer, Binding, Recorder,
};
use super::kernels::{Pipelines, RowParams};
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// Records the step guard: `flag[0] = 1` when every `loglik[r]` and `kl[r]` (r < B)
    /// is finite, else 0 (twin `cpu::step_guard::finite_flag`). One dispatch.
    pub fn encode_step_guard(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        loglik: &dyn Binding,
        kl: &dyn Binding,
        flag: &dyn Binding,
        b: usize,
    ) -> Result<()> {
        let p = RowParams {
            b: to_u32(b, "B")?,
            g: 0,
            pad: [0; 2],
        };
        let p_buf = uniform_buffer(ctx, "step_guard.params", &p);
        encode(
            ctx,
            encoder,
            "step_guard",
            &self.step_guard,
            &[(0, loglik), (1, kl), (2, flag), (3, &p_buf)],
            (1, 1, 1),
        )
    }

    /// The step guard on slices (tests): uploads, dispatches, reads the flag back.
    pub async fn step_guard(&self, ctx: &GpuContext, loglik: &[f32], kl: &[f32]) -> Result<u32> {
        check_len("step_guard kl", kl.len(), loglik.len())?;
        let b = loglik.len();
        let l_buf = f32_buffer(ctx, "step_guard.loglik", loglik, false).await?;
        let k_buf = f32_buffer(ctx, "step_guard.kl", kl, false).await?;
        let f_buf = ctx
            .storage_buffer("step_guard.flag", bytemuck::bytes_of(&7u32), true)
            .await?;
        submit(ctx, "step_guard", |enc| {
            self.encode_step_guard(ctx, enc, &l_buf, &k_buf, &f_buf, b)
        })
        .await?;
        let bytes = ctx.read_buffer(&f_buf, 4).await?;
        Ok(bytemuck::pod_read_unaligned::<u32>(&bytes[..4]))
    }
}
