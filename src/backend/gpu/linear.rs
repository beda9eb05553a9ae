//! Dispatch of `shaders/linear.wgsl` (twins `cpu::linear::{forward, backward}`):
//! `encode_*` record into a command encoder on resident buffers (the training path); the
//! slice methods upload, dispatch and read back (tests, checks).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, read_f32, submit, to_u32, uniform_buffer, Binding,
    Recorder,
};
use super::kernels::{LinearParams, Pipelines};
use super::GpuContext;
use crate::error::{Error, Result};

/// Side of the square output tiles of the matrix products (the shader's `TILE`: 64 x
/// 64 per workgroup of 256 invocations, 4 x 4 each).
const TILE: u32 = 64;

fn params(b: usize, n_in: usize, n_out: usize, accumulate: bool) -> Result<LinearParams> {
    to_u32(b * n_in.max(n_out), "B x width")?;
    to_u32(n_in * n_out, "n_in x n_out")?;
    Ok(LinearParams {
        b: to_u32(b, "B")?,
        n_in: to_u32(n_in, "n_in")?,
        n_out: to_u32(n_out, "n_out")?,
        accumulate: u32::from(accumulate),
    })
}

/// Workgroups for a `rows x cols` output in 64 x 64 tiles.
fn tiles(rows: u32, cols: u32) -> Result<(u32, u32, u32)> {
    let (gx, gy) = (cols.div_ceil(TILE).max(1), rows.div_ceil(TILE).max(1));
    if gx > 65_535 || gy > 65_535 {
        return Err(Error::Gpu(format!(
            "a {rows} x {cols} matrix product is over WebGPU's 65535 workgroups per dimension"
        )));
    }
    Ok((gx, gy, 1))
}

impl Pipelines {
    /// Records `y = x W + bias` (x B x n_in, w n_in x n_out, bias n_out, y B x n_out,
    /// overwritten). One dispatch.
    pub fn encode_linear_forward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        x: &dyn Binding,
        w: &dyn Binding,
        bias: &dyn Binding,
        y: &dyn Binding,
        b: usize,
        n_in: usize,
        n_out: usize,
    ) -> Result<()> {
        let p = params(b, n_in, n_out, false)?;
        let p_buf = uniform_buffer(ctx, "linear_forward.params", &p);
        encode(
            ctx,
            encoder,
            "linear_forward",
            &self.linear_forward,
            &[(0, x), (1, w), (2, bias), (3, y), (6, &p_buf)],
            tiles(p.b, p.n_out)?,
        )
    }

    /// Records the backward of [`Pipelines::encode_linear_forward`] given dy (B x n_out):
    /// `dw = x^T dy` (n_in x n_out) and `dbias = colsum(dy)` (n_out) in one dispatch,
    /// overwritten, and, when `dx` is given, `dx = dy W^T` (B x n_in) in a second,
    /// overwritten or, with `accumulate_dx`, added to what `dx` holds.
    pub fn encode_linear_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        x: &dyn Binding,
        w: &dyn Binding,
        dy: &dyn Binding,
        dx: Option<&dyn Binding>,
        dw: &dyn Binding,
        dbias: &dyn Binding,
        b: usize,
        n_in: usize,
        n_out: usize,
        accumulate_dx: bool,
    ) -> Result<()> {
        let p = params(b, n_in, n_out, accumulate_dx)?;
        let p_buf = uniform_buffer(ctx, "linear_backward.params", &p);
        encode(
            ctx,
            encoder,
            "linear_backward.dw",
            &self.linear_backward_dw,
            &[(0, x), (2, dy), (4, dw), (5, dbias), (6, &p_buf)],
            tiles(p.n_in, p.n_out)?,
        )?;
        if let Some(dx) = dx {
            encode(
                ctx,
                encoder,
                "linear_backward.dx",
                &self.linear_backward_dx,
                &[(1, w), (2, dy), (3, dx), (6, &p_buf)],
                tiles(p.b, p.n_in)?,
            )?;
        }
        Ok(())
    }

    /// `y = x W + bias` on slices (see `cpu::linear::forward`): x B x n_in, w n_in x
    /// n_out, bias n_out; returns y (B x n_out).
    pub async fn linear_forward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        w: &[f32],
        bias: &[f32],
        b: usize,
        n_in: usize,
        n_out: usize,
    ) -> Result<Vec<f32>> {
        check_len("linear_forward x", x.len(), b * n_in)?;
        check_len("linear_forward w", w.len(), n_in * n_out)?;
        check_len("linear_forward bias", bias.len(), n_out)?;
        let x_buf = f32_buffer(ctx, "linear_forward.x", x, false).await?;
        let w_buf = f32_buffer(ctx, "linear_forward.w", w, false).await?;
        let bias_buf = f32_buffer(ctx, "linear_forward.bias", bias, false).await?;
        let y_buf = f32_output(ctx, "linear_forward.y", b * n_out).await?;
        submit(ctx, "linear_forward", |enc| {
            self.encode_linear_forward(ctx, enc, &x_buf, &w_buf, &bias_buf, &y_buf, b, n_in, n_out)
        })
        .await?;
        read_f32(ctx, &y_buf, b * n_out).await
    }

    /// Backward of [`Pipelines::linear_forward`] on slices given dy (B x n_out), as
    /// `cpu::linear::backward`: returns `(dx, dw, dbias)` = (dy W^T, x^T dy, colsum dy);
    /// dx is empty when `dx_from` is `None`, else `dx_from + dy W^T` (pass zeros for
    /// plain `dy W^T`; the training step accumulates a second head's gradient so).
    pub async fn linear_backward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        b: usize,
        n_in: usize,
        n_out: usize,
        dx_from: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        check_len("linear_backward x", x.len(), b * n_in)?;
        check_len("linear_backward w", w.len(), n_in * n_out)?;
        check_len("linear_backward dy", dy.len(), b * n_out)?;
        let x_buf = f32_buffer(ctx, "linear_backward.x", x, false).await?;
        let w_buf = f32_buffer(ctx, "linear_backward.w", w, false).await?;
        let dy_buf = f32_buffer(ctx, "linear_backward.dy", dy, false).await?;
        let dx_buf = match dx_from {
            Some(d) => {
                check_len("linear_backward dx_from", d.len(), b * n_in)?;
                f32_buffer(ctx, "linear_backward.dx", &d[..b * n_in], true).await?
            }
            None => f32_output(ctx, "linear_backward.dx", 1).await?,
        };
        let dw_buf = f32_output(ctx, "linear_backward.dw", n_in * n_out).await?;
        let db_buf = f32_output(ctx, "linear_backward.dbias", n_out).await?;
        submit(ctx, "linear_backward", |enc| {
            self.encode_linear_backward(
                ctx,
                enc,
                &x_buf,
                &w_buf,
                &dy_buf,
                dx_from.map(|_| &dx_buf as &dyn Binding),
                &dw_buf,
                &db_buf,
                b,
                n_in,
                n_out,
                true,
            )
        })
        .await?;
        let dx = if dx_from.is_some() {
            read_f32(ctx, &dx_buf, b * n_in).await?
        } else {
            Vec::new()
        };
        let dw = read_f32(ctx, &dw_buf, n_in * n_out).await?;
        let dbias = read_f32(ctx, &db_buf, n_out).await?;
        Ok((dx, dw, dbias))
    }
}
