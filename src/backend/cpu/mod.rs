//! CPU twins of the WGSL kernels: plain loops, in binding order, the reference every
//! shader is tested against. `<k>.rs` is the twin of `shaders/<k>.wgsl`; `counts` is
//! the twin of `shaders/lib/counts.wgsl` (the likelihoods' shared elements); `special`
//! (lgamma, digamma), `sample` (count samplers for `explore`) `par` (rows over
//! threads, with results that do not depend on their number) and `pool` (par's kept
//! threads: natively, and in the page's threaded build) have no shader.

pub mod adam;
pub mod batchnorm;
mod count_rows;
pub mod counts;
pub mod fastmath;
pub mod finite;
mod gemm;
#[cfg(target_arch = "x86_64")]
mod gemm_avx512;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod gemm_simd128;
pub mod kl;
pub mod linear;
pub mod log1p;
pub mod nb_loglik;
pub mod onehot;
pub mod par;
pub mod poisson_loglik;
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
mod pool;
pub mod relu_dropout;
pub mod reparam;
pub mod sample;
pub mod softmax;
pub mod special;
pub mod step_guard;
pub mod zinb_loglik;
