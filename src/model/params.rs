//! The parameter layout: every tensor of the model as a named slice of one flat vector
//! (weights stored input-major, `[n_in, n_out]`, so a layer is `y = x W + b`), plus the
//! batch-norm running statistics (buffers: saved and restored, never trained).

use super::{Likelihood, ModelConfig};
use crate::error::{Error, Result};
use crate::rng;
use std::ops::Range;

/// How a tensor is initialised (PyTorch's defaults, as scvi-tools gets them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Uniform in `[-bound, bound]` (Linear weight and bias: bound = 1/sqrt(fan_in)).
    Uniform(f32),
    /// Standard normal (scvi-tools' `px_r`).
    Normal,
    /// All ones (batch-norm scale, running variance).
    Ones,
    /// All zeros (batch-norm shift, running mean).
    Zeros,
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Name, e.g. `encoder.layers.0.linear.weight`.
    pub name: String,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Offset into the flat vector.
    pub offset: usize,
    /// Initialisation.
    pub init: Init,
}

impl TensorSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its range in the flat vector.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Ranges of one dense layer (Linear + optional batch norm).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerRanges {
    /// Input width.
    pub n_in: usize,
    /// Output width.
    pub n_out: usize,
    /// Weight `[n_in, n_out]`.
    pub weight: Range<usize>,
    /// Bias `[n_out]`.
    pub bias: Range<usize>,
    /// Batch-norm scale and shift `[n_out]` (params), when the layer has batch norm.
    pub bn: Option<(Range<usize>, Range<usize>)>,
    /// Batch-norm running mean and variance `[n_out]` (buffers).
    pub bn_running: Option<(Range<usize>, Range<usize>)>,
}

/// Where every tensor lives.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    /// Trainable tensors.
    pub tensors: Vec<TensorSpec>,
    /// Buffers (batch-norm running statistics).
    pub buffers: Vec<TensorSpec>,
    /// Total trainable values.
    pub n_params: usize,
    /// Total buffer values.
    pub n_buffers: usize,
    /// Encoder hidden layers.
    pub encoder: Vec<LayerRanges>,
    /// Encoder head for the mean of q(z|x).
    pub z_mean: LayerRanges,
    /// Encoder head for the (raw) variance of q(z|x).
    pub z_var: LayerRanges,
    /// Decoder hidden layers.
    pub decoder: Vec<LayerRanges>,
    /// Decoder head: logits of the gene proportions.
    pub scale: LayerRanges,
    /// Decoder head: zero-inflation logits (ZINB only).
    pub dropout: Option<LayerRanges>,
    /// Log dispersion `[theta_rows, G]` (unused by Poisson).
    pub log_theta: Range<usize>,
}

struct Builder {
    tensors: Vec<TensorSpec>,
    buffers: Vec<TensorSpec>,
    n_params: usize,
    n_buffers: usize,
}

impl Builder {
    fn param(&mut self, name: String, shape: Vec<usize>, init: Init) -> Range<usize> {
        let t = TensorSpec {
            name,
            shape,
            offset: self.n_params,
            init,
        };
        self.n_params += t.len();
        let r = t.range();
        self.tensors.push(t);
        r
    }

    fn buffer(&mut self, name: String, n: usize, init: Init) -> Range<usize> {
        let t = TensorSpec {
            name,
            shape: vec![n],
            offset: self.n_buffers,
            init,
        };
        self.n_buffers += n;
        let r = t.range();
        self.buffers.push(t);
        r
    }

    fn layer(&mut self, prefix: &str, n_in: usize, n_out: usize, bn: bool) -> LayerRanges {
        let bound = 1.0 / (n_in as f32).sqrt();
        let weight = self.param(
            format!("{prefix}.weight"),
            vec![n_in, n_out],
            Init::Uniform(bound),
        );
        let bias = self.param(format!("{prefix}.bias"), vec![n_out], Init::Uniform(bound));
        let (bn, bn_running) = if bn {
            let stem = prefix.trim_end_matches(".linear");
            let g = self.param(format!("{stem}.bn.weight"), vec![n_out], Init::Ones);
            let b = self.param(format!("{stem}.bn.bias"), vec![n_out], Init::Zeros);
            let m = self.buffer(format!("{stem}.bn.running_mean"), n_out, Init::Zeros);
            let v = self.buffer(format!("{stem}.bn.running_var"), n_out, Init::Ones);
            (Some((g, b)), Some((m, v)))
        } else {
            (None, None)
        };
        LayerRanges {
            n_in,
            n_out,
            weight,
            bias,
            bn,
            bn_running,
        }
    }
}

impl ParamLayout {
    /// The layout for a configuration.
    pub fn new(cfg: &ModelConfig) -> ParamLayout {
        let mut b = Builder {
            tensors: Vec::new(),
            buffers: Vec::new(),
            n_params: 0,
            n_buffers: 0,
        };
        let encoder = (0..cfg.n_layers)
            .map(|l| {
                b.layer(
                    &format!("encoder.layers.{l}.linear"),
                    cfg.encoder_in(l),
                    cfg.n_hidden,
                    true,
                )
            })
            .collect();
        let z_mean = b.layer("encoder.mean", cfg.n_hidden, cfg.n_latent, false);
        let z_var = b.layer("encoder.var", cfg.n_hidden, cfg.n_latent, false);
        let decoder = (0..cfg.n_layers)
            .map(|l| {
                b.layer(
                    &format!("decoder.layers.{l}.linear"),
                    cfg.decoder_in(l),
                    cfg.n_hidden,
                    true,
                )
            })
            .collect();
        let scale = b.layer("decoder.scale", cfg.n_hidden, cfg.n_genes, false);
        let dropout = (cfg.likelihood == Likelihood::Zinb)
            .then(|| b.layer("decoder.dropout", cfg.n_hidden, cfg.n_genes, false));
        let log_theta = b.param(
            "log_theta".into(),
            vec![cfg.theta_rows(), cfg.n_genes],
            Init::Normal,
        );
        ParamLayout {
            tensors: b.tensors,
            buffers: b.buffers,
            n_params: b.n_params,
            n_buffers: b.n_buffers,
            encoder,
            z_mean,
            z_var,
            decoder,
            scale,
            dropout,
            log_theta,
        }
    }

    /// The tensor of this name (trainable or buffer).
    pub fn find(&self, name: &str) -> Option<&TensorSpec> {
        self.tensors
            .iter()
            .chain(&self.buffers)
            .find(|t| t.name == name)
    }
}

/// The model's values: trainable parameters and buffers, flat, with their layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// The configuration these values belong to.
    pub config: ModelConfig,
    /// Where each tensor lives.
    pub layout: ParamLayout,
    /// Trainable values.
    pub values: Vec<f32>,
    /// Buffer values (batch-norm running statistics).
    pub buffers: Vec<f32>,
}

fn fill(spec: &TensorSpec, out: &mut [f32], seed: u64, tensor_index: u32) {
    for (i, v) in out.iter_mut().enumerate() {
        *v = match spec.init {
            Init::Uniform(bound) => {
                (2.0 * rng::uniform(seed, rng::INIT, tensor_index, i as u32) - 1.0) * bound
            }
            Init::Normal => rng::normal(seed, rng::INIT, tensor_index, i as u32),
            Init::Ones => 1.0,
            Init::Zeros => 0.0,
        };
    }
}

impl Params {
    /// Fresh parameters drawn with the counter-based generator (stream `INIT`, one step
    /// per tensor), so every backend starts from the same values for a seed.
    pub fn init(config: &ModelConfig, seed: u64) -> Result<Params> {
        config.validate()?;
        let layout = ParamLayout::new(config);
        let mut values = vec![0.0; layout.n_params];
        for (t, spec) in layout.tensors.iter().enumerate() {
            fill(spec, &mut values[spec.range()], seed, t as u32);
        }
        let mut buffers = vec![0.0; layout.n_buffers];
        for spec in &layout.buffers {
            fill(spec, &mut buffers[spec.range()], seed, u32::MAX);
        }
        Ok(Params {
            config: config.clone(),
            layout,
            values,
            buffers,
        })
    }

    /// The values of a named tensor.
    pub fn tensor(&self, name: &str) -> Result<&[f32]> {
        let spec = self
            .layout
            .find(name)
            .ok_or_else(|| Error::Config(format!("the model has no tensor named {name}")))?;
        let is_buffer = self.layout.buffers.iter().any(|b| b.name == name);
        Ok(if is_buffer {
            &self.buffers[spec.range()]
        } else {
            &self.values[spec.range()]
        })
    }
}
