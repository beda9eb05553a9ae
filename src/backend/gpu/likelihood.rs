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
        check_len("nb x", x.len(), b * g)?;
        check_len("nb rho", rho.len(), b * g)?;
        check_len("nb log_theta", log_theta.len(), k * g)?;
        check_len("nb library", library.len(), b)?;
        check_len("nb theta_row", theta_row.len(), b)?;
        check_len("nb weight", weight.len(), b)?;
        if let Some(&bad) = theta_row[..b].iter().find(|&&r| r as usize >= k) {
            return Err(Error::Gpu(format!(
                "nb: theta_row {bad} is outside the {k} rows of the dispersion table"
            )));
        }
        let cells = nb_cells(library, weight, theta_row, b);
        let x_buf = f32_buffer(ctx, "nb.x", &x[..b * g], false).await?;
        let rho_buf = f32_buffer(ctx, "nb.rho", &rho[..b * g], false).await?;
        let lt_buf = f32_buffer(ctx, "nb.log_theta", &log_theta[..k * g], false).await?;
        let cell_buf = ctx
            .storage_buffer("nb.cells", bytemuck::cast_slice(&cells), false)
            .await?;
        let ll_buf = f32_output(ctx, "nb.loglik", b).await?;
        let dl_buf = f32_output(ctx, "nb.d_logits", b * g).await?;
        let th_buf = f32_output(ctx, "nb.th", b * g).await?;
        let dt_buf = f32_output(ctx, "nb.d_log_theta", k * g).await?;
        let bufs = NbBuffers {
            x: &x_buf,
            rho: &rho_buf,
            log_theta: &lt_buf,
            cells: &cell_buf,
            loglik: &ll_buf,
            d_logits: &dl_buf,
            th_scratch: &th_buf,
            d_log_theta: &dt_buf,
        };
        submit(ctx, "nb_loglik", |enc| {
            self.encode_nb_forward_backward(ctx, enc, &bufs, b, g, k)
        })
        .await?;
        let loglik = read_f32(ctx, &ll_buf, b).await?;
        let d_logits = read_f32(ctx, &dl_buf, b * g).await?;
        let d_log_theta = read_f32(ctx, &dt_buf, k * g).await?;
        Ok((loglik, d_logits, d_log_theta))
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
        check_len("zinb x", x.len(), b * g)?;
        check_len("zinb rho", rho.len(), b * g)?;
        check_len("zinb pi", pi.len(), b * g)?;
        check_len("zinb log_theta", log_theta.len(), k * g)?;
        check_len("zinb library", library.len(), b)?;
        check_len("zinb theta_row", theta_row.len(), b)?;
        check_len("zinb weight", weight.len(), b)?;
        if let Some(&bad) = theta_row[..b].iter().find(|&&r| r as usize >= k) {
            return Err(Error::Gpu(format!(
                "zinb: theta_row {bad} is outside the {k} rows of the dispersion table"
            )));
        }
        let cells = nb_cells(library, weight, theta_row, b);
        let x_buf = f32_buffer(ctx, "zinb.x", &x[..b * g], false).await?;
        let rho_buf = f32_buffer(ctx, "zinb.rho", &rho[..b * g], false).await?;
        let lt_buf = f32_buffer(ctx, "zinb.log_theta", &log_theta[..k * g], false).await?;
        let pi_buf = f32_buffer(ctx, "zinb.pi", &pi[..b * g], true).await?;
        let cell_buf = ctx
            .storage_buffer("zinb.cells", bytemuck::cast_slice(&cells), false)
            .await?;
        let ll_buf = f32_output(ctx, "zinb.loglik", b).await?;
        let dl_buf = f32_output(ctx, "zinb.d_logits", b * g).await?;
        let th_buf = f32_output(ctx, "zinb.th", b * g).await?;
        let dt_buf = f32_output(ctx, "zinb.d_log_theta", k * g).await?;
        let bufs = NbBuffers {
            x: &x_buf,
            rho: &rho_buf,
            log_theta: &lt_buf,
            cells: &cell_buf,
            loglik: &ll_buf,
            d_logits: &dl_buf,
            th_scratch: &th_buf,
            d_log_theta: &dt_buf,
        };
        submit(ctx, "zinb_loglik", |enc| {
            self.encode_zinb_forward_backward(ctx, enc, &bufs, &pi_buf, b, g, k)
        })
        .await?;
        Ok((
            read_f32(ctx, &ll_buf, b).await?,
            read_f32(ctx, &dl_buf, b * g).await?,
            read_f32(ctx, &dt_buf, k * g).await?,
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
        check_len("poisson x", x.len(), b * g)?;
        check_len("poisson rho", rho.len(), b * g)?;
        check_len("poisson library", library.len(), b)?;
        check_len("poisson weight", weight.len(), b)?;
        let cells = nb_cells(library, weight, &vec![0; b], b);
        let x_buf = f32_buffer(ctx, "poisson.x", &x[..b * g], false).await?;
        let rho_buf = f32_buffer(ctx, "poisson.rho", &rho[..b * g], false).await?;
        let cell_buf = ctx
            .storage_buffer("poisson.cells", bytemuck::cast_slice(&cells), false)
            .await?;
        let ll_buf = f32_output(ctx, "poisson.loglik", b).await?;
        let dl_buf = f32_output(ctx, "poisson.d_logits", b * g).await?;
        submit(ctx, "poisson_loglik", |enc| {
            self.encode_poisson_forward_backward(
                ctx, enc, &x_buf, &rho_buf, &cell_buf, &ll_buf, &dl_buf, b, g,
            )
        })
        .await?;
        Ok((
            read_f32(ctx, &ll_buf, b).await?,
            read_f32(ctx, &dl_buf, b * g).await?,
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

/// The per-cell structs of the likelihood kernels (the upload paths).
fn nb_cells(library: &[f32], weight: &[f32], theta_row: &[u32], b: usize) -> Vec<NbCell> {
    (0..b)
        .map(|r| NbCell {
            library: library[r],
            weight: weight[r],
            theta_row: theta_row[r],
            pad: 0,
        })
        .collect()
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
