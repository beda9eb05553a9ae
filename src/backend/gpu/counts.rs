//! What the likelihood kernels share (the Rust side of `shaders/lib/counts.wgsl`): their
//! params, the resident buffers of the NB kernel ([`NbBuffers`]), and the slice inputs
//! uploaded after a shape check (the upload-dispatch-readback paths the tests use).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{check_len, f32_buffer, f32_output, to_u32, Binding};
use super::kernels::{NbCell, NbParams};
use super::GpuContext;
use crate::error::{Error, Result};

/// Checks and packs the likelihood kernels' params.
pub(super) fn nb_params(b: usize, g: usize, k: usize) -> Result<NbParams> {
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
pub(super) struct Uploaded {
    pub(super) x: wgpu::Buffer,
    pub(super) rho: wgpu::Buffer,
    pub(super) log_theta: wgpu::Buffer,
    pub(super) cells: wgpu::Buffer,
    pub(super) loglik: wgpu::Buffer,
    pub(super) d_logits: wgpu::Buffer,
    pub(super) th: wgpu::Buffer,
    pub(super) d_log_theta: wgpu::Buffer,
}

impl Uploaded {
    pub(super) async fn new(
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

    pub(super) fn bufs(&self) -> NbBuffers<'_> {
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
/// `cpu::nb_loglik::forward_backward`).
pub struct NbBuffers<'a> {
    /// Counts, B x G.
    pub x: &'a wgpu::Buffer,
    /// Softmax proportions, B x G.
    pub rho: &'a wgpu::Buffer,
    /// Log inverse dispersion, K x G.
    pub log_theta: &'a dyn Binding,
    /// B [`NbCell`] structs (library size, weight, dispersion row).
    pub cells: &'a wgpu::Buffer,
    /// Output: log-likelihood per cell, B.
    pub loglik: &'a wgpu::Buffer,
    /// Output: weighted gradient w.r.t. the softmax logits, B x G.
    pub d_logits: &'a wgpu::Buffer,
    /// Scratch, B x G: the weighted `t d log p / d t` per element.
    pub th_scratch: &'a wgpu::Buffer,
    /// Output: weighted gradient w.r.t. log_theta, K x G.
    pub d_log_theta: &'a dyn Binding,
}
