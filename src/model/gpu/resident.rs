//! What the GPU backend keeps on the device: the parameters, their gradients and Adam
//! moments in four flat buffers ([`Flat`]; each tensor a range of them, [`Tensor`],
//! starting at the adapter's storage-offset alignment so that a kernel binds just its
//! tensor, and Adam updates every tensor in one dispatch), each batch-norm statistic in
//! its own buffer, and the per-minibatch activations ([`Acts`]), allocated inside
//! out-of-memory scopes and grown only when a larger minibatch or group of steps comes.
#![allow(clippy::too_many_arguments)]

use crate::backend::gpu::dispatch::View;
use crate::backend::gpu::GpuContext;
use crate::error::{Error, Result};
use crate::model::backend::TrainState;
use crate::model::{Likelihood, Minibatch, ModelConfig, ParamLayout};
use std::ops::Range;

/// One trainable tensor: its value and gradient as ranges of the flat buffers (its Adam
/// moments sit at the same offset of [`Flat::m`] and [`Flat::v`]).
pub(super) struct Tensor {
    pub(super) value: View,
    pub(super) grad: View,
    pub(super) len: usize,
}

/// Every tensor's value, gradient and Adam moments, each in one buffer of `len` f32: the
/// tensors in layout order, each starting at a multiple of the storage-offset alignment
/// (the gaps are zero and stay zero: Adam maps a zero value with a zero gradient to zero).
pub(super) struct Flat {
    pub(super) values: wgpu::Buffer,
    pub(super) grads: wgpu::Buffer,
    pub(super) m: wgpu::Buffer,
    pub(super) v: wgpu::Buffer,
    pub(super) len: usize,
}

/// Activations of one hidden layer (B x H each, `stats` 2H).
pub(super) struct LayerActs {
    pub(super) pre: wgpu::Buffer,
    pub(super) out: wgpu::Buffer,
    pub(super) xhat: wgpu::Buffer,
    pub(super) stats: wgpu::Buffer,
}

/// Per-minibatch buffers, sized for up to `cap` cells (kernels are told the B in use).
pub(super) struct Acts {
    pub(super) cap: usize,
    pub(super) x: wgpu::Buffer,
    pub(super) counts: wgpu::Buffer,
    pub(super) cells: wgpu::Buffer,
    /// Batch code per cell (u32), for the one-hot layers.
    pub(super) codes: wgpu::Buffer,
    pub(super) enc: Vec<LayerActs>,
    pub(super) dec: Vec<LayerActs>,
    pub(super) qm: wgpu::Buffer,
    pub(super) qv: wgpu::Buffer,
    pub(super) eps: wgpu::Buffer,
    pub(super) z: wgpu::Buffer,
    pub(super) logits: wgpu::Buffer,
    pub(super) rho: wgpu::Buffer,
    /// ZINB dropout logits (B x G), overwritten by their gradient in the loss kernel.
    pub(super) pi: wgpu::Buffer,
    /// The step guard's verdict (u32: 1 = losses finite, Adam applies).
    pub(super) flag: wgpu::Buffer,
    /// Where each queued step's losses and flag are copied for reading back: loglik
    /// (B), kl (B), flag (1), one mapping per step.
    pub(super) staging: Vec<wgpu::Buffer>,
    pub(super) loglik: wgpu::Buffer,
    pub(super) kl: wgpu::Buffer,
    pub(super) weights_kl: wgpu::Buffer,
    pub(super) d_logits: wgpu::Buffer,
    pub(super) th: wgpu::Buffer,
    pub(super) d_a: wgpu::Buffer,
    pub(super) d_b: wgpu::Buffer,
    pub(super) d_z: wgpu::Buffer,
    pub(super) d_qm: wgpu::Buffer,
    pub(super) d_qv: wgpu::Buffer,
}

/// The model resident on the GPU.
pub(super) struct Resident {
    pub(super) config: ModelConfig,
    pub(super) layout: ParamLayout,
    pub(super) flat: Flat,
    pub(super) tensors: Vec<Tensor>,
    pub(super) buffers: Vec<wgpu::Buffer>,
    /// Copies of the running statistics taken before a step (restored when it fails).
    pub(super) buffers_saved: Vec<wgpu::Buffer>,
    pub(super) steps: u32,
    pub(super) epochs: u32,
    pub(super) acts: Option<Acts>,
}

impl Resident {
    /// The resident tensor whose layout range is `r`. Layout offsets ascend, so a binary
    /// search finds it; every range the layout hands out has a tensor (built from the
    /// same layout in `load`).
    pub(super) fn tensor(&self, r: &Range<usize>) -> &Tensor {
        let i = self.layout.tensors.partition_point(|s| s.offset < r.start);
        &self.tensors[i]
    }

    /// The minibatch buffers (allocated by `prepare`).
    pub(super) fn acts(&self) -> Result<&Acts> {
        self.acts
            .as_ref()
            .ok_or_else(|| Error::Gpu("internal: no minibatch buffers were prepared".into()))
    }

    /// The resident batch-norm buffer whose layout range is `r`.
    pub(super) fn buffer(&self, r: &Range<usize>) -> &wgpu::Buffer {
        let i = self.layout.buffers.partition_point(|s| s.offset < r.start);
        &self.buffers[i]
    }
}

/// A zeroed storage buffer of `n` 4-byte values (refused over the binding limit).
pub(super) fn buf(ctx: &GpuContext, label: &str, n: usize) -> Result<wgpu::Buffer> {
    ctx.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: ((n.max(1) * 4) as u64).div_ceil(4) * 4,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

pub(super) fn buf_with(ctx: &GpuContext, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
    let b = buf(ctx, label, data.len())?;
    if !data.is_empty() {
        ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    }
    Ok(b)
}

pub(super) fn check_supported(cfg: &ModelConfig) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::Config(format!(
            "the GPU backend does not support {what} yet; use --backend cpu"
        )))
    };
    if (cfg.var_eps - 1e-4).abs() > 1e-9 {
        return refuse("a variance epsilon other than 1e-4");
    }
    Ok(())
}

pub(super) type Uploaded = (Flat, Vec<Tensor>, Vec<wgpu::Buffer>, Vec<wgpu::Buffer>);

/// Where each tensor of `layout` starts in the flat buffers (f32 index, a multiple of
/// `align_f32`), and the flat length.
pub(super) fn flat_offsets(layout: &ParamLayout, align_f32: usize) -> (Vec<usize>, usize) {
    let align = align_f32.max(1);
    let mut at = 0;
    let offsets = layout
        .tensors
        .iter()
        .map(|t| {
            let start = at;
            at += t.len().max(1).div_ceil(align) * align;
            start
        })
        .collect();
    (offsets, at)
}

/// The flat buffers of every tensor (value, gradient, Adam moments) and a buffer per
/// batch-norm statistic.
pub(super) fn upload_state(ctx: &GpuContext, state: &TrainState) -> Result<Uploaded> {
    let (p, layout) = (&state.params, &state.params.layout);
    let align_bytes = ctx.device.limits().min_storage_buffer_offset_alignment as usize;
    let (offsets, len) = flat_offsets(layout, align_bytes.div_ceil(4));
    let spread = |from: &[f32]| {
        let mut out = vec![0.0f32; len];
        for (t, &at) in layout.tensors.iter().zip(&offsets) {
            out[at..at + t.len()].copy_from_slice(&from[t.range()]);
        }
        out
    };
    let flat = Flat {
        values: buf_with(ctx, "parameters", &spread(&p.values))?,
        grads: buf(ctx, "gradients", len)?,
        m: buf_with(ctx, "adam m", &spread(&state.adam_m))?,
        v: buf_with(ctx, "adam v", &spread(&state.adam_v))?,
        len,
    };
    let view = |buffer: &wgpu::Buffer, at: usize, n: usize| View {
        buffer: buffer.clone(),
        offset_bytes: (at * 4) as u64,
        len: n,
    };
    let tensors = layout
        .tensors
        .iter()
        .zip(&offsets)
        .map(|(t, &at)| Tensor {
            value: view(&flat.values, at, t.len()),
            grad: view(&flat.grads, at, t.len()),
            len: t.len(),
        })
        .collect();
    let buffers = layout
        .buffers
        .iter()
        .map(|t| buf_with(ctx, &t.name, &p.buffers[t.range()]))
        .collect::<Result<_>>()?;
    let buffers_saved = layout
        .buffers
        .iter()
        .map(|t| buf(ctx, &t.name, t.len()))
        .collect::<Result<_>>()?;
    Ok((flat, tensors, buffers, buffers_saved))
}

/// Makes sure the per-minibatch buffers hold `cap` cells and `slots` staging buffers
/// (reallocating, inside an out-of-memory scope, only when they grow). Only B x G
/// buffers grow with the data, so any number of cells trains within the binding limits.
pub(super) async fn ensure_acts(
    ctx: &GpuContext,
    m: &mut Resident,
    cap: usize,
    slots: usize,
) -> Result<()> {
    let cfg = &m.config;
    let (g, h, z) = (cfg.n_genes, cfg.n_hidden, cfg.n_latent);
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let largest = (4 * cap * g.max(h)) as u64;
    if largest > limit {
        return Err(Error::Gpu(format!(
            "a minibatch of {cap} cells needs {largest}-byte buffers, over this adapter's \
             limit of {limit} bytes per storage binding"
        )));
    }
    let (have_cap, have_slots) = m.acts.as_ref().map_or((0, 0), |a| (a.cap, a.staging.len()));
    if have_cap < cap || have_slots < slots {
        let (cap, slots) = (cap.max(have_cap), slots.max(have_slots).max(1));
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let acts = alloc_acts(ctx, cfg, cap, g, h, z, slots);
        let oom = ctx.out_of_memory(scope.pop().await);
        let acts = acts?;
        if let Some(e) = oom {
            return Err(Error::Gpu(format!(
                "out of GPU memory allocating a minibatch of {cap} cells: {e}"
            )));
        }
        m.acts = Some(acts);
    }
    Ok(())
}

/// Uploads a minibatch into the prepared buffers: the counts (the encoder's log1p is
/// computed from them on the GPU) and batch codes for the one-hot layers.
pub(super) fn upload(ctx: &GpuContext, m: &mut Resident, batch: &Minibatch) -> Result<()> {
    let cfg = &m.config;
    let (b, g) = (batch.n_rows, cfg.n_genes);
    if batch.n_genes != g
        || batch.counts.len() < b * g
        || batch.library.len() < b
        || batch.batch.len() < b
    {
        return Err(Error::Config(format!(
            "the minibatch has {} genes, the model {g}",
            batch.n_genes
        )));
    }
    batch.check_batches(cfg.n_batches)?;
    let a = m
        .acts
        .as_mut()
        .ok_or_else(|| Error::Gpu("internal: no minibatch buffers were prepared".into()))?;
    if b > a.cap {
        return Err(Error::Gpu(format!(
            "internal: a minibatch of {b} cells in buffers for {}",
            a.cap
        )));
    }
    ctx.queue
        .write_buffer(&a.counts, 0, bytemuck::cast_slice(&batch.counts[..b * g]));
    ctx.queue
        .write_buffer(&a.codes, 0, bytemuck::cast_slice(&batch.batch[..b]));
    Ok(())
}

pub(super) fn alloc_acts(
    ctx: &GpuContext,
    cfg: &ModelConfig,
    b: usize,
    g: usize,
    h: usize,
    z: usize,
    slots: usize,
) -> Result<Acts> {
    let layer = |name: &str| -> Result<LayerActs> {
        Ok(LayerActs {
            pre: buf(ctx, name, b * h)?,
            out: buf(ctx, name, b * h)?,
            xhat: buf(ctx, name, b * h)?,
            stats: buf(ctx, name, 2 * h)?,
        })
    };
    let zinb = cfg.likelihood == Likelihood::Zinb;
    Ok(Acts {
        cap: b,
        x: buf(ctx, "x_log1p", b * g)?,
        counts: buf(ctx, "counts", b * g)?,
        cells: buf(ctx, "cells", 4 * b)?,
        codes: buf(ctx, "batch codes", b)?,
        enc: (0..cfg.n_layers)
            .map(|_| layer("enc"))
            .collect::<Result<_>>()?,
        dec: (0..cfg.n_layers)
            .map(|_| layer("dec"))
            .collect::<Result<_>>()?,
        qm: buf(ctx, "qm", b * z)?,
        qv: buf(ctx, "qv", b * z)?,
        eps: buf(ctx, "eps", b * z)?,
        z: buf(ctx, "z", b * z)?,
        logits: buf(ctx, "logits", b * g)?,
        rho: buf(ctx, "rho", b * g)?,
        pi: buf(ctx, "pi", if zinb { b * g } else { 1 })?,
        flag: buf(ctx, "step flag", 4)?,
        staging: (0..slots)
            .map(|_| {
                ctx.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("losses readback"),
                    size: ((2 * b + 4) * 4) as u64,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect::<Result<_>>()?,
        loglik: buf(ctx, "loglik", b)?,
        kl: buf(ctx, "kl", b)?,
        weights_kl: buf(ctx, "weights_kl", b)?,
        d_logits: buf(ctx, "d_logits", b * g)?,
        th: buf(ctx, "th", b * g)?,
        d_a: buf(ctx, "d_a", b * h)?,
        d_b: buf(ctx, "d_b", b * h)?,
        d_z: buf(ctx, "d_z", b * z)?,
        d_qm: buf(ctx, "d_qm", b * z)?,
        d_qv: buf(ctx, "d_qv", b * z)?,
    })
}
