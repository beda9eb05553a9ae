//! Dispatch of `shaders/reparam.wgsl` (twins `cpu::reparam::{forward, backward}`): the
//! reparameterisation with Philox normals drawn on the GPU, and its backward
//! (`latent_backward` runs it with the KL's on slices), and the entry points with the KL
//! fused that the training step records (`encode_reparam_kl`, `encode_reparam_kl_backward`).
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::dispatch::{
    check_len, encode, f32_buffer, f32_output, grid, read_f32, submit, to_u32, uniform_buffer,
    Binding, Recorder,
};
use super::kernels::{Pipelines, ReparamParams};
use super::GpuContext;
use crate::error::Result;

impl Pipelines {
    /// Records `z = mean + sqrt(exp(v) + 1e-4) * eps` for `n` = B x Z elements, with eps
    /// drawn on the GPU as `rng::normal(seed, stream, step, i)` and kept in `eps` for the
    /// backward pass. One dispatch.
    pub fn encode_reparam(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        mean: &dyn Binding,
        v: &dyn Binding,
        eps: &dyn Binding,
        z: &dyn Binding,
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
            z: 0,
            pad: [0; 2],
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
        encoder: &mut Recorder,
        dz: &dyn Binding,
        eps: &dyn Binding,
        v: &dyn Binding,
        d_mean: &dyn Binding,
        d_v: &dyn Binding,
        n: usize,
    ) -> Result<()> {
        let p = ReparamParams {
            n: to_u32(n, "B x Z")?,
            seed_lo: 0,
            seed_hi: 0,
            step: 0,
            stream: 0,
            z: 0,
            pad: [0; 2],
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

    /// Records [`Pipelines::encode_reparam`] and the per-cell KL into `kl` (B) in one
    /// dispatch (`kl_main`) over B x Z elements.
    pub fn encode_reparam_kl(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        mean: &dyn Binding,
        v: &dyn Binding,
        eps: &dyn Binding,
        z: &dyn Binding,
        kl: &dyn Binding,
        b: usize,
        n_latent: usize,
        seed: u64,
        step: u32,
        stream: u32,
    ) -> Result<()> {
        let p = ReparamParams {
            n: to_u32(b * n_latent, "B x Z")?,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            step,
            stream,
            z: to_u32(n_latent.max(1), "Z")?,
            pad: [0; 2],
        };
        let p_buf = uniform_buffer(ctx, "reparam.kl.params", &p);
        encode(
            ctx,
            encoder,
            "reparam.kl",
            &self.reparam_kl,
            &[(0, mean), (1, v), (2, eps), (3, z), (4, &p_buf), (8, kl)],
            grid(p.n, 256),
        )
    }

    /// Records the backward of [`Pipelines::encode_reparam_kl`] in one dispatch
    /// (`backward_kl_main`): OVERWRITES `d_mean`, `d_v` with the reparameterisation's
    /// gradient from `dz` plus that of `sum_cells weight[c] * KL[c]`.
    pub fn encode_reparam_kl_backward(
        &self,
        ctx: &GpuContext,
        encoder: &mut Recorder,
        mean: &dyn Binding,
        v: &dyn Binding,
        eps: &dyn Binding,
        dz: &dyn Binding,
        weight: &dyn Binding,
        d_mean: &dyn Binding,
        d_v: &dyn Binding,
        b: usize,
        n_latent: usize,
    ) -> Result<()> {
        let p = ReparamParams {
            n: to_u32(b * n_latent, "B x Z")?,
            seed_lo: 0,
            seed_hi: 0,
            step: 0,
            stream: 0,
            z: to_u32(n_latent.max(1), "Z")?,
            pad: [0; 2],
        };
        let p_buf = uniform_buffer(ctx, "reparam.backward_kl.params", &p);
        encode(
            ctx,
            encoder,
            "reparam.backward_kl",
            &self.reparam_backward_kl,
            &[
                (0, mean),
                (1, v),
                (2, eps),
                (4, &p_buf),
                (5, dz),
                (6, d_mean),
                (7, d_v),
                (9, weight),
            ],
            grid(p.n, 256),
        )
    }

    /// The fused forward on slices (`mean`, `v` hold B x Z values): `(eps, z, kl)` as
    /// `cpu::reparam::forward` and `cpu::kl::forward` give them, in one dispatch.
    pub async fn reparam_kl(
        &self,
        ctx: &GpuContext,
        mean: &[f32],
        v: &[f32],
        b: usize,
        n_latent: usize,
        seed: u64,
        step: u32,
        stream: u32,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let n = b * n_latent;
        check_len("reparam_kl mean", mean.len(), n)?;
        check_len("reparam_kl v", v.len(), n)?;
        let m_buf = f32_buffer(ctx, "reparam.mean", &mean[..n], false).await?;
        let v_buf = f32_buffer(ctx, "reparam.v", &v[..n], false).await?;
        let eps_buf = f32_output(ctx, "reparam.eps", n).await?;
        let z_buf = f32_output(ctx, "reparam.z", n).await?;
        let kl_buf = f32_output(ctx, "reparam.kl", b).await?;
        submit(ctx, "reparam.kl", |enc| {
            self.encode_reparam_kl(
                ctx, enc, &m_buf, &v_buf, &eps_buf, &z_buf, &kl_buf, b, n_latent, seed, step,
                stream,
            )
        })
        .await?;
        Ok((
            read_f32(ctx, &eps_buf, n).await?,
            read_f32(ctx, &z_buf, n).await?,
            read_f32(ctx, &kl_buf, b).await?,
        ))
    }

    /// [`Pipelines::latent_backward`] through the fused entry point (one dispatch).
    pub async fn latent_backward_fused(
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
        for (what, s, len) in [
            ("mean", mean, n),
            ("v", v, n),
            ("eps", eps, n),
            ("dz", dz, n),
            ("weight", weight, b),
        ] {
            check_len(&format!("latent_backward_fused {what}"), s.len(), len)?;
        }
        let m_buf = f32_buffer(ctx, "latent.mean", &mean[..n], false).await?;
        let v_buf = f32_buffer(ctx, "latent.v", &v[..n], false).await?;
        let eps_buf = f32_buffer(ctx, "latent.eps", &eps[..n], false).await?;
        let dz_buf = f32_buffer(ctx, "latent.dz", &dz[..n], false).await?;
        let w_buf = f32_buffer(ctx, "latent.weight", &weight[..b], false).await?;
        let dm_buf = f32_output(ctx, "latent.d_mean", n).await?;
        let dv_buf = f32_output(ctx, "latent.d_v", n).await?;
        submit(ctx, "latent_backward_fused", |enc| {
            self.encode_reparam_kl_backward(
                ctx, enc, &m_buf, &v_buf, &eps_buf, &dz_buf, &w_buf, &dm_buf, &dv_buf, b, z,
            )
        })
        .await?;
        Ok((
            read_f32(ctx, &dm_buf, n).await?,
            read_f32(ctx, &dv_buf, n).await?,
        ))
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
