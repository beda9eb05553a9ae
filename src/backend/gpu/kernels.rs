//! The WGSL kernels, embedded at build time, their compiled [`Pipelines`] and the
//! `#[repr(C)]` params structs their uniforms mirror.
//!
//! [`SHADERS`] lists every file in `shaders/` so that a test can run each through naga.
//! Dispatch lives next to each kernel, in `backend/gpu/<k>.rs` for `shaders/<k>.wgsl`:
//! an `encode_*` method records into a command encoder on resident buffers (the
//! training path), and a slice method uploads, dispatches and reads back (the
//! GPU-vs-CPU tests). `log1p` keeps its original free functions (re-exported here).

pub use super::log1p::{log1p, log1p_with_source, self_check};
use super::GpuContext;
use crate::error::{Error, Result};

/// Every WGSL kernel: (name, source). Keep in step with `shaders/`; kernels that draw
/// random numbers get `shaders/lib/philox.wgsl` prepended, the likelihoods
/// `shaders/lib/counts.wgsl` (WGSL has no includes).
pub const SHADERS: &[(&str, &str)] = &[
    ("log1p", include_str!("../../../shaders/log1p.wgsl")),
    ("linear", include_str!("../../../shaders/linear.wgsl")),
    ("softmax", include_str!("../../../shaders/softmax.wgsl")),
    ("kl", include_str!("../../../shaders/kl.wgsl")),
    (
        "reparam",
        concat!(
            include_str!("../../../shaders/lib/philox.wgsl"),
            include_str!("../../../shaders/reparam.wgsl")
        ),
    ),
    ("adam", include_str!("../../../shaders/adam.wgsl")),
    (
        "step_guard",
        include_str!("../../../shaders/step_guard.wgsl"),
    ),
    (
        "nb_loglik",
        concat!(
            include_str!("../../../shaders/lib/counts.wgsl"),
            include_str!("../../../shaders/nb_loglik.wgsl")
        ),
    ),
    (
        "zinb_loglik",
        concat!(
            include_str!("../../../shaders/lib/counts.wgsl"),
            include_str!("../../../shaders/zinb_loglik.wgsl")
        ),
    ),
    (
        "poisson_loglik",
        concat!(
            include_str!("../../../shaders/lib/counts.wgsl"),
            include_str!("../../../shaders/poisson_loglik.wgsl")
        ),
    ),
    ("onehot", include_str!("../../../shaders/onehot.wgsl")),
    (
        "relu_dropout",
        concat!(
            include_str!("../../../shaders/lib/philox.wgsl"),
            include_str!("../../../shaders/relu_dropout.wgsl")
        ),
    ),
    (
        "batchnorm",
        concat!(
            include_str!("../../../shaders/lib/philox.wgsl"),
            include_str!("../../../shaders/batchnorm.wgsl")
        ),
    ),
];

/// Every training kernel compiled once: create with [`Pipelines::new`], then call the
/// dispatch methods (defined next to their kernel group: `linear`, `rowwise`, `optim`).
pub struct Pipelines {
    pub(crate) log1p: wgpu::ComputePipeline,
    pub(crate) linear_forward: wgpu::ComputePipeline,
    pub(crate) linear_backward_dx: wgpu::ComputePipeline,
    pub(crate) linear_backward_dw: wgpu::ComputePipeline,
    pub(crate) softmax: wgpu::ComputePipeline,
    pub(crate) kl: wgpu::ComputePipeline,
    pub(crate) reparam: wgpu::ComputePipeline,
    pub(crate) adam: wgpu::ComputePipeline,
    pub(crate) step_guard: wgpu::ComputePipeline,
    pub(crate) nb_loglik: wgpu::ComputePipeline,
    pub(crate) nb_loglik_theta: wgpu::ComputePipeline,
    pub(crate) zinb_loglik: wgpu::ComputePipeline,
    pub(crate) poisson_loglik: wgpu::ComputePipeline,
    pub(crate) onehot: wgpu::ComputePipeline,
    pub(crate) onehot_grad: wgpu::ComputePipeline,
    pub(crate) relu_dropout: wgpu::ComputePipeline,
    pub(crate) relu_dropout_backward: wgpu::ComputePipeline,
    pub(crate) reparam_backward: wgpu::ComputePipeline,
    pub(crate) reparam_kl: wgpu::ComputePipeline,
    pub(crate) reparam_backward_kl: wgpu::ComputePipeline,
    pub(crate) kl_backward: wgpu::ComputePipeline,
    pub(crate) batchnorm_train: wgpu::ComputePipeline,
    pub(crate) batchnorm_eval: wgpu::ComputePipeline,
    pub(crate) batchnorm_backward: wgpu::ComputePipeline,
}

impl Pipelines {
    /// Compiles every kernel (a shader that fails names itself in the error).
    pub async fn new(ctx: &GpuContext) -> Result<Pipelines> {
        let linear = shader_source("linear")?;
        Ok(Pipelines {
            log1p: ctx
                .compute_pipeline("log1p", shader_source("log1p")?)
                .await?,
            linear_forward: ctx.compute_pipeline_entry("linear", linear, "main").await?,
            linear_backward_dx: ctx
                .compute_pipeline_entry("linear", linear, "dx_main")
                .await?,
            linear_backward_dw: ctx
                .compute_pipeline_entry("linear", linear, "dw_main")
                .await?,
            softmax: ctx
                .compute_pipeline("softmax", shader_source("softmax")?)
                .await?,
            kl: ctx.compute_pipeline("kl", shader_source("kl")?).await?,
            reparam: ctx
                .compute_pipeline("reparam", shader_source("reparam")?)
                .await?,
            adam: ctx.compute_pipeline("adam", shader_source("adam")?).await?,
            step_guard: ctx
                .compute_pipeline("step_guard", shader_source("step_guard")?)
                .await?,
            nb_loglik: ctx
                .compute_pipeline("nb_loglik", shader_source("nb_loglik")?)
                .await?,
            nb_loglik_theta: ctx
                .compute_pipeline_entry("nb_loglik", shader_source("nb_loglik")?, "theta_main")
                .await?,
            zinb_loglik: ctx
                .compute_pipeline("zinb_loglik", shader_source("zinb_loglik")?)
                .await?,
            poisson_loglik: ctx
                .compute_pipeline("poisson_loglik", shader_source("poisson_loglik")?)
                .await?,
            onehot: ctx
                .compute_pipeline("onehot", shader_source("onehot")?)
                .await?,
            onehot_grad: ctx
                .compute_pipeline_entry("onehot", shader_source("onehot")?, "grad_main")
                .await?,
            relu_dropout: ctx
                .compute_pipeline("relu_dropout", shader_source("relu_dropout")?)
                .await?,
            relu_dropout_backward: ctx
                .compute_pipeline_entry(
                    "relu_dropout",
                    shader_source("relu_dropout")?,
                    "backward_main",
                )
                .await?,
            reparam_backward: ctx
                .compute_pipeline_entry("reparam", shader_source("reparam")?, "backward_main")
                .await?,
            reparam_kl: ctx
                .compute_pipeline_entry("reparam", shader_source("reparam")?, "kl_main")
                .await?,
            reparam_backward_kl: ctx
                .compute_pipeline_entry("reparam", shader_source("reparam")?, "backward_kl_main")
                .await?,
            kl_backward: ctx
                .compute_pipeline_entry("kl", shader_source("kl")?, "backward_main")
                .await?,
            batchnorm_train: ctx
                .compute_pipeline_entry("batchnorm", shader_source("batchnorm")?, "train_main")
                .await?,
            batchnorm_eval: ctx
                .compute_pipeline_entry("batchnorm", shader_source("batchnorm")?, "eval_main")
                .await?,
            batchnorm_backward: ctx
                .compute_pipeline_entry("batchnorm", shader_source("batchnorm")?, "backward_main")
                .await?,
        })
    }
}

/// Mirrors `Params` in `shaders/linear.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LinearParams {
    /// Rows of x and y (the minibatch B).
    pub b: u32,
    /// Inputs per row.
    pub n_in: u32,
    /// Outputs per row.
    pub n_out: u32,
    /// `dx_main`: 1 adds to dx, 0 overwrites it.
    pub accumulate: u32,
}

/// Mirrors `Params` in `shaders/onehot.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OnehotParams {
    /// Rows (B).
    pub b: u32,
    /// Outputs per row.
    pub n_out: u32,
    /// Weight rows before the one-hot block (the ordinary inputs).
    pub base: u32,
    /// Categories (K).
    pub k: u32,
}

/// Mirrors `Params` in `shaders/log1p.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Log1pParams {
    /// Number of elements.
    pub n: u32,
    /// Padding to 16 bytes (uniform layout).
    pub pad: [u32; 3],
}

/// Mirrors `Params` in `shaders/softmax.wgsl` (b = B, g = G) and `shaders/kl.wgsl`
/// (b = B, g = Z): a row-wise kernel over a B x `g` matrix.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RowParams {
    /// Rows (cells).
    pub b: u32,
    /// Values per row.
    pub g: u32,
    /// Padding to 16 bytes (uniform layout).
    pub pad: [u32; 2],
}

/// Mirrors `Params` in `shaders/reparam.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReparamParams {
    /// Elements (B x Z).
    pub n: u32,
    /// Low word of the 64-bit seed (Philox key word 0).
    pub seed_lo: u32,
    /// High word of the seed (Philox key word 1).
    pub seed_hi: u32,
    /// Counter word 1: the optimiser step.
    pub step: u32,
    /// Counter word 2: the stream id (`rng::REPARAM`).
    pub stream: u32,
    /// Z, the latent width (the KL-fused entry points; 0 for the others).
    pub z: u32,
    /// Padding to 32 bytes (uniform layout).
    pub pad: [u32; 2],
}

/// Mirrors `Hyper` in `shaders/adam.wgsl`: one Adam step's scalars, formed as
/// `cpu::adam::step` forms them (f64, rounded to f32 once).
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AdamParams {
    /// Elements.
    pub n: u32,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
    /// `1 - beta1`.
    pub one_minus_beta1: f32,
    /// `1 - beta2`.
    pub one_minus_beta2: f32,
    /// `beta2`.
    pub beta2: f32,
    /// Added after the bias-corrected square root.
    pub eps: f32,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f32,
}

impl AdamParams {
    /// The scalars of step `t` (1-based; 0 is treated as 1) for `n` elements.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: u32,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        t: u32,
    ) -> AdamParams {
        let t = t.max(1) as i32;
        AdamParams {
            n,
            step_size: (lr / (1.0 - beta1.powi(t))) as f32,
            bc2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            beta2: beta2 as f32,
            eps: eps as f32,
            weight_decay: weight_decay as f32,
        }
    }
}

/// Mirrors `Params` in `shaders/nb_loglik.wgsl`, `zinb_loglik.wgsl` and
/// `poisson_loglik.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NbParams {
    /// Cells (B).
    pub b: u32,
    /// Genes (G).
    pub g: u32,
    /// Rows of the dispersion table (K: 1 gene-wise, the number of batches gene-batch).
    pub k: u32,
    /// Padding to 16 bytes (uniform layout).
    pub pad: u32,
}

/// Mirrors `Cell` in `shaders/nb_loglik.wgsl`: one cell's scalars, packed so that the
/// kernel stays within 8 storage buffers.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NbCell {
    /// Observed library size l (mu = l * rho).
    pub library: f32,
    /// Weight of this cell's log-likelihood in the gradients (e.g. -1/B).
    pub weight: f32,
    /// Row of the dispersion table this cell uses.
    pub theta_row: u32,
    /// Padding to 16 bytes.
    pub pad: u32,
}

/// Mirrors `Params` in `shaders/relu_dropout.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DropoutParams {
    /// Elements (B x n).
    pub n: u32,
    /// Low word of the 64-bit seed (Philox key word 0).
    pub seed_lo: u32,
    /// High word of the seed (Philox key word 1).
    pub seed_hi: u32,
    /// Counter word 1: the optimiser step.
    pub step: u32,
    /// Counter word 2: the stream id (`rng::DROPOUT_ENCODER`).
    pub stream: u32,
    /// Dropout probability (no random numbers are drawn when <= 0).
    pub p_drop: f32,
    /// `1 / (1 - p_drop)` in f32 (0 when p_drop >= 1), for `max(p_drop, 0)`.
    pub scale: f32,
    /// Padding to 32 bytes (uniform layout).
    pub pad: u32,
}

impl DropoutParams {
    /// The params for `n` elements, computing `scale` as `cpu::relu_dropout` does.
    pub fn new(n: u32, p_drop: f32, seed: u64, step: u32, stream: u32) -> DropoutParams {
        let p = p_drop.max(0.0);
        DropoutParams {
            n,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            step,
            stream,
            p_drop,
            scale: if p >= 1.0 { 0.0 } else { 1.0 / (1.0 - p) },
            pad: 0,
        }
    }
}

/// Mirrors `Params` in `shaders/batchnorm.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BnParams {
    /// Rows (B).
    pub b: u32,
    /// Features (n).
    pub n: u32,
    /// Added to the variance (scvi-tools: 1e-3).
    pub eps: f32,
    /// Weight of the new batch in the running statistics (scvi-tools: 0.01).
    pub momentum: f32,
    /// The fused epilogue: 0 none, 1 ReLU + dropout as `shaders/relu_dropout.wgsl`.
    pub act: u32,
    /// The epilogue's dropout ([`DropoutParams`] without `n`): seed low word.
    pub seed_lo: u32,
    /// Seed high word.
    pub seed_hi: u32,
    /// The optimiser step (Philox counter word 1).
    pub step: u32,
    /// The stream id (Philox counter word 2).
    pub stream: u32,
    /// Dropout probability (no draws when <= 0).
    pub p_drop: f32,
    /// `1 / (1 - p_drop)` in f32, as [`DropoutParams::scale`].
    pub scale: f32,
    /// Padding to 48 bytes (uniform layout).
    pub pad: u32,
}

impl BnParams {
    /// The params of B = `b` rows of `n` features, with the ReLU + dropout epilogue of
    /// `act` when given.
    pub fn new(b: u32, n: u32, eps: f32, momentum: f32, act: Option<&DropoutParams>) -> BnParams {
        let d = act.copied().unwrap_or(DropoutParams::new(0, 0.0, 0, 0, 0));
        BnParams {
            b,
            n,
            eps,
            momentum,
            act: u32::from(act.is_some()),
            seed_lo: d.seed_lo,
            seed_hi: d.seed_hi,
            step: d.step,
            stream: d.stream,
            p_drop: d.p_drop,
            scale: d.scale,
            pad: 0,
        }
    }
}

/// The source of a kernel by name.
pub fn shader_source(name: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Gpu(format!("no shader named {name}")))
}

/// Workgroups for `n` elements at 256 per group, spread over x and y so that no
/// dimension exceeds WebGPU's 65535.
pub fn grid_for(n: u32) -> (u32, u32) {
    let groups = n.div_ceil(256).max(1);
    if groups <= 65_535 {
        (groups, 1)
    } else {
        (65_535, groups.div_ceil(65_535))
    }
}

/// Consecutive dispatches of one kernel entry point in a recorded step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KernelRun {
    /// The kernel's file in `shaders/` (without `.wgsl`), as named in [`SHADERS`].
    pub kernel: String,
    /// The dispatch's label (the kernel, or `kernel.entry` for a second entry point).
    pub pass: String,
    /// Dispatches in a row.
    pub dispatches: u32,
}

/// The kernel file a dispatch's label belongs to (`linear_forward`,
/// `linear_backward.dw` -> `linear`; `nb_loglik.theta` -> `nb_loglik`).
pub fn kernel_of_pass(label: &str) -> &str {
    let head = label.split('.').next().unwrap_or(label);
    match head {
        "linear_forward" | "linear_backward" => "linear",
        other => other,
    }
}

/// Pass labels in recording order, grouped into runs of the same pass.
pub fn kernel_runs(labels: &[String]) -> Vec<KernelRun> {
    let mut out: Vec<KernelRun> = Vec::new();
    for l in labels {
        match out.last_mut() {
            Some(r) if r.pass == *l => r.dispatches += 1,
            _ => out.push(KernelRun {
                kernel: kernel_of_pass(l).to_string(),
                pass: l.clone(),
                dispatches: 1,
            }),
        }
    }
    out
}

#[cfg(test)]
mod kernel_run_tests {
    use super::*;

    #[test]
    fn every_pass_names_a_kernel_file_and_runs_group() {
        let labels: Vec<String> = [
            "linear_forward",
            "linear_forward",
            "nb_loglik.theta",
            "adam",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let runs = kernel_runs(&labels);
        assert_eq!(runs.len(), 3);
        assert_eq!((runs[0].kernel.as_str(), runs[0].dispatches), ("linear", 2));
        assert_eq!(runs[1].kernel, "nb_loglik");
        let names: Vec<&str> = SHADERS.iter().map(|(n, _)| *n).collect();
        for r in &runs {
            assert!(names.contains(&r.kernel.as_str()), "{}", r.kernel);
        }
    }
}
