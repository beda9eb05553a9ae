//! CPU twins of the WGSL kernels: plain loops, in binding order, the reference every
//! shader is tested against.

pub mod log1p;
