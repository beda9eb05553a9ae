//! The scVI-class VAE: configuration, parameter layout and initialisation, and the
//! backends that compose the kernels of [`crate::backend`] into its training step.
//!
//! - [`params`], [`batch`], [`io`]: the parameter layout, minibatches, model files.
//! - [`cpu_model`]: forward/backward of the whole VAE from the CPU kernel pairs.
//! - [`backend`]: the [`Backend`] trait in VAE terms and the types it speaks.
//! - [`cpu_backend`]: [`CpuBackend`], the reference ([`cpu_model`] + Adam).
//! - [`gpu`]: [`GpuBackend`], the same step recorded from the GPU kernels.
//!
//! Dimension legend (used in every shape comment of the model and the kernels):
//! N cells, B minibatch, G genes, H hidden, Z latent, K batches (samples), S Monte Carlo
//! samples.
//!
//! Architecture (scvi-tools' `SCVI` defaults unless configured):
//!
//! ```text
//! encoder: log1p(x) [+ one-hot batch] -> n_layers x (Linear H, BatchNorm, ReLU, Dropout 0.1)
//!          -> mean (Linear Z), var = exp(Linear Z) + 1e-4
//! z = mean + sqrt(var) * eps
//! decoder: [z, one-hot batch] -> n_layers x ([.., one-hot batch] Linear H, BatchNorm, ReLU)
//!          -> softmax(Linear G) = rho;  mu = library * rho
//!          (zinb: dropout logits = Linear G);  theta = exp(log_theta) per gene (or gene-batch)
//! loss = mean_B( -log p(x | mu, theta) + kl_weight * KL(q(z|x) || N(0, I)) )
//! ```
//!
//! All parameters live in one flat `Vec<f32>` described by a [`ParamLayout`]: named
//! tensors at offsets, the unit that safetensors export, the optimizer and the GPU share.

pub mod backend;
pub mod batch;
pub mod cpu_backend;
pub mod cpu_model;
mod first_layer;
pub mod gpu;
pub mod io;
pub mod params;
pub mod scvi;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The count likelihood p(x | z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Negative binomial (scvi-tools' default `nb`).
    #[default]
    Nb,
    /// Zero-inflated negative binomial (a dropout-logits head).
    Zinb,
    /// Poisson.
    Poisson,
}

/// How the NB dispersion theta is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Dispersion {
    /// One theta per gene.
    #[default]
    Gene,
    /// One theta per gene and batch.
    GeneBatch,
}

/// The model's architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// G: number of genes modelled.
    pub n_genes: usize,
    /// K: number of batches (1 when there is no batch covariate).
    pub n_batches: usize,
    /// H: hidden units per layer.
    pub n_hidden: usize,
    /// Z: latent dimensions.
    pub n_latent: usize,
    /// Hidden layers in the encoder and in the decoder.
    pub n_layers: usize,
    /// Dropout rate of the encoder's hidden layers.
    pub dropout_rate: f32,
    /// Count likelihood.
    pub likelihood: Likelihood,
    /// Dispersion sharing.
    pub dispersion: Dispersion,
    /// Whether the encoder also sees the one-hot batch (scvi-tools: `encode_covariates`).
    pub encode_batch: bool,
    /// Added to the encoder's variance (scvi-tools: `var_eps`).
    pub var_eps: f32,
    /// Batch norm epsilon.
    pub bn_eps: f32,
    /// Batch norm running-statistics momentum (PyTorch convention).
    pub bn_momentum: f32,
}

impl ModelConfig {
    /// scvi-tools' defaults for `n_genes` genes and `n_batches` batches.
    pub fn scvi_defaults(n_genes: usize, n_batches: usize) -> Self {
        ModelConfig {
            n_genes,
            n_batches: n_batches.max(1),
            n_hidden: 128,
            n_latent: 10,
            n_layers: 1,
            dropout_rate: 0.1,
            likelihood: Likelihood::Nb,
            dispersion: Dispersion::Gene,
            encode_batch: false,
            var_eps: 1e-4,
            bn_eps: 1e-3,
            bn_momentum: 0.01,
        }
    }

    /// Checks that the sizes make sense, with a message that says which option to change.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Config(what.to_string()));
        if self.n_genes == 0 {
            return bad("the model needs at least one gene");
        }
        if self.n_hidden == 0 || self.n_hidden > 8192 {
            return bad("--n-hidden must be between 1 and 8192");
        }
        if self.n_latent == 0 || self.n_latent > 256 {
            return bad("--n-latent must be between 1 and 256");
        }
        if self.n_layers == 0 || self.n_layers > 8 {
            return bad("--n-layers must be between 1 and 8");
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return bad("the dropout rate must be in [0, 1)");
        }
        Ok(())
    }

    /// K if the batch is one-hot encoded into a layer, else 0 (a single batch adds nothing).
    pub fn batch_inputs(&self) -> usize {
        if self.n_batches > 1 {
            self.n_batches
        } else {
            0
        }
    }

    /// Rows of the dispersion table (1 for gene-wise, K for gene-batch).
    pub fn theta_rows(&self) -> usize {
        match self.dispersion {
            Dispersion::Gene => 1,
            Dispersion::GeneBatch => self.n_batches,
        }
    }

    /// Input width of encoder layer `l`.
    pub fn encoder_in(&self, l: usize) -> usize {
        let base = if l == 0 { self.n_genes } else { self.n_hidden };
        // scvi-tools injects the covariate into the first encoder layer only
        // (deeply_inject_covariates = False).
        if l == 0 && self.encode_batch {
            base + self.batch_inputs()
        } else {
            base
        }
    }

    /// Input width of decoder layer `l` (the batch is injected into every decoder layer).
    pub fn decoder_in(&self, l: usize) -> usize {
        let base = if l == 0 { self.n_latent } else { self.n_hidden };
        base + self.batch_inputs()
    }
}

pub use backend::{Backend, Posterior, StepHyper, StepLosses, TrainState};
pub use batch::Minibatch;
pub use cpu_backend::CpuBackend;
pub use gpu::{GpuBackend, GpuFault};
pub use params::{ParamLayout, Params, TensorSpec};
