//! Dispatch of `shaders/softmax.wgsl` (twin `cpu::softmax::forward`): the row softmax,
//! one workgroup per row. `encode_softmax` records on resident buffers; `softmax`
//! uploads, dispatches and reads back.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, to_u32, uniform_buffer,
    Binding, Recorder,
};
use super::kernels::{Pipelines, RowParams};
use super::GpuContext;
use crate::error::Result;

pub(super) fn row_params(b: usize, g: usize, what: &str) -> Result<RowParams> {
    to_u32(b * g, what)?;
    Ok(RowParams {
        b: to_u32(b, "B")?,
        g: to_u32(g, what)?,
        pad: [0; 2],
    })
}

impl Pipelines {
    /// Records the row softmax of `logits` (B x G) into `rho` (B x G, overwritten). One
    /// dispatch, one workgroup per row.
    pub fn encode_softmax(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        logits: &dyn Binding,
        rho: &dyn Binding,
        b: usize,
        g: usize,
    ) -> Result<()> {
        let p = row_params(b, g, "G")?;
        let p_buf = uniform_buffer(ctx, "softmax.params", &p);
        encode(
            ctx,
            encoder,
            "softmax",
            &self.softmax,
            &[(0, logits), (1, rho), (2, &p_buf)],
            grid(p.b, 1),
        )
    }

    /// Row softmax of `logits` (B x G) on slices, returning rho (B x G).
    pub async fn softmax(
        &self,
        ctx: &GpuContext,
        logits: &[f32],
        b: usize,
        g: usize,
    ) -> Result<Vec<f32>> {
        check_len("softmax logits", logits.len(), b * g)?;
        let l_buf = f32_buffer(ctx, "softmax.logits", logits, false).await?;
        let rho_buf = f32_output(ctx, "softmax.rho", b * g).await?;
        submit(ctx, "softmax", |enc| {
            self.encode_softmax(ctx, enc, &l_buf, &rho_buf, b, g)
        })
        .await?;
        read_f32(ctx, &rho_buf, b * g).await
    }
}
