//! Dispatch of `shaders/relu_dropout.wgsl` (twins `cpu::relu_dropout::relu_dropout_inplace`
//! and `relu_dropout_backward_inplace`): `encode_*` on resident buffers, in place; the
//! slice methods upload, dispatch, read back.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    encode, f32_buffer, grid, read_f32, submit, to_u32, uniform_buffer, Binding, Recorder,
};
use super::kernels::{DropoutParams, Pipelines};
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// Records `v = dropout(relu(v))` in place on the `hyper.n` values of `v`.
    pub fn encode_relu_dropout(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        v: &dyn Binding,
        hyper: &DropoutParams,
    ) -> Result<()> {
        let p_buf = uniform_buffer(ctx, "relu_dropout.params", hyper);
        encode(
            ctx,
            encoder,
            "relu_dropout",
            &self.relu_dropout,
            &[(0, v), (3, &p_buf)],
            grid(hyper.n, 256),
        )
    }

    /// Records the backward in place on the upstream gradient `d`, given the forward's
    /// output `y` (`hyper.n` values each): `d = y > 0 ? d * scale : 0`.
    pub fn encode_relu_dropout_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        y: &dyn Binding,
        d: &dyn Binding,
        hyper: &DropoutParams,
    ) -> Result<()> {
        let p_buf = uniform_buffer(ctx, "relu_dropout.params", hyper);
        encode(
            ctx,
            encoder,
            "relu_dropout.backward",
            &self.relu_dropout_backward,
            &[(1, y), (2, d), (3, &p_buf)],
            grid(hyper.n, 256),
        )
    }

    /// `dropout(relu(x))` on a slice (as `cpu::relu_dropout::relu_dropout_forward`).
    pub async fn relu_dropout(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        p_drop: f32,
        seed: u64,
        step: u32,
        stream: u32,
    ) -> Result<Vec<f32>> {
        let hyper = DropoutParams::new(to_u32(x.len(), "B x n")?, p_drop, seed, step, stream);
        let v_buf = f32_buffer(ctx, "relu_dropout.v", x, true).await?;
        submit(ctx, "relu_dropout", |enc| {
            self.encode_relu_dropout(ctx, enc, &v_buf, &hyper)
        })
        .await?;
        read_f32(ctx, &v_buf, x.len()).await
    }

    /// The backward on slices (as `cpu::relu_dropout::relu_dropout_backward`): returns
    /// `dx` from `dy` and the forward's output `y`.
    pub async fn relu_dropout_backward(
        &self,
        ctx: &GpuContext,
        dy: &[f32],
        y: &[f32],
        p_drop: f32,
    ) -> Result<Vec<f32>> {
        super::dispatch::check_len("relu_dropout_backward y", y.len(), dy.len())?;
        let hyper = DropoutParams::new(to_u32(dy.len(), "B x n")?, p_drop, 0, 0, 0);
        let y_buf = f32_buffer(ctx, "relu_dropout.y", &y[..dy.len()], false).await?;
        let d_buf = f32_buffer(ctx, "relu_dropout.d", dy, true).await?;
        submit(ctx, "relu_dropout.backward", |enc| {
            self.encode_relu_dropout_backward(ctx, enc, &y_buf, &d_buf, &hyper)
        })
        .await?;
        read_f32(ctx, &d_buf, dy.len()).await
    }
}
