//! Dispatch of `shaders/poisson_loglik.wgsl` (twin
//! `cpu::poisson_loglik::forward_backward`): per cell log-likelihood and logit gradients.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::counts::{nb_params, Uploaded};
use super::dispatch::{encode, grid, read_f32, submit, uniform_buffer, Binding, Recorder};
use super::kernels::Pipelines;
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// Poisson log-likelihood per cell with the logit gradient, shapes as in
    /// `cpu::poisson_loglik::forward_backward`. Returns `(loglik, d_logits)`.
    pub async fn poisson_forward_backward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        library: &[f32],
        rho: &[f32],
        weight: &[f32],
        b: usize,
        g: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        // No dispersion: one (unused) row of zeros.
        let (lt, rows) = (vec![0.0; g], vec![0; b.min(library.len())]);
        let u = Uploaded::new(ctx, "poisson", x, library, rho, &lt, &rows, weight, b, g, 1).await?;
        submit(ctx, "poisson_loglik", |enc| {
            self.encode_poisson_forward_backward(
                ctx,
                enc,
                &u.x,
                &u.rho,
                &u.cells,
                &u.loglik,
                &u.d_logits,
                b,
                g,
            )
        })
        .await?;
        Ok((
            read_f32(ctx, &u.loglik, b).await?,
            read_f32(ctx, &u.d_logits, b * g).await?,
        ))
    }

    /// Records the Poisson log-likelihood with the logit gradient on resident buffers
    /// (`cells` as for NB; its dispersion row is unused). One dispatch.
    pub fn encode_poisson_forward_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        x: &dyn Binding,
        rho: &dyn Binding,
        cells: &dyn Binding,
        loglik: &dyn Binding,
        d_logits: &dyn Binding,
        b: usize,
        g: usize,
    ) -> Result<()> {
        let p = nb_params(b, g, 1)?;
        let p_buf = uniform_buffer(ctx, "poisson.params", &p);
        encode(
            ctx,
            encoder,
            "poisson_loglik",
            &self.poisson_loglik,
            &[
                (0, x),
                (1, rho),
                (2, cells),
                (3, loglik),
                (4, d_logits),
                (5, &p_buf),
            ],
            grid(p.b, 1),
        )
    }
}
