//! # cellvae
//!
//! A single-cell variational autoencoder that trains in the browser on WebGPU, with a
//! pure-Rust CPU path as the reference and fallback, and a native command line.
//!
//! Module map, in layer order (each layer uses only those above it):
//!
//! - [`error`]: the one error type; every user error names file, place, problem and fix.
//! - [`block_on`]: the one place the library waits on a future.
//! - [`rng`]: Philox4x32-10, keyed draws (seed, stream, step, index) shared with the GPU.
//! - [`data`]: readers for every count format (10x mtx and h5, AnnData h5ad, dense
//!   CSV/TSV, metadata tables), concatenation, and preprocessing (QC, HVG).
//! - [`summary`]: what `cellvae inspect` and the page show about a matrix as read.
//! - [`backend`]: the compute kernels only: `cpu` reference twins and `gpu` (wgpu + WGSL
//!   in `shaders/`); no file there imports `model` or `train`.
//! - [`model`]: configuration, parameter layout, model files, the VAE's forward/backward
//!   on the CPU, and the `Backend` trait with `CpuBackend` and `GpuBackend`, which
//!   compose the kernels into a training step.
//! - [`train`]: the training loop (`Schedule`, `Trainer<B: Backend>`), written once.
//! - [`eval`]: ELBO, IW log p(x), reconstruction, KL per dimension, kNN accuracy.
//! - [`explore`]: decoding, traversals, prior samples, nearest cells.
//! - [`pipeline`]: matrix -> training data (QC, HVG, held-out split, batch and labels).
//! - [`teach`]: the lessons' computations (estimators, gradient noise, ELBO surgery,
//!   generated cells, rotations, batch mixing) on a model and real cells.
//! - [`bench`]: a training step timed by stage on the CPU kernels (`cellvae bench` and the
//!   page's `bench_step` hook).
//! - [`session`]: everything the page does with data and a model (options shared with
//!   the command line, the run on the CPU or the GPU with lr and beta in one place,
//!   latent means, KL per dimension, profiles, model files, the worker hand-off codec),
//!   native and tested; the page's Web Worker owns one through `web`.
//! - `web`, `web_plot` (wasm32 only): the thin wasm-bindgen layer over [`session`] (it
//!   only converts), and charts drawn by plotters on a canvas.
//! - `bin/cellvae` (native): the command line, over [`session`]'s options, [`pipeline`],
//!   [`train`] and [`eval`].

#![warn(missing_docs)]

pub mod backend;
pub mod bench;
mod blocking;
pub mod data;
pub mod de;
pub mod error;
pub mod eval;
pub mod explore;
pub mod model;
pub mod pipeline;
pub mod rng;
pub mod session;
pub mod summary;
pub mod teach;
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod web_plot;

pub use blocking::block_on;
pub use data::{CountMatrix, InputFile, ReadOptions};
pub use error::{Error, Result};
