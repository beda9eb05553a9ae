//! Sampling counts from the decoder's distributions (NB, ZINB, Poisson) with keyed
//! random draws, for prior samples and posterior predictive checks in
//! [`crate::explore`]. Not a shader twin: nothing is sampled on the GPU.
#![allow(clippy::too_many_arguments)]

use super::counts::sigmoid;
use super::special::lgamma;
use crate::rng::{box_muller, unit_f32, Stream, SAMPLE};

/// Marsaglia-Tsang Gamma(shape, 1) for element `index`: attempt `j` uses block
/// `(step, index, j)`: normal from words 0 and 1 ([`box_muller`]), uniform from word 2;
/// shape < 1 is boosted by `U^(1/shape)`, U from word 3 of block `(step, index, 0)`.
fn gamma(s: &Stream, step: u32, index: u32, shape: f64) -> f64 {
    let boost = if shape < 1.0 {
        f64::from(unit_f32(s.block(step, index, 0)[3])).powf(1.0 / shape)
    } else {
        1.0
    };
    let d = if shape < 1.0 { shape + 1.0 } else { shape } - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    for j in 0..10_000u32 {
        let w = s.block(step, index, j);
        let z = f64::from(box_muller(w[0], w[1]));
        let v = (1.0 + c * z).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = f64::from(unit_f32(w[2]));
        if u.ln() < 0.5 * z * z + d - d * v + d * v.ln() {
            return d * v * boost;
        }
    }
    d * boost // unreachable in practice (acceptance rate > 0.95)
}

/// Poisson(lam) for element `index`: lam < 10 by inversion with the uniform of word 0 of
/// block `(step, index, 0x4000_0000)`; otherwise Hormann's PTRS, attempt `j` using words
/// 0 and 1 of block `(step, index, 0x4000_0000 + j)`.
fn poisson_draw(s: &Stream, step: u32, index: u32, lam: f64) -> f64 {
    const BASE: u32 = 0x4000_0000;
    if lam <= 0.0 {
        return 0.0;
    }
    if lam < 10.0 {
        let u = f64::from(unit_f32(s.block(step, index, BASE)[0]));
        let (mut k, mut p) = (0.0, (-lam).exp());
        let mut cdf = p;
        while u > cdf && k < 1000.0 {
            k += 1.0;
            p *= lam / k;
            cdf += p;
        }
        return k;
    }
    let (slam, loglam) = (lam.sqrt(), lam.ln());
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    for j in 0..10_000u32 {
        let w = s.block(step, index, BASE + j);
        let u = f64::from(unit_f32(w[0])) - 0.5;
        let v = f64::from(unit_f32(w[1]));
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln() <= -lam + k * loglam - lgamma(k + 1.0)
        {
            return k;
        }
    }
    lam.round()
}

/// Samples NB counts (gamma-Poisson: `lam ~ Gamma(theta, mu / theta)`, `x ~ Poisson(lam)`)
/// or, with `pi`, ZINB counts (0 with probability `sigmoid(pi)`, from the uniform of word 0
/// of block `(step, index, 0x8000_0000)`). Element `index = row * G + gene` of `mu`
/// (B x G) uses stream [`SAMPLE`] of `seed` at `step` as in [`gamma`]/[`poisson_draw`] above.
/// `log_theta`/`theta_row` as in [`super::counts`]; `out` (B x G) is overwritten.
pub fn nb(
    mu: &[f32],
    log_theta: &[f32],
    theta_row: &[u32],
    pi: Option<&[f32]>,
    b: usize,
    g: usize,
    seed: u64,
    step: u32,
    out: &mut [f32],
) {
    let s = Stream::new(seed, SAMPLE);
    for r in 0..b {
        for j in 0..g {
            let i = r * g + j;
            let index = i as u32;
            if let Some(p) = pi {
                let u = f64::from(unit_f32(s.block(step, index, 0x8000_0000)[0]));
                if u < sigmoid(f64::from(p[i])) {
                    out[i] = 0.0;
                    continue;
                }
            }
            let t = f64::from(log_theta[theta_row[r] as usize * g + j]).exp();
            let lam = gamma(&s, step, index, t) * f64::from(mu[i]) / t;
            out[i] = poisson_draw(&s, step, index, lam) as f32;
        }
    }
}

/// Samples Poisson counts with means `mu` (B x G flattened, `out` overwritten); element
/// `i` uses stream [`SAMPLE`] as in [`poisson_draw`] above.
pub fn poisson(mu: &[f32], seed: u64, step: u32, out: &mut [f32]) {
    let s = Stream::new(seed, SAMPLE);
    for (i, (o, &m)) in out.iter_mut().zip(mu).enumerate() {
        *o = poisson_draw(&s, step, i as u32, f64::from(m)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        (
            m,
            v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>() / n,
        )
    }

    #[test]
    fn samples_have_the_right_moments() {
        let n = 20_000;
        for &(mu, theta) in &[(5.0f32, 2.0f32), (3.0, 0.5), (500.0, 50.0), (0.2, 3.0)] {
            let mut out = vec![0.0f32; n];
            nb(
                &vec![mu; n],
                &[theta.ln()],
                &vec![0; n],
                None,
                n,
                1,
                11,
                0,
                &mut out,
            );
            assert!(out.iter().all(|&c| c >= 0.0 && c == c.floor()));
            let (m, v) = moments(&out);
            let (mu, theta) = (f64::from(mu), f64::from(theta));
            let want_v = mu + mu * mu / theta;
            assert!(
                (m - mu).abs() < 4.0 * (want_v / n as f64).sqrt(),
                "NB mean {m} vs {mu}"
            );
            assert!((v / want_v - 1.0).abs() < 0.1, "NB var {v} vs {want_v}");
        }
        for &mu in &[3.0f32, 40.0, 1000.0] {
            let mut out = vec![0.0f32; n];
            poisson(&vec![mu; n], 5, 1, &mut out);
            let (m, v) = moments(&out);
            let mu = f64::from(mu);
            assert!(
                (m - mu).abs() < 4.0 * (mu / n as f64).sqrt(),
                "Poisson mean {m} vs {mu}"
            );
            assert!((v / mu - 1.0).abs() < 0.05, "Poisson var {v} vs {mu}");
        }
        let mut out = vec![0.0f32; n];
        nb(
            &vec![4.0; n],
            &[0.0],
            &vec![0; n],
            Some(&vec![0.0; n]),
            n,
            1,
            3,
            0,
            &mut out,
        );
        let zeros = out.iter().filter(|&&c| c == 0.0).count() as f64 / n as f64;
        assert!(
            (zeros - (0.5 + 0.5 * 0.2)).abs() < 0.015,
            "ZINB zero fraction {zeros}"
        );
    }
}
