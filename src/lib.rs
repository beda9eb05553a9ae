//! # cellvae
//!
//! A single-cell variational autoencoder that trains in the browser on WebGPU, with a
//! pure-Rust CPU path as the reference and fallback, and a native command line.
//!
//! Module map:
//!
//! - [`error`]: the one error type; every user error names file, place, problem and fix.
//! - [`data`]: readers for every count format (10x mtx and h5, AnnData h5ad, dense
//!   CSV/TSV, metadata tables), concatenation, and preprocessing (QC, HVG).
//! - [`summary`]: what `cellvae inspect` and the page show about a matrix as read.
//! - [`backend`]: the compute kernels: `cpu` reference twins and `gpu` (wgpu + WGSL in `shaders/`).
//! - `web` (wasm32 only): the thin wasm-bindgen layer the page calls.

#![warn(missing_docs)]

pub mod backend;
mod blocking;
pub mod data;
pub mod error;
pub mod eval;
pub mod explore;
pub mod model;
pub mod pipeline;
pub mod rng;
pub mod summary;
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod web_gpu;
#[cfg(target_arch = "wasm32")]
pub mod web_plot;

pub use blocking::block_on;
pub use data::{CountMatrix, InputFile, ReadOptions};
pub use error::{Error, Result};
