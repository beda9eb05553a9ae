//! f32 `ln`, `ln(1 + u)` and `exp` written so that LLVM vectorises the loops that call
//! them: no branches (special cases are selects), no table, no call into libm. They are
//! for the elementwise kernels (the count likelihoods, softmax), where the libm calls,
//! one element at a time, were most of a training step.
//!
//! Accuracy (tested below against f64 on every 97th f32): `ln` within 1e-7 relative
//! (measured 8.0e-8; Cephes' `logf` polynomial on the mantissa in [sqrt(1/2),
//! sqrt(2))), `ln_1p` within 1.5e-7 (measured 1.2e-7), `exp` within 1e-7 (measured
//! 8.0e-8; Cephes' `expf`). Special
//! values follow IEEE: `ln(0) = -inf`, `ln(x < 0) = NaN`, `ln(inf) = inf`, NaN in, NaN
//! out; `exp` underflows to 0 below -87.3 (no subnormal results) and overflows to inf
//! above 88.72.
//!
//! Each is a plain function of plain f32 arithmetic (no fused multiply-add), so the
//! results are the same whatever width the vectoriser picks and on every target.
//! [`wide_kernel!`] compiles a loop that calls them three times on x86-64, for the
//! baseline (SSE2, 4 lanes), AVX2 (8 lanes) and AVX-512 (16 lanes), and picks one at run
//! time.

/// A kernel as a function of its own (so that its slices keep their no-alias promise
/// and its loops vectorise), compiled three times on x86-64: for the baseline (SSE2),
/// AVX2 (8 lanes) and AVX-512 (F, BW, DQ, VL: 16 lanes), the widest the CPU has chosen
/// at run time. The body is a `#[inline(always)]` function of the same arguments.
/// Without fused multiply-add all give the same bits
/// (`the_avx2_kernels_give_the_baseline_bits` in `counts`' tests, which checks the
/// widest this CPU has; `CELLVAE_NO_AVX512=1` keeps to AVX2).
macro_rules! wide_kernel {
    (
        $(#[$m:meta])*
        $vis:vis fn $name:ident $(<const $g:ident: bool>)? ($($arg:ident: $ty:ty),* $(,)?)
            -> $ret:ty => $body:ident
    ) => {
        $(#[$m])*
        #[inline(never)]
        $vis fn $name $(<const $g: bool>)? ($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
                fn wide512 $(<const $g: bool>)? ($($arg: $ty),*) -> $ret {
                    $body $(::<$g>)? ($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn wide $(<const $g: bool>)? ($($arg: $ty),*) -> $ret {
                    $body $(::<$g>)? ($($arg),*)
                }
                if $crate::backend::cpu::fastmath::avx512() {
                    // SAFETY: the CPU has these AVX-512 extensions (checked just above).
                    return unsafe { wide512 $(::<$g>)? ($($arg),*) };
                }
                if $crate::backend::cpu::fastmath::avx2() {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { wide $(::<$g>)? ($($arg),*) };
                }
            }
            $body $(::<$g>)? ($($arg),*)
        }
    };
}
pub(crate) use wide_kernel;

/// `wide_generic!(f(args))` calls `f(args)` compiled for AVX-512 or AVX2 where the CPU has
/// them, as [`wide_kernel!`] does, for functions that [`wide_kernel!`] cannot take (generic
/// over a closure, e.g. the sparse layer's rows in `linear`): `f` (`#[inline(always)]`) is
/// inlined into a closure run by a `#[target_feature]` function. The same arithmetic in
/// the same order, so the same bits.
macro_rules! wide_generic {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if $crate::backend::cpu::fastmath::avx512() {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
                fn wide512<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                // SAFETY: the CPU has these AVX-512 extensions (checked just above).
                unsafe { wide512(#[inline(always)] || $f($($arg),*)) }
            } else if $crate::backend::cpu::fastmath::avx2() {
                #[target_feature(enable = "avx2")]
                fn wide256<R>(f: impl FnOnce() -> R) -> R {
                    f()
                }
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { wide256(#[inline(always)] || $f($($arg),*)) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}
pub(crate) use wide_generic;

/// Whether [`wide_kernel!`] kernels take their AVX-512 versions here
/// (`CELLVAE_NO_AVX512` set: never).
pub fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            std::env::var_os("CELLVAE_NO_AVX512").is_none()
                && std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512dq")
                && std::is_x86_feature_detected!("avx512vl")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether [`wide_kernel!`] kernels take their AVX2 versions here.
pub fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ln 2 split so that `e * LN2_HI` is exact for |e| < 2^9 (Cephes).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// ln x for f32 (see the module docs for accuracy and special values).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    // Subnormals: scale into the normal range first (exponent corrected below).
    let sub = x < f32::MIN_POSITIVE;
    let xs = if sub { x * 33_554_432.0 } else { x }; // 2^25
    let bits = xs.to_bits();
    // xs = m 2^e with m in [0.5, 1).
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    if sub {
        e -= 25;
    }
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // m in [sqrt(1/2), 1) -> f = 2m - 1 with e - 1; m in [0.5, sqrt(1/2)) likewise.
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let f = if small { m + m - 1.0 } else { m - 1.0 };
    let ef = (if small { e - 1 } else { e }) as f32;
    let z = f * f;
    let p = ((((((((7.037_683_6e-2 * f - 1.151_461_e-1) * f + 1.167_699_9e-1) * f
        - 1.242_014_1e-1)
        * f
        + 1.424_932_3e-1)
        * f
        - 1.666_805_8e-1)
        * f
        + 2.000_071_4e-1)
        * f
        - 2.499_999_4e-1)
        * f
        + 3.333_333e-1)
        * f
        * z;
    let y = f + (p + ef * LN2_LO - 0.5 * z) + ef * LN2_HI;
    // Special values: 0 -> -inf, negative or NaN -> NaN, +inf -> +inf.
    let y = if x == f32::INFINITY { x } else { y };
    let y = if x > 0.0 { y } else { f32::NAN };
    if x == 0.0 {
        f32::NEG_INFINITY
    } else {
        y
    }
}

/// ln(1 + u) for u >= 0, accurate for small u: `ln(w) + (u - (w - 1)) / w` with
/// `w = 1 + u` (the rounding of w corrected to first order). NaN for NaN.
#[inline(always)]
pub fn ln_1p(u: f32) -> f32 {
    let w = 1.0 + u;
    ln_1p_with(u, w, 1.0 / w)
}

/// [`ln_1p`] when the caller already has `w = 1 + u` and `inv_w ~ 1 / w` (only the
/// correction term uses it, so a few ulps off is fine): saves the division.
#[inline(always)]
pub fn ln_1p_with(u: f32, w: f32, inv_w: f32) -> f32 {
    let c = u - (w - 1.0);
    let r = ln(w) + c * inv_w;
    // u = inf: c is NaN; the answer is inf.
    if w == f32::INFINITY {
        w
    } else {
        r
    }
}

/// e^x for f32 (see the module docs).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Clamp so that 2^n stays a normal number; the ends are set below.
    let xc = x.clamp(-87.336_55, 88.722_83);
    // n = round(x / ln 2), by adding and subtracting 1.5 * 2^23; the integer is read
    // from the bits of the sum (no float-to-integer conversion, which does not vectorise).
    let f = xc * LOG2E + 12_582_912.0;
    let n = f - 12_582_912.0;
    let ni = (f.to_bits() as i32).wrapping_sub(0x4b40_0000);
    let r = xc - n * C1 - n * C2;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5e-1;
    let y = p * z + r + 1.0;
    // 2^n with n in [-126, 127] (the clamp keeps it there); 2^n * y done in two
    // halves so that n = 128 after rounding (x near the top) cannot overflow the
    // exponent field.
    let half = ni >> 1;
    let s1 = f32::from_bits(((half + 127) as u32) << 23);
    let s2 = f32::from_bits(((ni - half + 127) as u32) << 23);
    let v = y * s1 * s2;
    let v = if x > 88.722_83 { f32::INFINITY } else { v };
    let v = if x < -87.336_55 { 0.0 } else { v };
    if x.is_nan() {
        x
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 97th f32 bit pattern (all signs, exponents and many mantissas).
    fn samples() -> impl Iterator<Item = f32> {
        (0..u32::MAX / 97).map(|i| f32::from_bits(i.wrapping_mul(97)))
    }

    #[test]
    fn ln_is_accurate_everywhere() {
        let mut worst = 0f64;
        for x in samples().filter(|x| x.is_finite() && *x > 0.0) {
            let want = f64::from(x).ln();
            let got = f64::from(ln(x));
            if want == 0.0 {
                assert_eq!(got, 0.0);
                continue;
            }
            let err = (got - want).abs() / want.abs();
            worst = worst.max(err);
        }
        eprintln!("worst relative error {worst:e}");
        assert!(worst < 1e-7, "worst relative error {worst:e}");
        assert_eq!(ln(0.0), f32::NEG_INFINITY);
        assert_eq!(ln(-0.0), f32::NEG_INFINITY);
        assert_eq!(ln(f32::INFINITY), f32::INFINITY);
        assert!(ln(-1.0).is_nan() && ln(f32::NAN).is_nan() && ln(f32::NEG_INFINITY).is_nan());
        assert_eq!(ln(1.0), 0.0);
        let tiny = f32::from_bits(1);
        assert!((f64::from(ln(tiny)) - f64::from(tiny).ln()).abs() < 1e-5);
    }

    #[test]
    fn ln_1p_is_accurate_for_small_and_large_arguments() {
        let mut worst = 0f64;
        for u in samples().filter(|x| x.is_finite() && *x >= 0.0) {
            let want = f64::from(u).ln_1p();
            let got = f64::from(ln_1p(u));
            if want > 0.0 {
                worst = worst.max((got - want).abs() / want);
            } else {
                assert_eq!(got, 0.0);
            }
        }
        eprintln!("worst relative error {worst:e}");
        assert!(worst < 1.5e-7, "worst relative error {worst:e}");
        assert_eq!(ln_1p(f32::INFINITY), f32::INFINITY);
        assert!(ln_1p(f32::NAN).is_nan());
        assert_eq!(ln_1p(1e-30), 1e-30);
    }

    #[test]
    fn exp_is_accurate_and_saturates() {
        let mut worst = 0f64;
        for x in samples().filter(|x| x.is_finite() && x.abs() < 88.7) {
            let want = f64::from(x).exp();
            if want < f64::from(f32::MIN_POSITIVE) {
                continue;
            }
            let got = f64::from(exp(x));
            worst = worst.max((got - want).abs() / want);
        }
        eprintln!("worst relative error {worst:e}");
        assert!(worst < 1e-7, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.72).is_finite() && exp(-87.3) > 0.0);
    }
}
