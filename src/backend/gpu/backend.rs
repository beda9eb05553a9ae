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

use super::dispatch::{read_f32, submit};
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

/// Per-minibatch buffers, sized for B cells.
struct Acts {
    b: usize,
    x: wgpu::Buffer,
    counts: wgpu::Buffer,
    cells: wgpu::Buffer,
    enc: Vec<LayerActs>,
    dec: Vec<LayerActs>,
    qm: wgpu::Buffer,
    qv: wgpu::Buffer,
    eps: wgpu::Buffer,
    z: wgpu::Buffer,
    logits: wgpu::Buffer,
    rho: wgpu::Buffer,
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
}

fn buf(ctx: &GpuContext, label: &str, n: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: ((n.max(1) * 4) as u64).div_ceil(4) * 4,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

fn buf_with(ctx: &GpuContext, label: &str, data: &[f32]) -> wgpu::Buffer {
    let b = buf(ctx, label, data.len());
    if !data.is_empty() {
        ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    }
    b
}

fn check_supported(cfg: &ModelConfig) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::Config(format!(
            "the GPU backend does not support {what} yet; use --backend cpu"
        )))
    };
    if cfg.likelihood != Likelihood::Nb {
        return refuse(&format!("the {:?} likelihood (only nb)", cfg.likelihood));
    }
    if cfg.batch_inputs() != 0 {
        return refuse("more than one batch (batch covariates)");
    }
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
        })
    }

    /// The context in use.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
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
        let tensors = layout
            .tensors
            .iter()
            .map(|t| {
                let r = t.range();
                Tensor {
                    value: buf_with(ctx, &t.name, &p.values[r.clone()]),
                    grad: buf(ctx, &t.name, t.len()),
                    m: buf_with(ctx, &t.name, &state.adam_m[r.clone()]),
                    v: buf_with(ctx, &t.name, &state.adam_v[r]),
                    len: t.len(),
                }
            })
            .collect();
        let buffers = layout
            .buffers
            .iter()
            .map(|t| buf_with(ctx, &t.name, &p.buffers[t.range()]))
            .collect();
        let buffers_saved = layout
            .buffers
            .iter()
            .map(|t| buf(ctx, &t.name, t.len()))
            .collect();
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
        let ctx = &self.ctx;
        let m = self
            .model
            .as_ref()
            .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))?;
        let mut values = Vec::with_capacity(m.layout.n_params);
        let mut adam_m = Vec::with_capacity(m.layout.n_params);
        let mut adam_v = Vec::with_capacity(m.layout.n_params);
        for t in &m.tensors {
            values.extend(read_f32(ctx, &t.value, t.len).await?);
            adam_m.extend(read_f32(ctx, &t.m, t.len).await?);
            adam_v.extend(read_f32(ctx, &t.v, t.len).await?);
        }
        let mut buffers = Vec::with_capacity(m.layout.n_buffers);
        for (spec, b) in m.layout.buffers.iter().zip(&m.buffers) {
            buffers.extend(read_f32(ctx, b, spec.len()).await?);
        }
        Ok(TrainState {
            params: Params {
                config: m.config.clone(),
                layout: m.layout.clone(),
                values,
                buffers,
            },
            adam_m,
            adam_v,
            steps: m.steps,
            epochs: m.epochs,
        })
    }

    /// One training step (see [`crate::backend::Backend::train_step`]).
    pub async fn train_step_async(
        &mut self,
        batch: &Minibatch,
        hyper: &StepHyper,
    ) -> Result<StepLosses> {
        let ctx = &self.ctx;
        let pipes = &self.pipes;
        let m = self
            .model
            .as_mut()
            .ok_or_else(|| Error::Config("no model loaded into the GPU backend".into()))?;
        let b = batch.n_rows;
        if b == 0 {
            return Err(Error::Config(
                "an empty minibatch cannot be trained on".into(),
            ));
        }
        prepare(ctx, m, batch)?;
        let (cfg, lay) = (&m.config, &m.layout);
        let a = m.acts.as_ref().expect("prepared");
        let (h, z, g) = (cfg.n_hidden, cfg.n_latent, cfg.n_genes);
        let inv_b = 1.0 / b as f32;
        let cells: Vec<NbCell> = (0..b)
            .map(|r| NbCell {
                library: batch.library[r],
                weight: -inv_b,
                theta_row: 0,
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
        let t = |r: &Range<usize>| m.tensor(r);
        let bufi = |r: &Range<usize>| m.buffer(r);
        let mut n_disp = 0usize;
        submit(ctx, "train_step", |enc| {
            // Keep the running statistics in case the step turns out non-finite.
            for (src, dst) in m.buffers.iter().zip(&m.buffers_saved) {
                enc.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
            }
            // Encoder.
            for l in 0..cfg.n_layers {
                let layer = &lay.encoder[l];
                let c = &a.enc[l];
                let x = if l == 0 { &a.x } else { &a.enc[l - 1].out };
                pipes.encode_linear_forward(
                    ctx,
                    enc,
                    x,
                    &t(&layer.weight).value,
                    &t(&layer.bias).value,
                    &c.pre,
                    b,
                    layer.n_in,
                    h,
                )?;
                n_disp += 1 + bn_relu_train(
                    ctx,
                    pipes,
                    enc,
                    cfg,
                    layer,
                    c,
                    &t,
                    &bufi,
                    b,
                    DropoutParams::new(
                        (b * h) as u32,
                        cfg.dropout_rate,
                        hyper.seed,
                        hyper.step,
                        rng::DROPOUT_ENCODER + 16 * l as u32,
                    ),
                )?;
            }
            let last = &a.enc[cfg.n_layers - 1].out;
            for (head, out) in [(&lay.z_mean, &a.qm), (&lay.z_var, &a.qv)] {
                pipes.encode_linear_forward(
                    ctx,
                    enc,
                    last,
                    &t(&head.weight).value,
                    &t(&head.bias).value,
                    out,
                    b,
                    h,
                    z,
                )?;
                n_disp += 1;
            }
            pipes.encode_reparam(
                ctx,
                enc,
                &a.qm,
                &a.qv,
                &a.eps,
                &a.z,
                b * z,
                hyper.seed,
                hyper.step,
                rng::REPARAM,
            )?;
            n_disp += 1;
            // Decoder (batch norm + ReLU, no dropout).
            for l in 0..cfg.n_layers {
                let layer = &lay.decoder[l];
                let c = &a.dec[l];
                let x = if l == 0 { &a.z } else { &a.dec[l - 1].out };
                pipes.encode_linear_forward(
                    ctx,
                    enc,
                    x,
                    &t(&layer.weight).value,
                    &t(&layer.bias).value,
                    &c.pre,
                    b,
                    layer.n_in,
                    h,
                )?;
                n_disp += 1 + bn_relu_train(
                    ctx,
                    pipes,
                    enc,
                    cfg,
                    layer,
                    c,
                    &t,
                    &bufi,
                    b,
                    DropoutParams::new((b * h) as u32, 0.0, 0, 0, 0),
                )?;
            }
            let dlast = &a.dec[cfg.n_layers - 1].out;
            let s = &lay.scale;
            pipes.encode_linear_forward(
                ctx,
                enc,
                dlast,
                &t(&s.weight).value,
                &t(&s.bias).value,
                &a.logits,
                b,
                h,
                g,
            )?;
            pipes.encode_softmax(ctx, enc, &a.logits, &a.rho, b, g)?;
            pipes.encode_kl(ctx, enc, &a.qm, &a.qv, &a.kl, b, z)?;
            let lt = t(&lay.log_theta);
            pipes.encode_nb_forward_backward(
                ctx,
                enc,
                &NbBuffers {
                    x: &a.counts,
                    rho: &a.rho,
                    log_theta: &lt.value,
                    cells: &a.cells,
                    loglik: &a.loglik,
                    d_logits: &a.d_logits,
                    th_scratch: &a.th,
                    d_log_theta: &lt.grad,
                },
                b,
                g,
                1,
            )?;
            n_disp += 5;
            // Backward: decoder head, then decoder layers last to first.
            pipes.encode_linear_backward(
                ctx,
                enc,
                dlast,
                &t(&s.weight).value,
                &a.d_logits,
                Some(&a.d_a),
                &t(&s.weight).grad,
                &t(&s.bias).grad,
                b,
                h,
                g,
            )?;
            n_disp += 3;
            for l in (0..cfg.n_layers).rev() {
                let layer = &lay.decoder[l];
                n_disp += act_bn_backward(ctx, pipes, enc, layer, &a.dec[l], &t, a, b, 0.0)?;
                let (x, dx) = if l == 0 {
                    (&a.z, &a.d_z)
                } else {
                    (&a.dec[l - 1].out, &a.d_a)
                };
                pipes.encode_linear_backward(
                    ctx,
                    enc,
                    x,
                    &t(&layer.weight).value,
                    &a.d_b,
                    Some(dx),
                    &t(&layer.weight).grad,
                    &t(&layer.bias).grad,
                    b,
                    layer.n_in,
                    h,
                )?;
                n_disp += 3;
            }
            pipes.encode_reparam_backward(
                ctx,
                enc,
                &a.d_z,
                &a.eps,
                &a.qv,
                &a.d_qm,
                &a.d_qv,
                b * z,
            )?;
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
            n_disp += 2;
            // Encoder heads: d(last) = d_qm W_m^T + d_qv W_v^T.
            for (head, dy, dx) in [
                (&lay.z_mean, &a.d_qm, &a.d_a),
                (&lay.z_var, &a.d_qv, &a.d_b),
            ] {
                pipes.encode_linear_backward(
                    ctx,
                    enc,
                    last,
                    &t(&head.weight).value,
                    dy,
                    Some(dx),
                    &t(&head.weight).grad,
                    &t(&head.bias).grad,
                    b,
                    h,
                    z,
                )?;
                n_disp += 3;
            }
            let bh = (b * h * 4) as u64;
            enc.copy_buffer_to_buffer(&a.d_a, 0, &a.stack, 0, bh);
            enc.copy_buffer_to_buffer(&a.d_b, 0, &a.stack, bh, bh);
            pipes.encode_linear_backward(
                ctx,
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
            )?;
            n_disp += 2;
            for l in (0..cfg.n_layers).rev() {
                let layer = &lay.encoder[l];
                n_disp += act_bn_backward(
                    ctx,
                    pipes,
                    enc,
                    layer,
                    &a.enc[l],
                    &t,
                    a,
                    b,
                    cfg.dropout_rate,
                )?;
                let (x, dx) = if l == 0 {
                    (&a.x, None)
                } else {
                    (&a.enc[l - 1].out, Some(&a.d_a))
                };
                pipes.encode_linear_backward(
                    ctx,
                    enc,
                    x,
                    &t(&layer.weight).value,
                    &a.d_b,
                    dx,
                    &t(&layer.weight).grad,
                    &t(&layer.bias).grad,
                    b,
                    layer.n_in,
                    h,
                )?;
                n_disp += if l == 0 { 2 } else { 3 };
            }
            Ok(())
        })
        .await?;
        let loglik = read_f32(ctx, &a.loglik, b).await?;
        let kl = read_f32(ctx, &a.kl, b).await?;
        let recon = (-loglik.iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64) as f32;
        let klm = (kl.iter().map(|&v| f64::from(v)).sum::<f64>() / b as f64) as f32;
        let finite = recon.is_finite() && klm.is_finite();
        if finite {
            submit(ctx, "adam", |enc| {
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
                    pipes.encode_adam_step(ctx, enc, &tn.value, &tn.grad, &tn.m, &tn.v, &hp)?;
                }
                Ok(())
            })
            .await?;
            n_disp += m.tensors.len();
            m.steps = hyper.step + 1;
        } else {
            submit(ctx, "restore running statistics", |enc| {
                for (dst, src) in m.buffers.iter().zip(&m.buffers_saved) {
                    enc.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
                }
                Ok(())
            })
            .await?;
        }
        self.last_dispatches = n_disp;
        Ok(StepLosses {
            loss: recon + hyper.kl_weight * klm,
            reconstruction: recon,
            kl: klm,
            finite,
        })
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
        prepare(ctx, m, batch)?;
        let (cfg, lay) = (&m.config, &m.layout);
        let a = m.acts.as_ref().expect("prepared");
        let (h, z) = (cfg.n_hidden, cfg.n_latent);
        let t = |r: &Range<usize>| m.tensor(r);
        let bufi = |r: &Range<usize>| m.buffer(r);
        submit(ctx, "encode", |enc| {
            for l in 0..cfg.n_layers {
                let layer = &lay.encoder[l];
                let c = &a.enc[l];
                let x = if l == 0 { &a.x } else { &a.enc[l - 1].out };
                pipes.encode_linear_forward(
                    ctx,
                    enc,
                    x,
                    &t(&layer.weight).value,
                    &t(&layer.bias).value,
                    &c.pre,
                    b,
                    layer.n_in,
                    h,
                )?;
                let ((gm, be), (rm, rv)) = bn_ranges(layer)?;
                pipes.encode_batchnorm_eval(
                    ctx,
                    enc,
                    &c.pre,
                    &t(&gm).value,
                    &t(&be).value,
                    bufi(&rm),
                    bufi(&rv),
                    &c.out,
                    b,
                    h,
                    cfg.bn_eps,
                )?;
                pipes.encode_relu_dropout(
                    ctx,
                    enc,
                    &c.out,
                    &DropoutParams::new((b * h) as u32, 0.0, 0, 0, 0),
                )?;
            }
            let last = &a.enc[cfg.n_layers - 1].out;
            for (head, out) in [(&lay.z_mean, &a.qm), (&lay.z_var, &a.qv)] {
                pipes.encode_linear_forward(
                    ctx,
                    enc,
                    last,
                    &t(&head.weight).value,
                    &t(&head.bias).value,
                    out,
                    b,
                    h,
                    z,
                )?;
            }
            Ok(())
        })
        .await?;
        let mean = read_f32(ctx, &a.qm, b * z).await?;
        let v = read_f32(ctx, &a.qv, b * z).await?;
        let var = v.iter().map(|&v| v.exp() + cfg.var_eps).collect();
        Ok(Posterior { mean, var })
    }
}

type BnRanges = ((Range<usize>, Range<usize>), (Range<usize>, Range<usize>));

fn bn_ranges(layer: &LayerRanges) -> Result<BnRanges> {
    match (&layer.bn, &layer.bn_running) {
        (Some(p), Some(r)) => Ok((p.clone(), r.clone())),
        _ => Err(Error::Gpu("a hidden layer without batch norm".into())),
    }
}

/// Batch norm (training) then ReLU (+ dropout) in place on `c.out`. Returns dispatches.
fn bn_relu_train<'a>(
    ctx: &GpuContext,
    pipes: &Pipelines,
    enc: &mut wgpu::CommandEncoder,
    cfg: &ModelConfig,
    layer: &LayerRanges,
    c: &LayerActs,
    t: &dyn Fn(&Range<usize>) -> &'a Tensor,
    bufi: &dyn Fn(&Range<usize>) -> &'a wgpu::Buffer,
    b: usize,
    drop: DropoutParams,
) -> Result<usize> {
    let h = layer.n_out;
    let ((gm, be), (rm, rv)) = bn_ranges(layer)?;
    pipes.encode_batchnorm_train(
        ctx,
        enc,
        &c.pre,
        &t(&gm).value,
        &t(&be).value,
        bufi(&rm),
        bufi(&rv),
        &c.out,
        &c.xhat,
        &c.stats,
        b,
        h,
        cfg.bn_eps,
        cfg.bn_momentum,
    )?;
    pipes.encode_relu_dropout(ctx, enc, &c.out, &drop)?;
    Ok(2)
}

/// ReLU (+ dropout) backward in place on `a.d_a`, then batch-norm backward into `a.d_b`
/// and the layer's gamma/beta gradients. Returns dispatches.
fn act_bn_backward<'a>(
    ctx: &GpuContext,
    pipes: &Pipelines,
    enc: &mut wgpu::CommandEncoder,
    layer: &LayerRanges,
    c: &LayerActs,
    t: &dyn Fn(&Range<usize>) -> &'a Tensor,
    a: &Acts,
    b: usize,
    p_drop: f32,
) -> Result<usize> {
    let h = layer.n_out;
    let ((gm, be), _) = bn_ranges(layer)?;
    pipes.encode_relu_dropout_backward(
        ctx,
        enc,
        &c.out,
        &a.d_a,
        &DropoutParams::new((b * h) as u32, p_drop, 0, 0, 0),
    )?;
    pipes.encode_batchnorm_backward(
        ctx,
        enc,
        &a.d_a,
        &c.xhat,
        &c.stats,
        &t(&gm).value,
        &a.d_b,
        &t(&gm).grad,
        &t(&be).grad,
        b,
        h,
    )?;
    Ok(2)
}

/// (Re)allocates the per-minibatch buffers for B cells and uploads the counts: log1p on
/// the CPU for the encoder input, raw for the likelihood.
fn prepare(ctx: &GpuContext, m: &mut Resident, batch: &Minibatch) -> Result<()> {
    let cfg = &m.config;
    let (b, g, h, z) = (batch.n_rows, cfg.n_genes, cfg.n_hidden, cfg.n_latent);
    if batch.n_genes != g || batch.counts.len() < b * g || batch.library.len() < b {
        return Err(Error::Config(format!(
            "the minibatch has {} genes, the model {g}",
            batch.n_genes
        )));
    }
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let largest = (4 * b * g.max(2 * h).max(2 * b)) as u64;
    if largest > limit {
        return Err(Error::Gpu(format!(
            "a minibatch of {b} cells needs {largest}-byte buffers, over this adapter's \
             limit of {limit} bytes per storage binding"
        )));
    }
    if m.acts.as_ref().map(|a| a.b) != Some(b) {
        let layer = |name: &str| LayerActs {
            pre: buf(ctx, name, b * h),
            out: buf(ctx, name, b * h),
            xhat: buf(ctx, name, b * h),
            stats: buf(ctx, name, 2 * h),
        };
        let mut eye = vec![0.0f32; 2 * b * b];
        for r in 0..b {
            eye[r * b + r] = 1.0;
            eye[(b + r) * b + r] = 1.0;
        }
        m.acts = Some(Acts {
            b,
            x: buf(ctx, "x_log1p", b * g),
            counts: buf(ctx, "counts", b * g),
            cells: buf(ctx, "cells", 4 * b),
            enc: (0..cfg.n_layers).map(|_| layer("enc")).collect(),
            dec: (0..cfg.n_layers).map(|_| layer("dec")).collect(),
            qm: buf(ctx, "qm", b * z),
            qv: buf(ctx, "qv", b * z),
            eps: buf(ctx, "eps", b * z),
            z: buf(ctx, "z", b * z),
            logits: buf(ctx, "logits", b * g),
            rho: buf(ctx, "rho", b * g),
            loglik: buf(ctx, "loglik", b),
            kl: buf(ctx, "kl", b),
            weights_kl: buf(ctx, "weights_kl", b),
            d_logits: buf(ctx, "d_logits", b * g),
            th: buf(ctx, "th", b * g),
            d_a: buf(ctx, "d_a", b * h),
            d_b: buf(ctx, "d_b", b * h),
            d_z: buf(ctx, "d_z", b * z),
            d_qm: buf(ctx, "d_qm", b * z),
            d_qv: buf(ctx, "d_qv", b * z),
            stack: buf(ctx, "stack", 2 * b * h),
            stack_eye: buf_with(ctx, "stack_eye", &eye),
            scratch_h: buf(ctx, "scratch_h", h),
        });
    }
    let a = m.acts.as_ref().expect("allocated");
    let counts = &batch.counts[..b * g];
    let x: Vec<f32> = counts.iter().map(|&c| c.ln_1p()).collect();
    ctx.queue.write_buffer(&a.x, 0, bytemuck::cast_slice(&x));
    ctx.queue
        .write_buffer(&a.counts, 0, bytemuck::cast_slice(counts));
    Ok(())
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

    fn encode(&mut self, batch: &Minibatch) -> Result<Posterior> {
        super::block_on(self.encode_async(batch))
    }
}
