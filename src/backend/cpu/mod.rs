//! CPU twins of the WGSL kernels: plain loops, in binding order, the reference every
//! shader is tested against.

pub mod activation;
pub mod adam;
pub mod batchnorm;
pub mod guard;
pub mod kl;
pub mod likelihood;
pub mod linear;
pub mod log1p;
pub mod reparam;
pub mod softmax;
pub mod special;
