//! Checks over whole parameter-sized arrays: whether every value is finite (the step's
//! gradients, before Adam may apply them) or below a bound in magnitude (a snapshot's
//! state, before it becomes a resume point). Both are one question, the largest
//! magnitude's bits: positive floats order as their bits, and infinities and NaNs have
//! larger bits than any finite value. One pass, in vector lanes ([`wide_kernel!`]: an
//! integer maximum, no early exit) and over the kernels' threads ([`super::par`]).

use super::fastmath::wide_kernel;
use super::par;

/// The bits of `+inf`: a magnitude's bits at or above these are not finite.
const INF_BITS: u32 = 0x7f80_0000;

/// The largest `bits & 0x7fff_ffff` of `v` (0 for none), one run of values.
#[inline(always)]
fn largest_magnitude_bits_body(v: &[f32]) -> u32 {
    v.iter()
        .fold(0u32, |acc, &x| acc.max(x.to_bits() & 0x7fff_ffff))
}

wide_kernel!(
    /// [`largest_magnitude_bits_body`] compiled for the baseline, AVX2 and AVX-512.
    fn largest_magnitude_bits_run(v: &[f32]) -> u32 => largest_magnitude_bits_body
);

/// The largest magnitude's bits over `v`, runs of it over threads (a maximum: the same
/// answer for any number of threads).
fn largest_magnitude_bits(v: &[f32]) -> u32 {
    let parts = par::ranges(v.len(), v.len());
    let mut out = vec![0u32; parts.len()];
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(out.iter_mut())
        .map(|(r, o)| move || *o = largest_magnitude_bits_run(&v[r]))
        .collect();
    par::run(jobs);
    out.into_iter().max().unwrap_or(0)
}

/// Whether every value of `v` is finite (no infinity, no NaN).
pub fn all_finite(v: &[f32]) -> bool {
    largest_magnitude_bits(v) < INF_BITS
}

/// Whether every value of `v` is below `bound` (positive, finite) in magnitude: false
/// for any infinity or NaN.
pub fn all_below(v: &[f32], bound: f32) -> bool {
    debug_assert!(bound > 0.0 && bound.is_finite(), "bound {bound}");
    v.is_empty() || largest_magnitude_bits(v) < bound.abs().to_bits().min(INF_BITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of every kind, long enough for the threads and every lane width.
    fn values() -> Vec<f32> {
        (0..300_001usize)
            .map(|i| ((i * 7919) % 20_001) as f32 / 97.0 - 100.0)
            .collect()
    }

    #[test]
    fn finds_one_bad_value_anywhere() {
        let ok = values();
        assert!(all_finite(&ok) && all_below(&ok, 1e3));
        assert!(!all_below(&ok, 50.0));
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 7, 16, 150_000, 300_000] {
                let mut v = ok.clone();
                v[at] = bad;
                assert!(!all_finite(&v), "{bad} at {at}");
                assert!(!all_below(&v, 1e30), "{bad} at {at}");
            }
        }
        let mut v = ok.clone();
        v[123_457] = -2e30;
        assert!(all_finite(&v) && !all_below(&v, 1e30) && all_below(&v, 3e30));
        assert!(all_finite(&[]) && all_below(&[], 1.0));
        assert!(all_finite(&[
            f32::MAX,
            -f32::MAX,
            -0.0,
            f32::MIN_POSITIVE / 2.0
        ]));
    }

    #[test]
    fn the_wide_run_gives_the_baseline_answer() {
        let mut v = values();
        v[4321] = f32::NAN;
        for r in [0..1, 0..17, 3..4400, 5000..300_001] {
            let s = &v[r];
            assert_eq!(
                largest_magnitude_bits_run(s),
                largest_magnitude_bits_body(s)
            );
        }
    }
}
