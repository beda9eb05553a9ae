//! Dispatch of the likelihood kernels `shaders/nb_loglik.wgsl`, `zinb_loglik.wgsl` and
//! `poisson_loglik.wgsl` (twins `cpu::likelihood::{nb,zinb,poisson}_forward_backward`):
//! per-cell log-likelihood and logit gradients in one dispatch, then (NB, ZINB) the
//! dispersion gradient reduced over cells by `nb_loglik`'s `theta_main`.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, to_u32, uniform_buffer,
};
use super::kernels::{NbCell, NbParams, Pipelines};
use super::GpuContext;
use crate::error::{Error, Result};

impl Pipelines {
    /// NB log-likelihood per cell with gradients, shapes as in
    /// `cpu::likelihood::nb_forward_backward` (x, rho B x G; log_theta K x G; library,
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

    /// ZINB log-likelihood per cell with gradients, shapes as in
    /// `cpu::likelihood::zinb_forward_backward` (as [`Pipelines::nb_forward_backward`] plus
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

    /// Poisson log-likelihood per cell with the logit gradient, shapes as in
    /// `cpu::likelihood::poisson_forward_backward`. Returns `(loglik, d_logits)`.
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

    /// Records the ZINB log-likelihood with gradients on resident buffers: `bufs` as for
    /// NB, and `pi` (B x G dropout logits, overwritten by their weighted gradient). Two
    /// dispatches: per cell, then the dispersion gradient (NB's `theta_main`).
    pub fn encode_zinb_forward_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        bufs: &NbBuffers<'_>,
        pi: &wgpu::Buffer,
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

    /// Records the Poisson log-likelihood with the logit gradient on resident buffers
    /// (`cells` as for NB; its dispersion row is unused). One dispatch.
    pub fn encode_poisson_forward_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        x: &wgpu::Buffer,
        rho: &wgpu::Buffer,
        cells: &wgpu::Buffer,
        loglik: &wgpu::Buffer,
        d_logits: &wgpu::Buffer,
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

    /// Records the NB log-likelihood with gradients on resident buffers (see
    /// [`NbBuffers`]). Two dispatches: per cell (loglik, d_logits, th), then per
    /// dispersion entry (d_log_theta, summed over cells).
    pub fn encode_nb_forward_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
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

/// Checks and packs the likelihood kernels' params.
fn nb_params(b: usize, g: usize, k: usize) -> Result<NbParams> {
    to_u32(b * g, "B x G")?;
    to_u32(k * g, "K x G")?;
    Ok(NbParams {
        b: to_u32(b, "B")?,
        g: to_u32(g, "G")?,
        k: to_u32(k, "K")?,
        pad: 0,
    })
}

/// The likelihood kernels' inputs uploaded and outputs allocated, after checking the
/// shapes (the upload-dispatch-readback paths the tests use).
struct Uploaded {
    x: wgpu::Buffer,
    rho: wgpu::Buffer,
    log_theta: wgpu::Buffer,
    cells: wgpu::Buffer,
    loglik: wgpu::Buffer,
    d_logits: wgpu::Buffer,
    th: wgpu::Buffer,
    d_log_theta: wgpu::Buffer,
}

impl Uploaded {
    async fn new(
        ctx: &GpuContext,
        name: &str,
        x: &[f32],
        library: &[f32],
        rho: &[f32],
        log_theta: &[f32],
        theta_row: &[u32],
        weight: &[f32],
        b: usize,
        g: usize,
        k: usize,
    ) -> Result<Uploaded> {
        check_len(&format!("{name} x"), x.len(), b * g)?;
        check_len(&format!("{name} rho"), rho.len(), b * g)?;
        check_len(&format!("{name} log_theta"), log_theta.len(), k * g)?;
        check_len(&format!("{name} library"), library.len(), b)?;
        check_len(&format!("{name} theta_row"), theta_row.len(), b)?;
        check_len(&format!("{name} weight"), weight.len(), b)?;
        if let Some(&bad) = theta_row[..b].iter().find(|&&r| r as usize >= k) {
            return Err(Error::Gpu(format!(
                "{name}: theta_row {bad} is outside the {k} rows of the dispersion table"
            )));
        }
        let cells: Vec<NbCell> = (0..b)
            .map(|r| NbCell {
                library: library[r],
                weight: weight[r],
                theta_row: theta_row[r],
                pad: 0,
            })
            .collect();
        let label = |what: &str| format!("{name}.{what}");
        Ok(Uploaded {
            x: f32_buffer(ctx, &label("x"), &x[..b * g], false).await?,
            rho: f32_buffer(ctx, &label("rho"), &rho[..b * g], false).await?,
            log_theta: f32_buffer(ctx, &label("log_theta"), &log_theta[..k * g], false).await?,
            cells: ctx
                .storage_buffer(&label("cells"), bytemuck::cast_slice(&cells), false)
                .await?,
            loglik: f32_output(ctx, &label("loglik"), b).await?,
            d_logits: f32_output(ctx, &label("d_logits"), b * g).await?,
            th: f32_output(ctx, &label("th"), b * g).await?,
            d_log_theta: f32_output(ctx, &label("d_log_theta"), k * g).await?,
        })
    }

    fn bufs(&self) -> NbBuffers<'_> {
        NbBuffers {
            x: &self.x,
            rho: &self.rho,
            log_theta: &self.log_theta,
            cells: &self.cells,
            loglik: &self.loglik,
            d_logits: &self.d_logits,
            th_scratch: &self.th,
            d_log_theta: &self.d_log_theta,
        }
    }
}

/// The resident buffers of the NB kernel, in binding order (shapes as in
/// `cpu::likelihood::nb_forward_backward`).
pub struct NbBuffers<'a> {
    /// Counts, B x G.
    pub x: &'a wgpu::Buffer,
    /// Softmax proportions, B x G.
    pub rho: &'a wgpu::Buffer,
    /// Log inverse dispersion, K x G.
    pub log_theta: &'a wgpu::Buffer,
    /// B [`NbCell`] structs (library size, weight, dispersion row).
    pub cells: &'a wgpu::Buffer,
    /// Output: log-likelihood per cell, B.
    pub loglik: &'a wgpu::Buffer,
    /// Output: weighted gradient w.r.t. the softmax logits, B x G.
    pub d_logits: &'a wgpu::Buffer,
    /// Scratch, B x G: the weighted `t d log p / d t` per element.
    pub th_scratch: &'a wgpu::Buffer,
    /// Output: weighted gradient w.r.t. log_theta, K x G.
    pub d_log_theta: &'a wgpu::Buffer,
}
