//! The [`Backend`] trait in VAE terms, which composes the kernels of
//! [`crate::backend`] into a training step, and the types it speaks: [`StepHyper`],
//! [`StepLosses`], [`Posterior`], [`TrainState`]. Training code
//! ([`crate::train::Trainer`]) is generic over it; [`CpuBackend`](super::CpuBackend)
//! is the reference, [`GpuBackend`](super::gpu::GpuBackend) must match it.
//!
//! The methods that may wait on a device are `async` (the browser cannot block on the
//! GPU); the CPU backend's futures are ready at once, so the synchronous callers (the
//! command line, the tests) run them through [`crate::block_on`].

use crate::error::Result;
use crate::model::{Minibatch, Params};

/// Adam's beta1 (PyTorch's and scvi-tools' default), for every backend.
pub const ADAM_BETA1: f64 = 0.9;
/// Adam's beta2 (PyTorch's and scvi-tools' default), for every backend.
pub const ADAM_BETA2: f64 = 0.999;

/// Hyper-parameters of one optimisation step (Adam's betas: [`ADAM_BETA1`],
/// [`ADAM_BETA2`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepHyper {
    /// Global step number, 0-based (keys the random draws; Adam's t is `step + 1`).
    pub step: u32,
    /// Seed of the run.
    pub seed: u64,
    /// Learning rate.
    pub lr: f32,
    /// Weight of the KL term (warm-up times beta).
    pub kl_weight: f32,
    /// Adam epsilon (scvi-tools: 0.01).
    pub adam_eps: f32,
    /// L2 weight decay added to the gradient (PyTorch Adam; scvi-tools: 1e-6).
    pub weight_decay: f32,
}

/// What one step reports (means over the minibatch's cells).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct StepLosses {
    /// The minimised objective: reconstruction + kl_weight * KL.
    pub loss: f32,
    /// -log p(x | z) per cell.
    pub reconstruction: f32,
    /// KL(q(z|x) || p(z)) per cell.
    pub kl: f32,
    /// Whether every gradient was finite (when false the step was not applied).
    pub finite: bool,
}

/// q(z|x) of some cells (eval mode: batch-norm running statistics, no dropout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Posterior {
    /// Means, B x Z.
    pub mean: Vec<f32>,
    /// Variances, B x Z.
    pub var: Vec<f32>,
}

/// A backend that trains and runs the VAE. The CPU backend is the reference; the GPU
/// backend must match it. Training code is generic over this trait.
///
/// The futures are not `Send` (wgpu's are not in the browser), hence the allowed lint.
#[allow(async_fn_in_trait)]
pub trait Backend {
    /// `cpu` or `gpu`.
    fn name(&self) -> &'static str;
    /// The adapter in use (GPU), or a description of the CPU path.
    fn adapter(&self) -> String;
    /// Replaces parameters, buffers and optimizer state (checkpoint restore).
    async fn load(&mut self, state: &TrainState) -> Result<()>;
    /// Reads parameters, buffers and optimizer state back.
    async fn save(&mut self) -> Result<TrainState>;
    /// [`Backend::save`] into `spare`, a state no longer needed, whose buffers a backend
    /// may reuse (the CPU's copy then allocates nothing); by default, `save`.
    async fn save_into(&mut self, spare: TrainState) -> Result<TrainState> {
        drop(spare);
        self.save().await
    }
    /// The parameters and batch-norm statistics only (backends that can read back less
    /// than [`Backend::save`] override this).
    async fn params(&mut self) -> Result<Params> {
        Ok(self.save().await?.params)
    }
    /// Several training steps (forward, backward, Adam) in order, stopping after the
    /// first non-finite one (its losses are the last returned; the caller then loads a
    /// saved state, as the [`crate::train::Trainer`] does). The GPU queues them without
    /// waiting for each one's losses.
    async fn train_steps(
        &mut self,
        batches: &[Minibatch],
        hypers: &[StepHyper],
    ) -> Result<Vec<StepLosses>>;
    /// One training step on a minibatch: forward, backward, Adam.
    async fn train_step(&mut self, batch: &Minibatch, hyper: &StepHyper) -> Result<StepLosses> {
        let out = self
            .train_steps(std::slice::from_ref(batch), std::slice::from_ref(hyper))
            .await?;
        out.into_iter().next().ok_or_else(|| {
            crate::Error::Config("internal: a training step returned no losses".into())
        })
    }
    /// q(z|x) in eval mode.
    async fn encode(&mut self, batch: &Minibatch) -> Result<Posterior>;
}

/// Everything a run needs to continue: parameters, buffers, Adam moments, step count.
/// `clone_from` reuses the target's buffers (a snapshot every epoch allocates nothing).
#[derive(Debug, PartialEq)]
pub struct TrainState {
    /// Parameters and buffers.
    pub params: Params,
    /// Adam first moments (same layout as the parameters).
    pub adam_m: Vec<f32>,
    /// Adam second moments.
    pub adam_v: Vec<f32>,
    /// Steps taken (Adam's t).
    pub steps: u32,
    /// Epochs finished (drives the KL warm-up when a run continues).
    pub epochs: u32,
}

impl Clone for TrainState {
    fn clone(&self) -> TrainState {
        TrainState {
            params: self.params.clone(),
            adam_m: self.adam_m.clone(),
            adam_v: self.adam_v.clone(),
            steps: self.steps,
            epochs: self.epochs,
        }
    }

    fn clone_from(&mut self, src: &TrainState) {
        // Destructured, so that a field added later cannot be left out.
        let TrainState {
            params:
                Params {
                    config,
                    layout,
                    values,
                    buffers,
                },
            adam_m,
            adam_v,
            steps,
            epochs,
        } = self;
        config.clone_from(&src.params.config);
        layout.clone_from(&src.params.layout);
        values.clone_from(&src.params.values);
        buffers.clone_from(&src.params.buffers);
        adam_m.clone_from(&src.adam_m);
        adam_v.clone_from(&src.adam_v);
        (*steps, *epochs) = (src.steps, src.epochs);
    }
}

impl TrainState {
    /// A fresh state (zero moments) for parameters.
    pub fn new(params: Params) -> TrainState {
        let n = params.values.len();
        TrainState {
            params,
            adam_m: vec![0.0; n],
            adam_v: vec![0.0; n],
            steps: 0,
            epochs: 0,
        }
    }
}
