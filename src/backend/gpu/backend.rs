//! The GPU [`Backend`](crate::backend::Backend): the whole VAE step on resident wgpu
//! buffers, composed from the `encode_*` kernels in the same order as
//! `model::cpu_model::CpuModel::forward_backward` (encode, reparameterise, decode, KL,
//! likelihood, backward), then Adam on every parameter tensor.
//!
//! Supported so far: the scvi-tools default model (NB likelihood, one batch so that no
//! one-hot covariate enters any layer, `var_eps` = 1e-4 as the kernels hard-code it),
//! any number of layers, hidden and latent sizes. Other configurations are refused by
//! [`GpuBackend::load_async`] with [`Error::Config`].
//!
//! Every tensor (parameter, gradient, Adam moments, batch-norm running statistics) has
//! its own buffer: storage-binding offsets would need 256-byte alignment.
//!
//! One step is two submissions: forward + backward (one command encoder), then, after
//! the per-cell losses are read back, Adam (one command encoder). Unlike the CPU
//! backend, which checks every gradient, only the losses are checked for finiteness:
//! when they are not finite Adam is skipped and the batch-norm running statistics are
//! restored from the copy taken at the start of the step.
//!
//! The methods are async (the browser cannot block); natively [`GpuBackend`] also
//! implements [`Backend`](crate::backend::Backend) by blocking on them.
#![allow(clippy::too_many_arguments)]

use super::dispatch::{read_f32, read_f32_concat, submit};
use super::kernels::{AdamParams, DropoutParams, NbCell, Pipelines};
use super::{GpuContext, NbBuffers};
use crate::backend::{Posterior, StepHyper, StepLosses, TrainState};
use crate::error::{Error, Result};
use crate::model::params::LayerRanges;
use crate::model::{Likelihood, Minibatch, ModelConfig, ParamLayout, Params};
use crate::rng;
use std::ops::Range;

/// Value, gradient and Adam moments of one trainable tensor.
struct Tensor {
    value: wgpu::Buffer,
    grad: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    len: usize,
}

/// Activations of one hidden layer (B x H each, `stats` 2H).
struct LayerActs {
    pre: wgpu::Buffer,
    out: wgpu::Buffer,
    xhat: wgpu::Buffer,
    stats: wgpu::Buffer,
}

/// Per-minibatch buffers, sized for up to `cap` cells (kernels are told the B in use).
struct Acts {
    cap: usize,
    /// The B whose `[I_B; I_B]` is in `stack_eye`.
    eye_b: usize,
    x: wgpu::Buffer,
    counts: wgpu::Buffer,
    cells: wgpu::Buffer,
    /// Batch code per cell (u32), for the one-hot layers.
    codes: wgpu::Buffer,
    enc: Vec<LayerActs>,
    dec: Vec<LayerActs>,
    qm: wgpu::Buffer,
    qv: wgpu::Buffer,
    eps: wgpu::Buffer,
    z: wgpu::Buffer,
    logits: wgpu::Buffer,
    rho: wgpu::Buffer,
    /// ZINB dropout logits (B x G), overwritten by their gradient in the loss kernel.
    pi: wgpu::Buffer,
    /// The step guard's verdict (u32: 1 = losses finite, Adam applies).
    flag: wgpu::Buffer,
    /// Where each queued step's losses and flag are copied for reading back: loglik
    /// (B), kl (B), flag (1), one mapping per step.
    staging: Vec<wgpu::Buffer>,
    loglik: wgpu::Buffer,
    kl: wgpu::Buffer,
    weights_kl: wgpu::Buffer,
    d_logits: wgpu::Buffer,
    th: wgpu::Buffer,
    d_a: wgpu::Buffer,
    d_b: wgpu::Buffer,
    d_z: wgpu::Buffer,
    d_qm: wgpu::Buffer,
    d_qv: wgpu::Buffer,
    /// `[d_a; d_b]` stacked (2B x H) and `[I_B; I_B]` (2B x B): `x^T dy` of the linear
    /// backward's dw kernel sums the two encoder-head gradients exactly.
    stack: wgpu::Buffer,
    stack_eye: wgpu::Buffer,
    scratch_h: wgpu::Buffer,
}

/// The model resident on the GPU.
struct Resident {
    config: ModelConfig,
    layout: ParamLayout,
    tensors: Vec<Tensor>,
    buffers: Vec<wgpu::Buffer>,
    /// Copies of the running statistics taken before a step (restored when it fails).
    buffers_saved: Vec<wgpu::Buffer>,
    steps: u32,
    epochs: u32,
    acts: Option<Acts>,
}

impl Resident {
    /// The resident tensor whose layout range is `r`. Layout offsets ascend, so a binary
    /// search finds it; every range the layout hands out has a tensor (built from the
    /// same layout in `load`).
    fn tensor(&self, r: &Range<usize>) -> &Tensor {
        let i = self.layout.tensors.partition_point(|s| s.offset < r.start);
        &self.tensors[i]
    }

    /// The minibatch buffers (allocated by `prepare`).
    fn acts(&self) -> Result<&Acts> {
        self.acts
            .as_ref()
            .ok_or_else(|| Error::Gpu("internal: no minibatch buffers were prepared".into()))
    }

    /// The resident batch-norm buffer whose layout range is `r`.
    fn buffer(&self, r: &Range<usize>) -> &wgpu::Buffer {
        let i = self.layout.buffers.partition_point(|s| s.offset < r.start);
        &self.buffers[i]
    }
}

/// The VAE on a wgpu device (see the module documentation for what is supported).
pub struct GpuBackend {
    ctx: GpuContext,
    pipes: Pipelines,
    model: Option<Resident>,
    /// Compute dispatches recorded by the last training step (forward, backward, Adam).
    pub last_dispatches: usize,
    /// Fault injection for tests of the CPU fallback: the device is destroyed when this
    /// step begins (see [`GpuBackend::lose_device_at_step`]).
    lose_at: Option<u32>,
}

/// A zeroed storage buffer of `n` 4-byte values (refused over the binding limit).
fn buf(ctx: &GpuContext, label: &str, n: usize) -> Result<wgpu::Buffer> {
    ctx.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: ((n.max(1) * 4) as u64).div_ceil(4) * 4,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

fn buf_with(ctx: &GpuContext, label: &str, data: &[f32]) -> Result<wgpu::Buffer> {
    let b = buf(ctx, label, data.len())?;
    if !data.is_empty() {
        ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    }
    Ok(b)
}

fn check_supported(cfg: &ModelConfig) -> Result<()> {
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

impl GpuBackend {
    /// Opens the default adapter and compiles every kernel.
    pub async fn create() -> Result<GpuBackend> {
        let ctx = GpuContext::new().await?;
        GpuBackend::with_context(ctx).await
    }

    /// A backend on an open context (compiles every kernel).
    pub async fn with_context(ctx: GpuContext) -> Result<GpuBackend> {
        let pipes = Pipelines::new(&ctx).await?;
        Ok(GpuBackend {
            ctx,
            pipes,
            model: None,
            last_dispatches: 0,
            lose_at: None,
        })
    }

    /// The context in use.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Fault injection, for testing what callers do when the device goes away: the
    /// device is destroyed as training step `step` begins, so that step and every later
    /// call fail with the device-lost error, as after a driver reset.
    pub fn lose_device_at_step(&mut self, step: u32) {
        self.lose_at = Some(step);
    }

    /// Uploads a training state (see [`crate::backend::Backend::load`]).
    pub async fn load_async(&mut self, state: &TrainState) -> Result<()> {
        let p = &state.params;
        check_supported(&p.config)?;
        let layout = &p.layout;
        if p.values.len() != layout.n_params
            || p.buffers.len() != layout.n_buffers
            || state.adam_m.len() != layout.n_params
            || state.adam_v.len() != layout.n_params
        {
            return Err(Error::Config(
                "the training state does not match its parameter layout".into(),
            ));
        }
        self.ctx.check_lost()?;
        let ctx = &self.ctx;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let built = upload_state(ctx, state);
        let oom = scope.pop().await;
        let (tensors, buffers, buffers_saved) = built?;
        if let Some(e) = oom {
            return Err(Error::Gpu(format!(
                "out of GPU memory uploading the model: {e}"
            )));
        }
        self.model = Some(Resident {
            config: p.config.clone(),
            layout: layout.clone(),
            tensors,
            buffers,
            buffers_saved,
            steps: state.steps,
            epochs: state.epochs,
            acts: None,
        });
        Ok(())
    }

    /// Reads the training state back (see [`crate::backend::Backend::save`]).
    pub async fn save_async(&mut self) -> Result<TrainState> {
        let m = self.resident()?;
        let n = m.layout.n_params;
        let parts: Vec<(&wgpu::Buffer, usize)> = [
            m.tensors.iter().map(|t| (&t.m, t.len)).collect::<Vec<_>>(),
            m.tensors.iter().map(|t| (&t.v, t.len)).collect(),
        ]
        .concat();
        let moments = read_f32_concat(&self.ctx, &parts).await?;
        let (adam_m, adam_v) = moments.split_at(n);
        Ok(TrainState {
            params: self.params_async().await?,
            adam_m: adam_m.to_vec(),
            adam_v: adam_v.to_vec(),
            steps: m.steps,
            epochs: m.epochs,
        })
    }

    /// The parameters and batch-norm statistics only (no Adam moments): what the page
    /// reads back to draw the map and decode. One copy and one wait.
    pub async fn params_async(&self) -> Result<Params> {
        let m = self.resident()?;
        let parts: Vec<(&wgpu::Buffer, usize)> = m
            .tensors
            .iter()
            .map(|t| (&t.value, t.len))
            .chain(
                m.layout
                    .buffers
                    .iter()
                    .zip(&m.buffers)
                    .map(|(s, b)| (b, s.len())),
            )
            .collect();
        let mut values = read_f32_concat(&self.ctx, &parts).await?;
        let buffers = values.split_off(m.layout.n_params);
        Ok(Params {
            config: m.config.clone(),
            layout: m.layout.clone(),
            values,
            buffers,
        })
    }

    fn resident(&self) -> Result<&Resident> {
        self.model
            .as_ref()
            .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))
    }

    /// One training step (see [`crate::backend::Backend::train_step`]).
    pub async fn train_step_async(
        &mut self,
        batch: &Minibatch,
        hyper: &StepHyper,
    ) -> Result<StepLosses> {
        let out = self
            .train_steps_async(std::slice::from_ref(batch), std::slice::from_ref(hyper))
            .await?;
        out.into_iter()
            .next()
            .ok_or_else(|| Error::Gpu("internal: a step returned no losses".into()))
    }

    /// Several training steps queued back to back, each one command encoder (forward,
    /// backward, step guard, Adam, losses copied to its own staging buffer), then the
    /// losses of all of them read back: the GPU never waits for the CPU between the
    /// steps of a group. Returns the losses in order, stopping after the first
    /// non-finite step; the steps queued after it have run too, so the caller restores
    /// a saved state then (the [`crate::train::Trainer`] does).
    pub async fn train_steps_async(
        &mut self,
        batches: &[Minibatch],
        hypers: &[StepHyper],
    ) -> Result<Vec<StepLosses>> {
        let n = batches.len().min(hypers.len());
        if n == 0 {
            return Ok(Vec::new());
        }
        if batches[..n].iter().any(|b| b.n_rows == 0) {
            return Err(Error::Config(
                "an empty minibatch cannot be trained on".into(),
            ));
        }
        let cap = batches[..n].iter().map(|b| b.n_rows).max().unwrap_or(1);
        let before = self.ctx.dispatches();
        {
            let ctx = &self.ctx;
            let m = self
                .model
                .as_mut()
                .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))?;
            ensure_acts(ctx, m, cap, n).await?;
        }
        for (slot, (batch, hyper)) in batches[..n].iter().zip(hypers).enumerate() {
            if self.lose_at == Some(hyper.step) {
                self.ctx.device.destroy();
                #[cfg(not(target_arch = "wasm32"))]
                let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
            }
            self.queue_step(batch, hyper, slot).await?;
        }
        let ctx = &self.ctx;
        let m = self
            .model
            .as_mut()
            .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))?;
        let mut out = Vec::with_capacity(n);
        for (slot, (batch, hyper)) in batches[..n].iter().zip(hypers).enumerate() {
            let b = batch.n_rows;
            let a = m.acts()?;
            // Waits for this step (the first wait covers the whole group).
            let bytes = ctx.map_read(&a.staging[slot], (8 * b + 4) as u64).await?;
            let vals: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes[..8 * b]);
            let flag = bytemuck::pod_read_unaligned::<u32>(&bytes[8 * b..8 * b + 4]);
            let (loglik, kl) = vals.split_at(b);
            let recon = (-loglik.iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64) as f32;
            let klm = (kl.iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64) as f32;
            let finite = flag == 1;
            out.push(StepLosses {
                loss: recon + hyper.kl_weight * klm,
                reconstruction: recon,
                kl: klm,
                finite,
            });
            if !finite {
                // Adam skipped itself; put the running statistics back as they were
                // before this step (exact when it was the last one queued).
                if slot + 1 == n {
                    submit(ctx, "restore running statistics", |enc| {
                        for (dst, src) in m.buffers.iter().zip(&m.buffers_saved) {
                            enc.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
                        }
                        Ok(())
                    })
                    .await?;
                }
                break;
            }
            m.steps = hyper.step + 1;
        }
        self.last_dispatches = (self.ctx.dispatches() - before) / n;
        Ok(out)
    }

    /// Uploads one minibatch and submits its whole step (one command encoder), the
    /// losses and the guard's verdict copied to staging buffer `slot`.
    async fn queue_step(
        &mut self,
        batch: &Minibatch,
        hyper: &StepHyper,
        slot: usize,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let pipes = &self.pipes;
        let m = self
            .model
            .as_mut()
            .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))?;
        let b = batch.n_rows;
        upload(ctx, m, batch)?;
        let m = &*m;
        let a = m.acts()?;
        let cfg = &m.config;
        let inv_b = 1.0 / b as f32;
        let gene_batch = cfg.dispersion == crate::model::Dispersion::GeneBatch;
        let cells: Vec<NbCell> = (0..b)
            .map(|r| NbCell {
                library: batch.library[r],
                weight: -inv_b,
                theta_row: if gene_batch { batch.batch[r] } else { 0 },
                pad: 0,
            })
            .collect();
        ctx.queue
            .write_buffer(&a.cells, 0, bytemuck::cast_slice(&cells));
        ctx.queue.write_buffer(
            &a.weights_kl,
            0,
            bytemuck::cast_slice(&vec![hyper.kl_weight * inv_b; b]),
        );
        // The same dispatches every step for a given B: replay their uniforms and bind
        // groups instead of creating them.
        ctx.begin_tape(1 << 32 | b as u64);
        let recorded = submit(ctx, "train_step", |enc| {
            // Keep the running statistics in case the step turns out non-finite.
            for (src, dst) in m.buffers.iter().zip(&m.buffers_saved) {
                enc.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
            }
            let rec = Rec {
                ctx,
                pipes,
                m,
                a,
                b,
            };
            rec.encoder(enc, Some((hyper.seed, hyper.step)))?;
            pipes.encode_reparam(
                ctx,
                enc,
                &a.qm,
                &a.qv,
                &a.eps,
                &a.z,
                b * cfg.n_latent,
                hyper.seed,
                hyper.step,
                rng::REPARAM,
            )?;
            rec.decoder(enc)?;
            pipes.encode_kl(ctx, enc, &a.qm, &a.qv, &a.kl, b, cfg.n_latent)?;
            rec.likelihood(enc)?;
            rec.backward(enc)?;
            // Adam in the same encoder, skipped on the GPU when the losses are not finite.
            pipes.encode_step_guard(ctx, enc, &a.loglik, &a.kl, &a.flag, b)?;
            for tn in &m.tensors {
                let hp = AdamParams::new(
                    tn.len as u32,
                    f64::from(hyper.lr),
                    0.9,
                    0.999,
                    f64::from(hyper.adam_eps),
                    f64::from(hyper.weight_decay),
                    hyper.step + 1,
                );
                pipes
                    .encode_adam_step(ctx, enc, &tn.value, &tn.grad, &tn.m, &tn.v, &hp, &a.flag)?;
            }
            let bb = (4 * b) as u64;
            let staging = &a.staging[slot];
            enc.copy_buffer_to_buffer(&a.loglik, 0, staging, 0, bb);
            enc.copy_buffer_to_buffer(&a.kl, 0, staging, bb, bb);
            enc.copy_buffer_to_buffer(&a.flag, 0, staging, 2 * bb, 4);
            Ok(())
        })
        .await;
        ctx.end_tape();
        recorded
    }

    /// q(z|x) in eval mode (see [`crate::backend::Backend::encode`]).
    pub async fn encode_async(&mut self, batch: &Minibatch) -> Result<Posterior> {
        let ctx = &self.ctx;
        let pipes = &self.pipes;
        let m = self
            .model
            .as_mut()
            .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))?;
        let b = batch.n_rows;
        if b == 0 {
            return Ok(Posterior::default());
        }
        ensure_acts(ctx, m, b, 0).await?;
        upload(ctx, m, batch)?;
        let m = &*m;
        let a = m.acts()?;
        ctx.begin_tape(2 << 32 | b as u64);
        let recorded = submit(ctx, "encode", |enc| {
            Rec {
                ctx,
                pipes,
                m,
                a,
                b,
            }
            .encoder(enc, None)
        })
        .await;
        ctx.end_tape();
        recorded?;
        let z = m.config.n_latent;
        let mean = read_f32(ctx, &a.qm, b * z).await?;
        let v = read_f32(ctx, &a.qv, b * z).await?;
        let var = v.iter().map(|&v| v.exp() + m.config.var_eps).collect();
        Ok(Posterior { mean, var })
    }
}

type Uploaded = (Vec<Tensor>, Vec<wgpu::Buffer>, Vec<wgpu::Buffer>);

/// Buffers of every tensor (value, gradient, Adam moments) and batch-norm statistic.
fn upload_state(ctx: &GpuContext, state: &TrainState) -> Result<Uploaded> {
    let (p, layout) = (&state.params, &state.params.layout);
    let tensors = layout
        .tensors
        .iter()
        .map(|t| {
            let r = t.range();
            Ok(Tensor {
                value: buf_with(ctx, &t.name, &p.values[r.clone()])?,
                grad: buf(ctx, &t.name, t.len())?,
                m: buf_with(ctx, &t.name, &state.adam_m[r.clone()])?,
                v: buf_with(ctx, &t.name, &state.adam_v[r])?,
                len: t.len(),
            })
        })
        .collect::<Result<_>>()?;
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
    Ok((tensors, buffers, buffers_saved))
}

type BnRanges = ((Range<usize>, Range<usize>), (Range<usize>, Range<usize>));

fn bn_ranges(layer: &LayerRanges) -> Result<BnRanges> {
    match (&layer.bn, &layer.bn_running) {
        (Some(p), Some(r)) => Ok((p.clone(), r.clone())),
        _ => Err(Error::Gpu("a hidden layer without batch norm".into())),
    }
}

/// What recording a step needs: the kernels, the resident model, this minibatch's
/// buffers and its size. The methods record in the order of
/// `model::cpu_model::CpuModel::forward_backward`.
struct Rec<'a> {
    ctx: &'a GpuContext,
    pipes: &'a Pipelines,
    m: &'a Resident,
    a: &'a Acts,
    b: usize,
}

impl Rec<'_> {
    fn t(&self, r: &Range<usize>) -> &Tensor {
        self.m.tensor(r)
    }

    /// `y = x W[..base] + bias` then, when the layer takes the one-hot batch, `y +=
    /// W[base + batch]`.
    fn linear_in(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        base: usize,
        with_batch: bool,
    ) -> Result<()> {
        let (ctx, a, b, h) = (self.ctx, self.a, self.b, layer.n_out);
        let w = &self.t(&layer.weight).value;
        let bias = &self.t(&layer.bias).value;
        self.pipes
            .encode_linear_forward(ctx, enc, x, w, bias, y, b, base, h)?;
        let k = self.m.config.batch_inputs();
        if with_batch && k > 0 {
            self.pipes
                .encode_onehot(ctx, enc, &a.codes, w, y, b, h, base, k)?;
        }
        Ok(())
    }

    /// Backward of [`Rec::linear_in`] from dy = `a.d_b`: weight and bias gradients (the
    /// one-hot rows too) and, when given, `dx`.
    fn linear_in_backward(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        dx: Option<&wgpu::Buffer>,
        base: usize,
        with_batch: bool,
    ) -> Result<()> {
        let (ctx, a, b, h) = (self.ctx, self.a, self.b, layer.n_out);
        let w = self.t(&layer.weight);
        self.pipes.encode_linear_backward(
            ctx,
            enc,
            x,
            &w.value,
            &a.d_b,
            dx,
            &w.grad,
            &self.t(&layer.bias).grad,
            b,
            base,
            h,
        )?;
        let k = self.m.config.batch_inputs();
        if with_batch && k > 0 {
            self.pipes
                .encode_onehot_grad(ctx, enc, &a.codes, &a.d_b, &w.grad, b, h, base, k)?;
        }
        Ok(())
    }

    /// A dense head `y = x W + bias` (x B x H).
    fn head(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<()> {
        self.pipes.encode_linear_forward(
            self.ctx,
            enc,
            x,
            &self.t(&layer.weight).value,
            &self.t(&layer.bias).value,
            y,
            self.b,
            layer.n_in,
            layer.n_out,
        )
    }

    /// Backward of [`Rec::head`]: parameter gradients and `dx`.
    fn head_backward(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        dx: &wgpu::Buffer,
    ) -> Result<()> {
        let w = self.t(&layer.weight);
        self.pipes.encode_linear_backward(
            self.ctx,
            enc,
            x,
            &w.value,
            dy,
            Some(dx),
            &w.grad,
            &self.t(&layer.bias).grad,
            self.b,
            layer.n_in,
            layer.n_out,
        )
    }

    /// Batch norm then ReLU (+ dropout) in place on `c.out`: training mode (batch
    /// statistics, running statistics updated) when `drop` is given, else eval mode.
    fn norm_act(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layer: &LayerRanges,
        c: &LayerActs,
        drop: Option<DropoutParams>,
    ) -> Result<()> {
        let (ctx, pipes, m, b, h) = (self.ctx, self.pipes, self.m, self.b, layer.n_out);
        let cfg = &m.config;
        let ((gm, be), (rm, rv)) = bn_ranges(layer)?;
        let (gamma, beta) = (&self.t(&gm).value, &self.t(&be).value);
        let (rmean, rvar) = (m.buffer(&rm), m.buffer(&rv));
        match drop {
            Some(drop) => {
                pipes.encode_batchnorm_train(
                    ctx,
                    enc,
                    &c.pre,
                    gamma,
                    beta,
                    rmean,
                    rvar,
                    &c.out,
                    &c.xhat,
                    &c.stats,
                    b,
                    h,
                    cfg.bn_eps,
                    cfg.bn_momentum,
                )?;
                pipes.encode_relu_dropout(ctx, enc, &c.out, &drop)
            }
            None => {
                pipes.encode_batchnorm_eval(
                    ctx, enc, &c.pre, gamma, beta, rmean, rvar, &c.out, b, h, cfg.bn_eps,
                )?;
                pipes.encode_relu_dropout(
                    ctx,
                    enc,
                    &c.out,
                    &DropoutParams::new((b * h) as u32, 0.0, 0, 0, 0),
                )
            }
        }
    }

    /// ReLU (+ dropout) backward in place on `a.d_a`, then batch-norm backward into
    /// `a.d_b` and the layer's gamma/beta gradients.
    fn norm_act_backward(
        &self,
        enc: &mut wgpu::CommandEncoder,
        layer: &LayerRanges,
        c: &LayerActs,
        p_drop: f32,
    ) -> Result<()> {
        let (ctx, a, b, h) = (self.ctx, self.a, self.b, layer.n_out);
        let ((gm, be), _) = bn_ranges(layer)?;
        self.pipes.encode_relu_dropout_backward(
            ctx,
            enc,
            &c.out,
            &a.d_a,
            &DropoutParams::new((b * h) as u32, p_drop, 0, 0, 0),
        )?;
        let gamma = self.t(&gm);
        self.pipes.encode_batchnorm_backward(
            ctx,
            enc,
            &a.d_a,
            &c.xhat,
            &c.stats,
            &gamma.value,
            &a.d_b,
            &gamma.grad,
            &self.t(&be).grad,
            b,
            h,
        )
    }

    /// The encoder into `a.qm`, `a.qv`: training mode (dropout drawn with `(seed, step)`)
    /// or eval mode (`None`).
    fn encoder(&self, enc: &mut wgpu::CommandEncoder, train: Option<(u64, u32)>) -> Result<()> {
        let (a, cfg, lay) = (self.a, &self.m.config, &self.m.layout);
        let h = cfg.n_hidden;
        // The encoder reads log1p of the counts, computed here from the uploaded counts.
        self.pipes
            .encode_log1p(self.ctx, enc, &a.counts, &a.x, self.b * cfg.n_genes)?;
        for l in 0..cfg.n_layers {
            let layer = &lay.encoder[l];
            let c = &a.enc[l];
            let (x, base) = if l == 0 {
                (&a.x, cfg.n_genes)
            } else {
                (&a.enc[l - 1].out, h)
            };
            self.linear_in(enc, layer, x, &c.pre, base, l == 0 && cfg.encode_batch)?;
            let drop = train.map(|(seed, step)| {
                DropoutParams::new(
                    (self.b * h) as u32,
                    cfg.dropout_rate,
                    seed,
                    step,
                    rng::DROPOUT_ENCODER + 16 * l as u32,
                )
            });
            self.norm_act(enc, layer, c, drop)?;
        }
        let last = &a.enc[cfg.n_layers - 1].out;
        self.head(enc, &lay.z_mean, last, &a.qm)?;
        self.head(enc, &lay.z_var, last, &a.qv)
    }

    /// The decoder (training mode, no dropout) from `a.z`: logits, `rho` (softmax) and,
    /// for ZINB, the dropout logits `pi`.
    fn decoder(&self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let (a, cfg, lay) = (self.a, &self.m.config, &self.m.layout);
        let h = cfg.n_hidden;
        for l in 0..cfg.n_layers {
            let layer = &lay.decoder[l];
            let (x, base) = if l == 0 {
                (&a.z, cfg.n_latent)
            } else {
                (&a.dec[l - 1].out, h)
            };
            self.linear_in(enc, layer, x, &a.dec[l].pre, base, true)?;
            let drop = DropoutParams::new((self.b * h) as u32, 0.0, 0, 0, 0);
            self.norm_act(enc, layer, &a.dec[l], Some(drop))?;
        }
        let last = &a.dec[cfg.n_layers - 1].out;
        self.head(enc, &lay.scale, last, &a.logits)?;
        self.pipes
            .encode_softmax(self.ctx, enc, &a.logits, &a.rho, self.b, cfg.n_genes)?;
        if let Some(d) = &lay.dropout {
            self.head(enc, d, last, &a.pi)?;
        }
        Ok(())
    }

    /// The count log-likelihood per cell with its gradients (d_logits, d_log_theta and,
    /// for ZINB, d_pi in place of pi).
    fn likelihood(&self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let (ctx, a, cfg, b) = (self.ctx, self.a, &self.m.config, self.b);
        let g = cfg.n_genes;
        let lt = self.t(&self.m.layout.log_theta);
        let bufs = NbBuffers {
            x: &a.counts,
            rho: &a.rho,
            log_theta: &lt.value,
            cells: &a.cells,
            loglik: &a.loglik,
            d_logits: &a.d_logits,
            th_scratch: &a.th,
            d_log_theta: &lt.grad,
        };
        let k = cfg.theta_rows();
        match cfg.likelihood {
            Likelihood::Nb => self
                .pipes
                .encode_nb_forward_backward(ctx, enc, &bufs, b, g, k),
            Likelihood::Zinb => self
                .pipes
                .encode_zinb_forward_backward(ctx, enc, &bufs, &a.pi, b, g, k),
            Likelihood::Poisson => self.pipes.encode_poisson_forward_backward(
                ctx,
                enc,
                &a.counts,
                &a.rho,
                &a.cells,
                &a.loglik,
                &a.d_logits,
                b,
                g,
            ),
        }
    }

    /// `a.d_a += a.d_b` as one product: `[I; I]^T [d_a; d_b]` with the linear backward's
    /// dw kernel (two copies and one dispatch).
    fn add_d_b_into_d_a(&self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let (a, b, h) = (self.a, self.b, self.m.config.n_hidden);
        let bh = (b * h * 4) as u64;
        enc.copy_buffer_to_buffer(&a.d_a, 0, &a.stack, 0, bh);
        enc.copy_buffer_to_buffer(&a.d_b, 0, &a.stack, bh, bh);
        self.pipes.encode_linear_backward(
            self.ctx,
            enc,
            &a.stack_eye,
            &a.stack_eye,
            &a.stack,
            None,
            &a.d_a,
            &a.scratch_h,
            2 * b,
            b,
            h,
        )
    }

    /// Every gradient, from the likelihood's and KL's back to the first layer.
    fn backward(&self, enc: &mut wgpu::CommandEncoder) -> Result<()> {
        let (ctx, pipes, a, b) = (self.ctx, self.pipes, self.a, self.b);
        let (cfg, lay) = (&self.m.config, &self.m.layout);
        let (h, z) = (cfg.n_hidden, cfg.n_latent);
        // Decoder heads: d(last decoder output) into d_a.
        let dlast = &a.dec[cfg.n_layers - 1].out;
        self.head_backward(enc, &lay.scale, dlast, &a.d_logits, &a.d_a)?;
        if let Some(d) = &lay.dropout {
            self.head_backward(enc, d, dlast, &a.pi, &a.d_b)?;
            self.add_d_b_into_d_a(enc)?;
        }
        for l in (0..cfg.n_layers).rev() {
            let layer = &lay.decoder[l];
            self.norm_act_backward(enc, layer, &a.dec[l], 0.0)?;
            let (x, dx, base) = if l == 0 {
                (&a.z, &a.d_z, z)
            } else {
                (&a.dec[l - 1].out, &a.d_a, h)
            };
            self.linear_in_backward(enc, layer, x, Some(dx), base, true)?;
        }
        pipes.encode_reparam_backward(ctx, enc, &a.d_z, &a.eps, &a.qv, &a.d_qm, &a.d_qv, b * z)?;
        pipes.encode_kl_backward(
            ctx,
            enc,
            &a.qm,
            &a.qv,
            &a.weights_kl,
            &a.d_qm,
            &a.d_qv,
            b,
            z,
        )?;
        // Encoder heads: d(last) = d_qm W_m^T + d_qv W_v^T.
        let last = &a.enc[cfg.n_layers - 1].out;
        self.head_backward(enc, &lay.z_mean, last, &a.d_qm, &a.d_a)?;
        self.head_backward(enc, &lay.z_var, last, &a.d_qv, &a.d_b)?;
        self.add_d_b_into_d_a(enc)?;
        for l in (0..cfg.n_layers).rev() {
            let layer = &lay.encoder[l];
            self.norm_act_backward(enc, layer, &a.enc[l], cfg.dropout_rate)?;
            if l == 0 {
                // The counts need no gradient.
                self.linear_in_backward(enc, layer, &a.x, None, cfg.n_genes, cfg.encode_batch)?;
            } else {
                self.linear_in_backward(enc, layer, &a.enc[l - 1].out, Some(&a.d_a), h, false)?;
            }
        }
        Ok(())
    }
}

/// Makes sure the per-minibatch buffers hold `cap` cells and `slots` staging buffers
/// (reallocating, inside an out-of-memory scope, only when they grow). Only B x G
/// buffers grow with the data, so any number of cells trains within the binding limits.
async fn ensure_acts(ctx: &GpuContext, m: &mut Resident, cap: usize, slots: usize) -> Result<()> {
    let cfg = &m.config;
    let (g, h, z) = (cfg.n_genes, cfg.n_hidden, cfg.n_latent);
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let largest = (4 * cap * g.max(2 * h).max(2 * cap)) as u64;
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
        let oom = scope.pop().await;
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
/// computed from them on the GPU), batch codes for the one-hot layers, and the stacked
/// identity of `Rec::add_d_b_into_d_a` when B changed.
fn upload(ctx: &GpuContext, m: &mut Resident, batch: &Minibatch) -> Result<()> {
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
    if a.eye_b != b {
        let mut eye = vec![0.0f32; 2 * b * b];
        for r in 0..b {
            eye[r * b + r] = 1.0;
            eye[(b + r) * b + r] = 1.0;
        }
        ctx.queue
            .write_buffer(&a.stack_eye, 0, bytemuck::cast_slice(&eye));
        a.eye_b = b;
    }
    ctx.queue
        .write_buffer(&a.counts, 0, bytemuck::cast_slice(&batch.counts[..b * g]));
    ctx.queue
        .write_buffer(&a.codes, 0, bytemuck::cast_slice(&batch.batch[..b]));
    Ok(())
}

fn alloc_acts(
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
        eye_b: 0,
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
        stack: buf(ctx, "stack", 2 * b * h)?,
        stack_eye: buf(ctx, "stack_eye", 2 * b * b)?,
        scratch_h: buf(ctx, "scratch_h", h)?,
    })
}

#[cfg(not(target_arch = "wasm32"))]
impl crate::backend::Backend for GpuBackend {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn adapter(&self) -> String {
        self.ctx.adapter_summary().name
    }

    fn load(&mut self, state: &TrainState) -> Result<()> {
        super::block_on(self.load_async(state))
    }

    fn save(&mut self) -> Result<TrainState> {
        super::block_on(self.save_async())
    }

    fn train_step(&mut self, batch: &Minibatch, hyper: &StepHyper) -> Result<StepLosses> {
        super::block_on(self.train_step_async(batch, hyper))
    }

    fn train_steps(
        &mut self,
        batches: &[Minibatch],
        hypers: &[StepHyper],
    ) -> Result<Vec<StepLosses>> {
        super::block_on(self.train_steps_async(batches, hypers))
    }

    fn encode(&mut self, batch: &Minibatch) -> Result<Posterior> {
        super::block_on(self.encode_async(batch))
    }
}
