//! Compute kernels, the lowest layer: nothing here knows the model or training (no
//! import of `crate::model` or `crate::train`). Each kernel is a triple with one name
//! (the vello habit): `shaders/<k>.wgsl`, its CPU twin `src/backend/cpu/<k>.rs` written
//! as plain loops in binding order, and GPU-vs-CPU tests named after it
//! (`tests/gpu_kernels/<k>.rs`). [`crate::model`] composes them into the VAE's step.
//!
//! - [`cpu`]: the reference implementations (and the fallback where WebGPU is missing).
//! - [`gpu`]: the wgpu device, shader compilation with error scopes, one `encode_<k>`
//!   (record on resident buffers) and `<k>` (upload, dispatch, read back) per kernel.

pub mod cpu;
pub mod gpu;
