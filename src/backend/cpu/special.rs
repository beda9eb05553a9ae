//! Special functions for the count likelihoods: `lgamma` and `digamma` for x > 0.
//!
//! Both shift the argument up with the recurrence until it is large enough for the
//! asymptotic (Stirling) series, which is short and branch-free, so the same form
//! works in WGSL: the f32 variants ([`lgamma_f32`], [`digamma_f32`]) are the shader's
//! twins (shift to x >= 8, three series terms, relative error ~1e-7 away from the roots).
//! The f64 versions shift to x >= 10 and keep seven terms: error below ~1e-15 absolute
//! plus ~1e-15 relative.

/// ln(sqrt(2 pi)).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// ln Gamma(x) for x > 0 (NaN for x <= 0 or NaN; +inf for +inf).
pub fn lgamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut z = x;
    let mut prod = 1.0f64;
    while z < 10.0 {
        prod *= z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    // Stirling series: sum_k B_2k / (2k (2k-1) z^(2k-1)).
    let series = r
        * (1.0 / 12.0
            + r2 * (-1.0 / 360.0
                + r2 * (1.0 / 1260.0
                    + r2 * (-1.0 / 1680.0
                        + r2 * (1.0 / 1188.0 + r2 * (-691.0 / 360_360.0 + r2 * (1.0 / 156.0)))))));
    (z - 0.5) * z.ln() - z + LN_SQRT_2PI + series - prod.ln()
}

/// The digamma function psi(x) = d/dx ln Gamma(x) for x > 0 (NaN for x <= 0 or NaN).
pub fn digamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return f64::NAN;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let mut z = x;
    let mut acc = 0.0f64;
    while z < 10.0 {
        acc -= 1.0 / z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    // ln z - 1/(2z) - sum_k B_2k / (2k z^(2k)).
    let series = r2
        * (1.0 / 12.0
            + r2 * (-1.0 / 120.0
                + r2 * (1.0 / 252.0
                    + r2 * (-1.0 / 240.0
                        + r2 * (1.0 / 132.0 + r2 * (-691.0 / 32_760.0 + r2 * (1.0 / 12.0)))))));
    acc + z.ln() - 0.5 * r - series
}

/// ln Gamma(x) in f32 for x > 0, in the form the WGSL twin uses: shift to x >= 8 with a
/// running product, then `(z - 0.5) ln z - z + ln sqrt(2 pi) + 1/(12z) - 1/(360z^3) +
/// 1/(1260z^5) - ln(prod)`. NaN for x <= 0.
pub fn lgamma_f32(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 {
        return f32::NAN;
    }
    let mut z = x;
    let mut prod = 1.0f32;
    while z < 8.0 {
        prod *= z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    let series = r * (1.0 / 12.0 + r2 * (-1.0 / 360.0 + r2 * (1.0 / 1260.0)));
    (z - 0.5) * z.ln() - z + LN_SQRT_2PI as f32 + series - prod.ln()
}

/// psi(x) in f32 for x > 0, in the form the WGSL twin uses: shift to x >= 8 subtracting
/// `1/z`, then `ln z - 1/(2z) - 1/(12z^2) + 1/(120z^4) - 1/(252z^6)`. NaN for x <= 0.
pub fn digamma_f32(x: f32) -> f32 {
    if x.is_nan() || x <= 0.0 {
        return f32::NAN;
    }
    let mut z = x;
    let mut acc = 0.0f32;
    while z < 8.0 {
        acc -= 1.0 / z;
        z += 1.0;
    }
    let r = 1.0 / z;
    let r2 = r * r;
    let series = r2 * (1.0 / 12.0 + r2 * (-1.0 / 120.0 + r2 * (1.0 / 252.0)));
    acc + z.ln() - 0.5 * r - series
}

#[cfg(test)]
mod tests {
    use super::*;

    const EULER: f64 = 0.577_215_664_901_532_9;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1.0)
    }

    #[test]
    fn lgamma_known_values() {
        let ln_sqrt_pi = 0.5 * std::f64::consts::PI.ln();
        assert!(close(lgamma(0.5), ln_sqrt_pi, 1e-14), "{}", lgamma(0.5));
        assert!(close(lgamma(1.5), ln_sqrt_pi - 2f64.ln(), 1e-14));
        assert!(lgamma(1.0).abs() < 1e-14, "{}", lgamma(1.0));
        assert!(lgamma(2.0).abs() < 1e-14, "{}", lgamma(2.0));
        assert!(close(lgamma(10.0), 362_880f64.ln(), 1e-14));
        // ln (n-1)! summed term by term, including far out where only Stirling works.
        let mut ln_fact = 0.0f64;
        for n in 2..=2000u32 {
            if [3, 7, 11, 30, 171, 1000, 2000].contains(&n) {
                assert!(close(lgamma(f64::from(n)), ln_fact, 1e-13), "n={n}");
            }
            ln_fact += f64::from(n).ln();
        }
        // Near 0: lgamma(x) = -ln x - gamma x + (pi^2/12) x^2 + O(x^3).
        let x = 1e-8;
        let pi2 = std::f64::consts::PI.powi(2);
        assert!(close(
            lgamma(x),
            -x.ln() - EULER * x + pi2 / 12.0 * x * x,
            1e-14
        ));
        assert!(lgamma(0.0).is_nan() && lgamma(-1.0).is_nan());
    }

    #[test]
    fn lgamma_recurrence_across_the_shift() {
        for i in 1..400 {
            let x = f64::from(i) * 0.037 + 1e-3;
            let lhs = lgamma(x + 1.0);
            let rhs = lgamma(x) + x.ln();
            assert!((lhs - rhs).abs() < 1e-13 * lhs.abs().max(1.0), "x={x}");
        }
    }

    #[test]
    fn digamma_known_values() {
        assert!(close(digamma(1.0), -EULER, 1e-14), "{}", digamma(1.0));
        assert!(close(digamma(0.5), -1.963_510_026_021_423_5, 1e-14));
        let mut harmonic = 0.0f64;
        for n in 1..=500u32 {
            if [2, 5, 9, 10, 11, 50, 500].contains(&n) {
                assert!(
                    close(digamma(f64::from(n)), harmonic - EULER, 1e-14),
                    "n={n}"
                );
            }
            harmonic += 1.0 / f64::from(n);
        }
        let x = 1e6f64;
        let asym = x.ln() - 0.5 / x - 1.0 / (12.0 * x * x);
        assert!(close(digamma(x), asym, 1e-15));
        // Near 0: psi(x) = -1/x - gamma + (pi^2/6) x + O(x^2).
        let x = 1e-7;
        let pi2 = std::f64::consts::PI.powi(2);
        assert!(close(digamma(x), -1.0 / x - EULER + pi2 / 6.0 * x, 1e-14));
    }

    #[test]
    fn digamma_is_the_derivative_of_lgamma() {
        for &x in &[0.3, 0.9, 1.7, 4.2, 9.99, 10.01, 37.0, 250.0] {
            let h = 1e-5 * x;
            let fd = (lgamma(x + h) - lgamma(x - h)) / (2.0 * h);
            assert!(
                (fd - digamma(x)).abs() < 1e-7 * digamma(x).abs().max(1.0),
                "x={x}"
            );
        }
    }

    #[test]
    fn f32_twins_track_f64() {
        for i in 1..2000 {
            let x = (f64::from(i) * 0.0173).powi(2) + 1e-3;
            let l = lgamma(x);
            let d = digamma(x);
            let lf = f64::from(lgamma_f32(x as f32));
            let df = f64::from(digamma_f32(x as f32));
            // Absolute error near the roots (x = 1, 2 and 1.4616), relative elsewhere.
            assert!(
                (lf - l).abs() < 1e-6 * l.abs().max(1.0) + 2e-6,
                "lgamma x={x}"
            );
            assert!(
                (df - d).abs() < 1e-6 * d.abs().max(1.0) + 2e-6,
                "digamma x={x}"
            );
        }
    }
}
