//! The GPU [`Backend`]: the whole VAE step on resident wgpu buffers, composed from the
//! `encode_<k>` kernels of [`crate::backend::gpu`] in the same order as
//! [`CpuModel::forward_backward`](crate::model::cpu_model::CpuModel::forward_backward).
//!
//! Supported: NB, ZINB and Poisson likelihoods, gene and gene-batch dispersion, batch
//! one-hot covariates (decoder layers, and the encoder's first when `encode_batch`),
//! any number of layers, hidden and latent sizes. Only `var_eps` = 1e-4 (the kernels
//! hard-code it) is required; other values are refused by [`Backend::load`] with
//! [`Error::Config`].
//!
//! - [`resident`]: every tensor (value, gradient, Adam moments) and batch-norm
//!   statistic in its own buffer, and the per-minibatch activations.
//! - [`record`]: one step recorded into one command encoder: forward, backward, the
//!   step guard (are the losses finite?) and Adam on every tensor, which reads the
//!   guard's flag, so a non-finite step changes no parameter without a CPU round trip
//!   (the batch-norm running statistics are put back from a copy taken at its start).
//!
//! [`Backend::train_steps`] queues up to a group of such steps back to back and reads
//! their losses after the last one: one wait per group. Every method is async (the
//! browser cannot block); natively the synchronous callers block on them with
//! [`crate::block_on`].

mod record;
mod resident;

use crate::backend::gpu::dispatch::{read_f32, read_f32_concat, submit};
use crate::backend::gpu::kernels::{NbCell, Pipelines};
use crate::backend::gpu::GpuContext;
use crate::error::{Error, Result};
use crate::model::backend::{Backend, Posterior, StepHyper, StepLosses, TrainState};
use crate::model::{Dispersion, Minibatch, Params};
use record::Rec;
use resident::{check_supported, ensure_acts, upload, upload_state, Resident};

/// The VAE on a wgpu device (see the module documentation for what is supported).
pub struct GpuBackend {
    ctx: GpuContext,
    pipes: Pipelines,
    model: Option<Resident>,
    /// Compute dispatches recorded by the last training step (forward, backward, Adam).
    pub last_dispatches: usize,
    /// Compute passes they were recorded in (one per step).
    pub last_passes: usize,
    /// The kernels of one training step in recording order (logged on the first step:
    /// the page's shader viewer).
    pub step_kernels: Vec<crate::backend::gpu::kernels::KernelRun>,
    /// Fault injection for tests of the CPU fallback: a fault at a step (see
    /// [`GpuBackend::fault_at_step`]).
    fault_at: Option<(u32, GpuFault)>,
    /// Fault injection for tests of recovery (see [`GpuBackend::poison_at_step`]).
    poison_at: Option<u32>,
}

/// A GPU failure injected by a test (see [`GpuBackend::fault_at_step`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuFault {
    /// The device is destroyed, as after a driver reset.
    DeviceLost,
    /// A buffer allocation fails as on a device out of memory.
    OutOfMemory,
    /// A shader fails validation.
    InvalidShader,
}

impl GpuFault {
    /// `"lost"`, `"oom"` or `"shader"` (the names tests use), or `None`.
    pub fn parse(name: &str) -> Option<GpuFault> {
        match name {
            "lost" => Some(GpuFault::DeviceLost),
            "oom" => Some(GpuFault::OutOfMemory),
            "shader" => Some(GpuFault::InvalidShader),
            _ => None,
        }
    }
}

fn not_loaded() -> Error {
    Error::Config("no model loaded into the GPU backend".into())
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
            last_passes: 0,
            step_kernels: Vec::new(),
            fault_at: None,
            poison_at: None,
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
        self.fault_at_step(step, GpuFault::DeviceLost);
    }

    /// Fault injection, for testing what callers do when the GPU fails (one fault at a
    /// time; a later call replaces an earlier one):
    /// - [`GpuFault::DeviceLost`]: the device is destroyed (`device.destroy()`, in the
    ///   browser WebGPU's own) as step `step` begins, as after a driver reset;
    /// - [`GpuFault::OutOfMemory`]: the group of steps holding `step` makes its
    ///   minibatch buffers again and their allocation fails as a device out of memory
    ///   fails it (see [`GpuContext::fail_next_allocation`]);
    /// - [`GpuFault::InvalidShader`]: as step `step` begins, a kernel that fails
    ///   validation is compiled (see [`GpuContext::compile_invalid_shader`]).
    ///
    /// Each makes `train_steps` return [`Error::Gpu`] saying what happened.
    pub fn fault_at_step(&mut self, step: u32, fault: GpuFault) {
        self.fault_at = Some((step, fault));
    }

    /// Fault injection, for testing recovery (as [`CpuBackend::poison_at_step`](
    /// crate::model::CpuBackend::poison_at_step)): as training step `step` begins, the
    /// decoder's scale-head bias is overwritten with NaN on the GPU, once. The step guard
    /// then finds the step non-finite and Adam skips it.
    pub fn poison_at_step(&mut self, step: u32) {
        self.poison_at = Some(step);
    }

    /// The parameters and batch-norm statistics only (no Adam moments): what the page
    /// reads back to draw the map and decode. One copy and one wait.
    async fn read_params(&self) -> Result<Params> {
        let m = self.resident()?;
        let parts: Vec<(&wgpu::Buffer, u64, usize)> = m
            .tensors
            .iter()
            .map(|t| (&t.value.buffer, t.value.offset_bytes, t.len))
            .chain(
                m.layout
                    .buffers
                    .iter()
                    .zip(&m.buffers)
                    .map(|(s, b)| (b, 0, s.len())),
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
        self.model.as_ref().ok_or_else(not_loaded)
    }

    /// Uploads one minibatch and submits its whole step (one command encoder, see
    /// [`Rec::train_step`]), the losses and the guard's verdict copied to staging
    /// buffer `slot`.
    async fn queue_step(
        &mut self,
        batch: &Minibatch,
        hyper: &StepHyper,
        slot: usize,
    ) -> Result<()> {
        let ctx = &self.ctx;
        let pipes = &self.pipes;
        let m = self.model.as_mut().ok_or_else(not_loaded)?;
        let b = batch.n_rows;
        upload(ctx, m, batch)?;
        let m = &*m;
        let a = m.acts()?;
        let inv_b = 1.0 / b as f32;
        let gene_batch = m.config.dispersion == Dispersion::GeneBatch;
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
            Rec {
                ctx,
                pipes,
                m,
                a,
                b,
            }
            .train_step(enc, hyper, slot)
        })
        .await;
        ctx.end_tape();
        recorded
    }

    /// Latent means of `cells` of `m` (eval mode), encoded on the GPU in chunks of 1,024
    /// cells, row-major N x Z.
    pub async fn latent(
        &mut self,
        m: &crate::data::CountMatrix,
        batch_codes: &[u32],
        cells: &[usize],
    ) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(cells.len());
        let mut mb = Minibatch::default();
        for chunk in cells.chunks(1024) {
            mb.gather_into(m, batch_codes, chunk);
            out.extend(self.encode(&mb).await?.mean);
        }
        Ok(out)
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn adapter(&self) -> String {
        self.ctx.adapter_summary().name
    }

    async fn load(&mut self, state: &TrainState) -> Result<()> {
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
        let oom = ctx.out_of_memory(scope.pop().await);
        let (flat, tensors, buffers, buffers_saved) = built?;
        if let Some(e) = oom {
            return Err(Error::Gpu(format!(
                "out of GPU memory uploading the model: {e}"
            )));
        }
        self.model = Some(Resident {
            config: p.config.clone(),
            layout: layout.clone(),
            flat,
            tensors,
            buffers,
            buffers_saved,
            steps: state.steps,
            epochs: state.epochs,
            acts: None,
        });
        Ok(())
    }

    async fn save(&mut self) -> Result<TrainState> {
        let m = self.resident()?;
        let n = m.layout.n_params;
        let parts: Vec<(&wgpu::Buffer, u64, usize)> = [&m.flat.m, &m.flat.v]
            .into_iter()
            .flat_map(|flat| {
                m.tensors
                    .iter()
                    .map(move |t| (flat, t.value.offset_bytes, t.len))
            })
            .collect();
        let moments = read_f32_concat(&self.ctx, &parts).await?;
        let (adam_m, adam_v) = moments.split_at(n);
        Ok(TrainState {
            params: self.read_params().await?,
            adam_m: adam_m.to_vec(),
            adam_v: adam_v.to_vec(),
            steps: m.steps,
            epochs: m.epochs,
        })
    }

    async fn params(&mut self) -> Result<Params> {
        self.read_params().await
    }

    /// Several training steps queued back to back, each one command encoder (forward,
    /// backward, step guard, Adam, losses copied to its own staging buffer), then the
    /// losses of all of them read back: the GPU never waits for the CPU between the
    /// steps of a group. Returns the losses in order, stopping after the first
    /// non-finite step; the steps queued after it have run too, so the caller restores
    /// a saved state then (the [`crate::train::Trainer`] does).
    async fn train_steps(
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
        let (before, passes_before) = (self.ctx.dispatches(), self.ctx.compute_passes());
        let in_group = |step: u32| hypers[..n].iter().any(|h| h.step == step);
        {
            let ctx = &self.ctx;
            let m = self.model.as_mut().ok_or_else(not_loaded)?;
            if let Some((step, GpuFault::OutOfMemory)) = self.fault_at {
                if in_group(step) {
                    self.fault_at = None;
                    m.acts = None;
                    ctx.fail_next_allocation();
                }
            }
            ensure_acts(ctx, m, cap, n).await?;
        }
        for (slot, (batch, hyper)) in batches[..n].iter().zip(hypers).enumerate() {
            match self.fault_at {
                Some((step, GpuFault::DeviceLost)) if step == hyper.step => {
                    self.ctx.device.destroy();
                    #[cfg(not(target_arch = "wasm32"))]
                    let _ = self.ctx.device.poll(wgpu::PollType::wait_indefinitely());
                }
                Some((step, GpuFault::InvalidShader)) if step == hyper.step => {
                    self.fault_at = None;
                    self.ctx.compile_invalid_shader().await?;
                }
                _ => {}
            }
            if self.poison_at == Some(hyper.step) {
                self.poison_at = None;
                let m = self.resident()?;
                let t = m.tensor(&m.layout.scale.bias);
                let nan = vec![f32::NAN; t.len];
                self.ctx.queue.write_buffer(
                    &t.value.buffer,
                    t.value.offset_bytes,
                    bytemuck::cast_slice(&nan),
                );
            }
            let log = self.step_kernels.is_empty() && slot == 0;
            if log {
                self.ctx.start_kernel_log();
            }
            self.queue_step(batch, hyper, slot).await?;
            if log {
                self.step_kernels =
                    crate::backend::gpu::kernels::kernel_runs(&self.ctx.take_kernel_log());
            }
        }
        let ctx = &self.ctx;
        let m = self.model.as_mut().ok_or_else(not_loaded)?;
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
        self.last_passes = (self.ctx.compute_passes() - passes_before) / n;
        Ok(out)
    }

    async fn encode(&mut self, batch: &Minibatch) -> Result<Posterior> {
        let ctx = &self.ctx;
        let pipes = &self.pipes;
        let m = self.model.as_mut().ok_or_else(not_loaded)?;
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
