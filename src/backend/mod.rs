//! Compute kernels. Each kernel is a triple with one name (the vello habit):
//! `shaders/<k>.wgsl`, its CPU twin `src/backend/cpu/<k>.rs` written as plain loops in
//! binding order, and a row in the GPU-vs-CPU test (`tests/gpu_kernels.rs`).
//!
//! - [`cpu`]: the reference implementations (and the fallback where WebGPU is missing).
//! - [`gpu`]: the wgpu device, shader compilation with error scopes, dispatch, readback.

pub mod cpu;
pub mod gpu;
