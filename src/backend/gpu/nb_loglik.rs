//! Dispatch of `shaders/nb_loglik.wgsl` (twin `cpu::nb_loglik::forward_backward`): per
//! cell log-likelihood and logit gradients in one dispatch, then the dispersion gradient
//! reduced over cells (`theta_main`, which ZINB shares).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{nb_params, NbBuffers, Uploaded};
use super::dispatch::{encode, grid, read_f32, submit, uniform_buffer, Recorder};
use super::kernels::Pipelines;
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// NB log-likelihood per cell with gradients, shapes as in
    /// `cpu::nb_loglik::forward_backward` (x, rho B x G; log_theta K x G; library,
    /// theta_row, weight B). Returns `(loglik (B), d_logits (B x G), d_log_theta
    /// (K x G))`. Computed in f32 (the CPU twin uses f64).
    pub async fn nb_forward_backward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        library: &[f32],
        rho: &[f32],
        log_theta: &[f32],
        theta_row: &[u32],
        weight: &[f32],
        b: usize,
        g: usize,
        k: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let u = Uploaded::new(
            ctx, "nb", x, library, rho, log_theta, theta_row, weight, b, g, k,
        )
        .await?;
        submit(ctx, "nb_loglik", |enc| {
            self.encode_nb_forward_backward(ctx, enc, &u.bufs(), b, g, k)
        })
        .await?;
        Ok((
            read_f32(ctx, &u.loglik, b).await?,
            read_f32(ctx, &u.d_logits, b * g).await?,
            read_f32(ctx, &u.d_log_theta, k * g).await?,
        ))
    }

    /// Records the NB log-likelihood with gradients on resident buffers (see
    /// [`NbBuffers`]). Two dispatches: per cell (loglik, d_logits, th), then per
    /// dispersion entry (d_log_theta, summed over cells).
    pub fn encode_nb_forward_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        bufs: &NbBuffers<'_>,
        b: usize,
        g: usize,
        k: usize,
    ) -> Result<()> {
        let p = nb_params(b, g, k)?;
        let p_buf = uniform_buffer(ctx, "nb.params", &p);
        encode(
            ctx,
            encoder,
            "nb_loglik",
            &self.nb_loglik,
            &[
                (0, bufs.x),
                (1, bufs.rho),
                (2, bufs.log_theta),
                (3, bufs.cells),
                (4, bufs.loglik),
                (5, bufs.d_logits),
                (6, bufs.th_scratch),
                (8, &p_buf),
            ],
            grid(p.b, 1),
        )?;
        encode(
            ctx,
            encoder,
            "nb_loglik.theta",
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
