//! Twin of `shaders/step_guard.wgsl`: whether a step's per-cell losses are all finite,
//! as the flag the GPU's Adam reads (1: apply the step, 0: skip it).

/// 1 when every `loglik[r]` and `kl[r]` is finite, else 0.
pub fn finite_flag(loglik: &[f32], kl: &[f32]) -> u32 {
    u32::from(loglik.iter().chain(kl).all(|v| v.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_nan_or_infinity_clears_the_flag() {
        assert_eq!(finite_flag(&[1.0, -2.0], &[0.5, 0.0]), 1);
        assert_eq!(finite_flag(&[1.0, f32::NAN], &[0.5, 0.0]), 0);
        assert_eq!(finite_flag(&[1.0, 2.0], &[f32::NEG_INFINITY, 0.0]), 0);
        assert_eq!(finite_flag(&[], &[]), 1);
    }
}
