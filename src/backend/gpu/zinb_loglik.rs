//! Dispatch of `shaders/zinb_loglik.wgsl` (twin `cpu::zinb_loglik::forward_backward`):
//! per cell log-likelihood, logit gradients and the dropout logits' gradient (in place of
//! the logits), then NB's dispersion gradient over cells.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{nb_params, NbBuffers, Uploaded};
use super::dispatch::{
    check_len, encode, f32_buffer, grid, read_f32, submit, uniform_buffer, Binding, Recorder,
};
use super::kernels::Pipelines;
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// ZINB log-likelihood per cell with gradients, shapes as in
    /// `cpu::zinb_loglik::forward_backward` (as [`Pipelines::nb_forward_backward`] plus
    /// the dropout logits `pi`, B x G). Returns `(loglik, d_logits, d_log_theta, d_pi)`.
    pub async fn zinb_forward_backward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        library: &[f32],
        rho: &[f32],
        log_theta: &[f32],
        theta_row: &[u32],
        pi: &[f32],
        weight: &[f32],
        b: usize,
        g: usize,
        k: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)> {
        check_len("zinb pi", pi.len(), b * g)?;
        let u = Uploaded::new(
            ctx, "zinb", x, library, rho, log_theta, theta_row, weight, b, g, k,
        )
        .await?;
        let pi_buf = f32_buffer(ctx, "zinb.pi", &pi[..b * g], true).await?;
        submit(ctx, "zinb_loglik", |enc| {
            self.encode_zinb_forward_backward(ctx, enc, &u.bufs(), &pi_buf, b, g, k)
        })
        .await?;
        Ok((
            read_f32(ctx, &u.loglik, b).await?,
            read_f32(ctx, &u.d_logits, b * g).await?,
            read_f32(ctx, &u.d_log_theta, k * g).await?,
            read_f32(ctx, &pi_buf, b * g).await?,
        ))
    }

    /// Records the ZINB log-likelihood with gradients on resident buffers: `bufs` as for
    /// NB, and `pi` (B x G dropout logits, overwritten by their weighted gradient). Two
    /// dispatches: per cell, then the dispersion gradient (NB's `theta_main`).
    pub fn encode_zinb_forward_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        bufs: &NbBuffers<'_>,
        pi: &dyn Binding,
        b: usize,
        g: usize,
        k: usize,
    ) -> Result<()> {
        let p = nb_params(b, g, k)?;
        let p_buf = uniform_buffer(ctx, "zinb.params", &p);
        encode(
            ctx,
            encoder,
            "zinb_loglik",
            &self.zinb_loglik,
            &[
                (0, bufs.x),
                (1, bufs.rho),
                (2, bufs.log_theta),
                (3, bufs.cells),
                (4, bufs.loglik),
                (5, bufs.d_logits),
                (6, bufs.th_scratch),
                (7, pi),
                (8, &p_buf),
            ],
            grid(p.b, 1),
        )?;
        encode(
            ctx,
            encoder,
            "zinb_loglik.theta",
            &self.nb_loglik_theta,
            &[
                (3, bufs.cells),
                (6, bufs.th_scratch),
                (7, bufs.d_log_theta),
                (8, &p_buf),
            ],
            grid(p.k * p.g, 256),
        )
    }
}
