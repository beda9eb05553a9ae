//! Compute kernels. Each kernel is a triple with one name (the vello habit):
//! `shaders/<k>.wgsl`, its CPU twin `src/backend/cpu/<k>.rs` written as plain loops in
//! binding order, and a row in the GPU-vs-CPU test (`tests/gpu_kernels.rs`).
//!
//! - [`cpu`]: the reference implementations (and the fallback where WebGPU is missing).
//! - [`gpu`]: the wgpu device, shader compilation with error scopes, dispatch, readback.

pub mod cpu;
pub mod gpu;

use crate::error::Result;
use crate::model::{Minibatch, Params};

/// Hyper-parameters of one optimisation step.
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
/// backend must match it. Model and training code are generic over this trait.
pub trait Backend {
    /// `cpu` or `gpu`.
    fn name(&self) -> &'static str;
    /// The adapter in use (GPU), or a description of the CPU path.
    fn adapter(&self) -> String;
    /// Replaces parameters, buffers and optimizer state (checkpoint restore).
    fn load(&mut self, state: &TrainState) -> Result<()>;
    /// Reads parameters, buffers and optimizer state back.
    fn save(&mut self) -> Result<TrainState>;
    /// One training step on a minibatch: forward, backward, Adam.
    fn train_step(&mut self, batch: &Minibatch, hyper: &StepHyper) -> Result<StepLosses>;
    /// q(z|x) in eval mode.
    fn encode(&mut self, batch: &Minibatch) -> Result<Posterior>;
    /// Several steps in order, stopping after the first non-finite one (its losses are
    /// the last returned). Backends that can queue the steps without waiting for each
    /// one's losses (the GPU) override this.
    fn train_steps(
        &mut self,
        batches: &[Minibatch],
        hypers: &[StepHyper],
    ) -> Result<Vec<StepLosses>> {
        let mut out = Vec::with_capacity(hypers.len());
        for (batch, hyper) in batches.iter().zip(hypers) {
            let l = self.train_step(batch, hyper)?;
            out.push(l);
            if !l.finite {
                break;
            }
        }
        Ok(out)
    }
}

/// Everything a run needs to continue: parameters, buffers, Adam moments, step count.
#[derive(Debug, Clone, PartialEq)]
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
