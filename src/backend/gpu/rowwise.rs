//! Dispatch of the row-wise and elementwise latent kernels: `shaders/softmax.wgsl`
//! (twin `cpu::softmax::forward`), `shaders/kl.wgsl` (twin `cpu::kl::forward`) and
//! `shaders/reparam.wgsl` (twin `cpu::reparam::forward`). `encode_*` record into a
//! command encoder on resident buffers; the slice methods upload, dispatch, read back.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, to_u32, uniform_buffer,
};
use super::kernels::{Pipelines, ReparamParams, RowParams};
use super::GpuContext;
use crate::error::Result;

fn row_params(b: usize, g: usize, what: &str) -> Result<RowParams> {
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
        encoder: &mut wgpu::CommandEncoder,
        logits: &wgpu::Buffer,
        rho: &wgpu::Buffer,
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

    /// Records the per-cell KL of q(z|x) = N(mean, exp(v) + 1e-4) from N(0, I) into
    /// `kl` (B); `mean`, `v` B x Z. One dispatch.
    pub fn encode_kl(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        mean: &wgpu::Buffer,
        v: &wgpu::Buffer,
        kl: &wgpu::Buffer,
        b: usize,
        z: usize,
    ) -> Result<()> {
        let p = row_params(b, z, "Z")?;
        let p_buf = uniform_buffer(ctx, "kl.params", &p);
        encode(
            ctx,
            encoder,
            "kl",
            &self.kl,
            &[(0, mean), (1, v), (2, kl), (3, &p_buf)],
            grid(p.b, 256),
        )
    }

    /// Records `z = mean + sqrt(exp(v) + 1e-4) * eps` for `n` = B x Z elements, with eps
    /// drawn on the GPU as `rng::normal(seed, stream, step, i)` and kept in `eps` for the
    /// backward pass. One dispatch.
    pub fn encode_reparam(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        mean: &wgpu::Buffer,
        v: &wgpu::Buffer,
        eps: &wgpu::Buffer,
        z: &wgpu::Buffer,
        n: usize,
        seed: u64,
        step: u32,
        stream: u32,
    ) -> Result<()> {
        let p = ReparamParams {
            n: to_u32(n, "B x Z")?,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            step,
            stream,
            pad: [0; 3],
        };
        let p_buf = uniform_buffer(ctx, "reparam.params", &p);
        encode(
            ctx,
            encoder,
            "reparam",
            &self.reparam,
            &[(0, mean), (1, v), (2, eps), (3, z), (4, &p_buf)],
            grid(p.n, 256),
        )
    }

    /// Records the reparameterisation's backward for `n` = B x Z elements: OVERWRITES
    /// `d_mean = dz` and `d_v = dz * eps * exp(v) / (2 sqrt(var))`. One dispatch.
    pub fn encode_reparam_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        dz: &wgpu::Buffer,
        eps: &wgpu::Buffer,
        v: &wgpu::Buffer,
        d_mean: &wgpu::Buffer,
        d_v: &wgpu::Buffer,
        n: usize,
    ) -> Result<()> {
        let p = ReparamParams {
            n: to_u32(n, "B x Z")?,
            seed_lo: 0,
            seed_hi: 0,
            step: 0,
            stream: 0,
            pad: [0; 3],
        };
        let p_buf = uniform_buffer(ctx, "reparam.backward.params", &p);
        encode(
            ctx,
            encoder,
            "reparam.backward",
            &self.reparam_backward,
            &[
                (1, v),
                (2, eps),
                (4, &p_buf),
                (5, dz),
                (6, d_mean),
                (7, d_v),
            ],
            grid(p.n, 256),
        )
    }

    /// Records the KL gradient of `sum_cells weight[c] * KL[c]`, ACCUMULATED into
    /// `d_mean` and `d_v` (B x Z); `weight` is B. One dispatch.
    pub fn encode_kl_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        mean: &wgpu::Buffer,
        v: &wgpu::Buffer,
        weight: &wgpu::Buffer,
        d_mean: &wgpu::Buffer,
        d_v: &wgpu::Buffer,
        b: usize,
        z: usize,
    ) -> Result<()> {
        let p = row_params(b, z, "Z")?;
        let p_buf = uniform_buffer(ctx, "kl.backward.params", &p);
        encode(
            ctx,
            encoder,
            "kl.backward",
            &self.kl_backward,
            &[
                (0, mean),
                (1, v),
                (3, &p_buf),
                (4, weight),
                (5, d_mean),
                (6, d_v),
            ],
            grid(p.b * p.g, 256),
        )
    }

    /// The latent layer's backward on slices, as `cpu::reparam::backward` followed by
    /// `cpu::kl::backward` (one submit, two dispatches): returns `(d_mean, d_v)`.
    pub async fn latent_backward(
        &self,
        ctx: &GpuContext,
        mean: &[f32],
        v: &[f32],
        eps: &[f32],
        dz: &[f32],
        weight: &[f32],
        b: usize,
        z: usize,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = b * z;
        check_len("latent_backward mean", mean.len(), n)?;
        check_len("latent_backward v", v.len(), n)?;
        check_len("latent_backward eps", eps.len(), n)?;
        check_len("latent_backward dz", dz.len(), n)?;
        check_len("latent_backward weight", weight.len(), b)?;
        let m_buf = f32_buffer(ctx, "latent.mean", &mean[..n], false).await?;
        let v_buf = f32_buffer(ctx, "latent.v", &v[..n], false).await?;
        let eps_buf = f32_buffer(ctx, "latent.eps", &eps[..n], false).await?;
        let dz_buf = f32_buffer(ctx, "latent.dz", &dz[..n], false).await?;
        let w_buf = f32_buffer(ctx, "latent.weight", &weight[..b], false).await?;
        let dm_buf = f32_output(ctx, "latent.d_mean", n).await?;
        let dv_buf = f32_output(ctx, "latent.d_v", n).await?;
        submit(ctx, "latent_backward", |enc| {
            self.encode_reparam_backward(ctx, enc, &dz_buf, &eps_buf, &v_buf, &dm_buf, &dv_buf, n)?;
            self.encode_kl_backward(ctx, enc, &m_buf, &v_buf, &w_buf, &dm_buf, &dv_buf, b, z)
        })
        .await?;
        let d_mean = read_f32(ctx, &dm_buf, n).await?;
        let d_v = read_f32(ctx, &dv_buf, n).await?;
        Ok((d_mean, d_v))
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

    /// Per-cell KL on slices (`mean`, `v` B x Z), returning kl (B).
    pub async fn kl(
        &self,
        ctx: &GpuContext,
        mean: &[f32],
        v: &[f32],
        b: usize,
        z: usize,
    ) -> Result<Vec<f32>> {
        check_len("kl mean", mean.len(), b * z)?;
        check_len("kl v", v.len(), b * z)?;
        let m_buf = f32_buffer(ctx, "kl.mean", mean, false).await?;
        let v_buf = f32_buffer(ctx, "kl.v", v, false).await?;
        let kl_buf = f32_output(ctx, "kl.kl", b).await?;
        submit(ctx, "kl", |enc| {
            self.encode_kl(ctx, enc, &m_buf, &v_buf, &kl_buf, b, z)
        })
        .await?;
        read_f32(ctx, &kl_buf, b).await
    }

    /// The reparameterisation on slices (`mean`, `v` hold n = B x Z values), returning
    /// `(eps, z)`.
    pub async fn reparam(
        &self,
        ctx: &GpuContext,
        mean: &[f32],
        v: &[f32],
        seed: u64,
        step: u32,
        stream: u32,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let n = mean.len();
        check_len("reparam v", v.len(), n)?;
        let m_buf = f32_buffer(ctx, "reparam.mean", mean, false).await?;
        let v_buf = f32_buffer(ctx, "reparam.v", v, false).await?;
        let eps_buf = f32_output(ctx, "reparam.eps", n).await?;
        let z_buf = f32_output(ctx, "reparam.z", n).await?;
        submit(ctx, "reparam", |enc| {
            self.encode_reparam(
                ctx, enc, &m_buf, &v_buf, &eps_buf, &z_buf, n, seed, step, stream,
            )
        })
        .await?;
        let eps = read_f32(ctx, &eps_buf, n).await?;
        let z = read_f32(ctx, &z_buf, n).await?;
        Ok((eps, z))
    }
}
