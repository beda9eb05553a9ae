//! Twin of `shaders/lib/counts.wgsl`: the per-element count log-pmfs and their
//! derivatives (NB, ZINB, Poisson), shared by [`super::nb_loglik`],
//! [`super::zinb_loglik`] and [`super::poisson_loglik`], and the per-cell loop that
//! sums them over genes.
//!
//! The log-likelihoods keep their full normalising constants and are fused with the
//! gradients with respect to the decoder's softmax logits and the log dispersion,
//! summed over genes per cell (f64 accumulation).
//!
//! Shapes, row-major: `x` (counts), `rho` (softmax output), `pi` (ZINB dropout logits),
//! `d_logits`, `d_pi` are B x G; `library` (observed library size l), `weight`, `loglik`
//! are B; `log_theta` and `d_log_theta` are K x G and `theta_row` (B) says which row of
//! that table each cell uses (all 0 for gene-wise dispersion, the batch code for
//! gene-batch). The mean is `mu = l * rho`.
//!
//! Gradients are of `sum_cells weight[c] * loglik[c]` (pass `-1/B` to minimise the mean
//! negative log-likelihood) and are overwritten. With `a_g = d loglik / d ln mu_g`
//! (NB: `theta (x - mu) / (theta + mu)`), `d_logits[k] = w (a_k - rho_k sum_g a_g)`;
//! `d_log_theta = theta d loglik / d theta` summed over the cells that use each row.
//! `mu` is floored at the smallest normal f64 so `x ln mu` stays finite when `rho`
//! underflows. Unlike scvi-tools no 1e-8 is added inside the logarithms.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

use super::special::{digamma, lgamma};

/// Counts up to this (integers) use exact finite sums instead of lgamma/digamma.
const SMALL_COUNT: f64 = 16.0;

/// `ln(k!)` for k = 0..=16 (from the exact factorials).
const LN_FACT: [f64; 17] = [
    0.0,
    0.0,
    std::f64::consts::LN_2,
    1.791_759_469_228_055,
    3.178_053_830_347_945_8,
    4.787_491_742_782_046,
    6.579_251_212_010_101,
    8.525_161_361_065_415,
    10.604_602_902_745_25,
    12.801_827_480_081_469,
    15.104_412_573_075_516,
    17.502_307_845_873_887,
    19.987_214_495_661_885,
    22.552_163_853_123_425,
    25.191_221_182_738_68,
    27.899_271_383_840_89,
    30.671_860_106_080_672,
];

/// `(lgamma(x + t) - lgamma(t), digamma(x + t) - digamma(t), lgamma(x + 1))` for x > 0;
/// small integer counts use `ln prod_j (t + j)`, `sum_j 1 / (t + j)` and a table.
pub(super) fn count_terms(x: f64, t: f64, grad: bool) -> (f64, f64, f64) {
    if x <= SMALL_COUNT && x == x.floor() && t < 1e15 {
        let (mut prod, mut psi) = (1f64, 0f64);
        let mut j = 0.0;
        while j < x {
            prod *= t + j;
            if grad {
                psi += 1.0 / (t + j);
            }
            j += 1.0;
        }
        (prod.ln(), psi, LN_FACT[x as usize])
    } else {
        let psi = if grad {
            digamma(x + t) - digamma(t)
        } else {
            0.0
        };
        (lgamma(x + t) - lgamma(t), psi, lgamma(x + 1.0))
    }
}

/// NB log pmf at `x` with mean `mu`, inverse dispersion `t = exp(ln_t)` (both given:
/// the callers take `exp` once per gene, not per cell), and (when `grad`)
/// `(d/d ln mu, t d/dt)`. One `ln` for a zero count.
pub(super) fn nb_elem(x: f64, ln_t: f64, t: f64, mu: f64, grad: bool) -> (f64, f64, f64) {
    let ln_tm = (t + mu).ln();
    let r = ln_tm - ln_t; // ln((t + mu) / t), accurate enough in f64 even for mu << t
    let mut lp = -t * r;
    let mut psi = 0.0;
    if x > 0.0 {
        let (lg, ps, lf) = count_terms(x, t, grad);
        lp += x * (mu.max(f64::MIN_POSITIVE).ln() - ln_tm) + lg - lf;
        psi = ps;
    }
    if !grad {
        return (lp, 0.0, 0.0);
    }
    let tm = t + mu;
    (lp, t * (x - mu) / tm, t * (psi + (mu - x) / tm - r))
}

/// `ln(1 + e^y)` without overflow.
pub(super) fn softplus(y: f64) -> f64 {
    y.max(0.0) + (-y.abs()).exp().ln_1p()
}

/// `1 / (1 + e^-y)`.
pub(super) fn sigmoid(y: f64) -> f64 {
    if y >= 0.0 {
        1.0 / (1.0 + (-y).exp())
    } else {
        let e = y.exp();
        e / (1.0 + e)
    }
}

/// ZINB (scvi-tools `log_zinb_positive`) from the NB terms and dropout logit `p`:
/// `(log p, d/d ln mu, t d/dt, d/dp)`.
pub(super) fn zinb_elem(
    x: f64,
    ln_t: f64,
    t: f64,
    mu: f64,
    p: f64,
    grad: bool,
) -> (f64, f64, f64, f64) {
    let (nb, a, th) = nb_elem(x, ln_t, t, mu, grad);
    if x > 0.0 {
        // ln sigmoid(-p) + ln NB(x).
        (nb - softplus(-p) - p, a, th, -sigmoid(p))
    } else {
        // ln(sigmoid(p) + sigmoid(-p) NB(0)) = softplus(-p + ln NB(0)) - softplus(-p).
        let s = -p + nb;
        let ss = sigmoid(s);
        (
            softplus(s) - softplus(-p),
            a * ss,
            th * ss,
            sigmoid(-p) - ss,
        )
    }
}

/// Poisson log pmf and `d/d ln mu = x - mu`.
pub(super) fn poisson_elem(x: f64, mu: f64) -> (f64, f64) {
    let mut lp = -mu;
    if x > 0.0 {
        lp += x * mu.max(f64::MIN_POSITIVE).ln() - count_terms(x, 1.0, false).2;
    }
    (lp, x - mu)
}

/// What an element gives the shared loop: `(log p, d/d ln mu, t d/dt, d/dp)` (the last two
/// 0 where the likelihood has no dispersion or dropout).
pub(super) type Elem = (f64, f64, f64, f64);

/// The gradients [`drive`] writes, all B x G and overwritten: the weighted softmax-logit
/// gradient, and when given the weighted per-element `t d/dt` (summed over cells by
/// [`sum_theta_rows`]) and `d/dp`.
pub(super) struct Grads<'a> {
    pub(super) d_logits: &'a mut [f32],
    pub(super) th: Option<&'a mut [f32]>,
    pub(super) d_pi: Option<&'a mut [f32]>,
}

/// Shared loop: per element `elem(row, gene, x, mu)`; writes `loglik` and, when given,
/// `grads`. Rows are split over threads ([`super::par`]); each row is computed as the
/// serial loop computes it, so results do not depend on the number of threads.
pub(super) fn drive<F: Fn(usize, usize, f64, f64) -> Elem + Sync>(
    x: &[f32],
    library: &[f32],
    rho: &[f32],
    weight: &[f32],
    b: usize,
    g: usize,
    loglik: &mut [f32],
    grads: Option<Grads<'_>>,
    elem: F,
) {
    let parts = super::par::ranges(b, b * g * 16);
    let lls = super::par::split_rows(&mut loglik[..b], &parts, 1);
    let n = parts.len();
    let (mut ds, mut ths, mut dps): (Vec<Option<&mut [f32]>>, Vec<_>, Vec<_>) =
        (Vec::new(), Vec::new(), Vec::new());
    match grads {
        Some(gr) => {
            ds.extend(
                super::par::split_rows(gr.d_logits, &parts, g)
                    .into_iter()
                    .map(Some),
            );
            match gr.th {
                Some(t) => ths.extend(super::par::split_rows(t, &parts, g).into_iter().map(Some)),
                None => ths.resize_with(n, || None),
            }
            match gr.d_pi {
                Some(t) => dps.extend(super::par::split_rows(t, &parts, g).into_iter().map(Some)),
                None => dps.resize_with(n, || None),
            }
        }
        None => {
            ds.resize_with(n, || None);
            ths.resize_with(n, || None);
            dps.resize_with(n, || None);
        }
    }
    let elem = &elem;
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(lls)
        .zip(ds.into_iter().zip(ths).zip(dps))
        .map(|((range, ll), ((mut d, mut th), mut dp))| {
            move || {
                for (r0, r) in range.enumerate() {
                    let l = f64::from(library[r]);
                    let w = weight.get(r).map_or(1.0, |&w| f64::from(w));
                    let (mut sum_lp, mut sum_a) = (0f64, 0f64);
                    for j in 0..g {
                        let (i, li) = (r * g + j, r0 * g + j);
                        let (lp, a, t, p) = elem(r, j, f64::from(x[i]), l * f64::from(rho[i]));
                        sum_lp += lp;
                        if let Some(d) = d.as_deref_mut() {
                            d[li] = (w * a) as f32;
                            sum_a += w * a;
                        }
                        if let Some(th) = th.as_deref_mut() {
                            th[li] = (w * t) as f32;
                        }
                        if let Some(dp) = dp.as_deref_mut() {
                            dp[li] = (w * p) as f32;
                        }
                    }
                    ll[r0] = sum_lp as f32;
                    if let Some(d) = d.as_deref_mut() {
                        for j in 0..g {
                            let li = r0 * g + j;
                            d[li] = (f64::from(d[li]) - f64::from(rho[r * g + j]) * sum_a) as f32;
                        }
                    }
                }
            }
        })
        .collect();
    super::par::run(jobs);
}

/// `(ln t, t)` of each entry of the dispersion table `log_theta` (K x G), in f64.
pub(super) fn dispersions(log_theta: &[f32]) -> Vec<(f64, f64)> {
    log_theta
        .iter()
        .map(|&v| (f64::from(v), f64::from(v).exp()))
        .collect()
}

/// `d_log_theta` (K x G, overwritten) from the per-element `th` (B x G) of [`drive`]:
/// each row of cells added to its dispersion row `theta_row[r]`, cell after cell.
pub(super) fn sum_theta_rows(
    th: &[f32],
    theta_row: &[u32],
    b: usize,
    g: usize,
    d_log_theta: &mut [f32],
) {
    d_log_theta.fill(0.0);
    for r in 0..b {
        let k = theta_row[r] as usize * g;
        for (d, &t) in d_log_theta[k..k + g]
            .iter_mut()
            .zip(&th[r * g..(r + 1) * g])
        {
            *d += t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::{nb_loglik, poisson_loglik, zinb_loglik};

    /// One gene per cell, one cell per count value: loglik of each x in `xs`.
    fn nb_each(xs: &[f32], mu: f32, theta: f32, pi: Option<f32>) -> Vec<f64> {
        let n = xs.len();
        let (lib, rho, rows) = (vec![mu; n], vec![1.0f32; n], vec![0u32; n]);
        let mut out = vec![0.0f32; n];
        match pi {
            Some(p) => zinb_loglik::forward(
                xs,
                &lib,
                &rho,
                &[theta.ln()],
                &rows,
                &vec![p; n],
                n,
                1,
                &mut out,
            ),
            None => nb_loglik::forward(xs, &lib, &rho, &[theta.ln()], &rows, n, 1, &mut out),
        }
        out.into_iter().map(f64::from).collect()
    }

    #[test]
    fn nb_pmf_known_numbers() {
        // x = 3, mu = 2.5, theta = 1.7: Gamma(4.7)/Gamma(1.7) = 1.7 * 2.7 * 3.7, 3! = 6.
        let (m, t) = (2.5f64, 1.7f64);
        let pmf = 1.7 * 2.7 * 3.7 / 6.0 * (t / (t + m)).powf(t) * (m / (t + m)).powi(3);
        let direct = lgamma(3.0 + t) - lgamma(t) - lgamma(4.0)
            + t * (t / (t + m)).ln()
            + 3.0 * (m / (t + m)).ln();
        assert!((pmf.ln() - direct).abs() < 1e-12);
        let got = nb_each(&[3.0], 2.5, 1.7, None)[0];
        assert!((got - pmf.ln()).abs() < 1e-5, "{got} vs {}", pmf.ln());
        // Both count paths (exact sums up to 16, lgamma above) against the formula.
        for x in 0..40 {
            let (xf, t, m) = (f64::from(x), 0.37f64, 7.5f64);
            let want = lgamma(xf + t) - lgamma(t) - lgamma(xf + 1.0)
                + t * (t / (t + m)).ln()
                + xf * (m / (t + m)).ln();
            let (got, _, _) = nb_elem(xf, t.ln(), t, m, false);
            assert!((got - want).abs() < 1e-12 * want.abs().max(1.0), "x={x}");
        }
        // mu -> 0: x = 0 is certain, x > 0 is very unlikely but finite.
        let (lp, a, th) = nb_elem(0.0, 0.5, 0.5f64.exp(), 0.0, true);
        assert!(lp.abs() < 1e-14 && a == 0.0 && th.abs() < 1e-14);
        assert!(nb_elem(2.0, 0.5, 0.5f64.exp(), 0.0, true).0 < -1000.0);
        assert!(nb_elem(2.0, 0.5, 0.5f64.exp(), 0.0, true).0.is_finite());
    }

    #[test]
    fn pmfs_sum_to_one() {
        let xs: Vec<f32> = (0..=2000).map(|x| x as f32).collect();
        for &(mu, theta) in &[(0.3f32, 0.5f32), (5.0, 2.0), (50.0, 0.8), (200.0, 20.0)] {
            let s: f64 = nb_each(&xs, mu, theta, None).iter().map(|l| l.exp()).sum();
            assert!((s - 1.0).abs() < 1e-5, "NB mu={mu} theta={theta}: {s}");
            for &p in &[-2.0f32, 0.0, 1.5] {
                let z = nb_each(&xs, mu, theta, Some(p));
                let s: f64 = z.iter().map(|l| l.exp()).sum();
                assert!((s - 1.0).abs() < 1e-5, "ZINB mu={mu} pi={p}: {s}");
                let nb0 = (f64::from(theta) / f64::from(theta + mu)).powf(f64::from(theta));
                let pz = sigmoid(f64::from(p)) + sigmoid(-f64::from(p)) * nb0;
                assert!((z[0].exp() - pz).abs() < 1e-6);
            }
        }
        for &mu in &[0.3f32, 5.0, 200.0] {
            let n = xs.len();
            let mut out = vec![0.0f32; n];
            poisson_loglik::forward(&xs, &vec![mu; n], &vec![1.0; n], n, 1, &mut out);
            let s: f64 = out.iter().map(|&l| f64::from(l).exp()).sum();
            assert!((s - 1.0).abs() < 1e-5, "Poisson mu={mu}: {s}");
            assert!(
                (f64::from(out[3]) - (3.0 * f64::from(mu).ln() - f64::from(mu) - 6f64.ln())).abs()
                    < 1e-5
            );
        }
    }
}
