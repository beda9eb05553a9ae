//! The f32 likelihoods against the f64 formulas (the CPU's reference before the f32
//! rows, kept here as the oracle), and the distributions' sums.

use super::super::count_rows::{
    add_big_nb, add_big_poisson, count_terms, cut_rows, fill_cols_body, finish_row,
    finish_row_body, nb_row, nb_row_body, poisson_row, poisson_row_body, sum_f64_body, zinb_row,
    zinb_row_body, Row, Tables,
};
use super::*;
use crate::backend::cpu::special::lgamma;
use crate::backend::cpu::{nb_loglik, poisson_loglik, zinb_loglik};

/// NB log pmf in f64 with `(d/d ln mu, t d/dt)`.
fn nb_f64(x: f64, t: f64, mu: f64) -> (f64, f64, f64) {
    let ln_tm = (t + mu).ln();
    let r = ln_tm - t.ln();
    let mut lp = -t * r;
    let mut psi = 0.0;
    if x > 0.0 {
        let (lg, ps, lf) = count_terms(x, t, true);
        lp += x * (mu.max(f64::MIN_POSITIVE).ln() - ln_tm) + lg - lf;
        psi = ps;
    }
    let tm = t + mu;
    (lp, t * (x - mu) / tm, t * (psi + (mu - x) / tm - r))
}

fn softplus(y: f64) -> f64 {
    y.max(0.0) + (-y.abs()).exp().ln_1p()
}

/// ZINB in f64: `(log p, d/d ln mu, t d/dt, d/dp)`.
fn zinb_f64(x: f64, t: f64, mu: f64, p: f64) -> (f64, f64, f64, f64) {
    let (nb, a, th) = nb_f64(x, t, mu);
    if x > 0.0 {
        (nb - softplus(-p) - p, a, th, -sigmoid(p))
    } else {
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

/// `got` within `rel` of `want` relative to `scale`.
fn near(got: f32, want: f64, rel: f64, scale: f64, what: &str) {
    let err = (f64::from(got) - want).abs();
    assert!(
        err <= rel * scale.max(want.abs()),
        "{what}: {got} vs {want} (error {err:e})"
    );
}

/// Every (count, mean, dispersion) of a grid through the f32 rows, against f64.
#[test]
fn f32_rows_match_the_f64_formulas() {
    let xs = [0.0f32, 1.0, 2.0, 5.0, 16.0, 17.0, 40.0, 300.0, 2.5];
    let mus = [1e-6f32, 0.01, 0.3, 5.0, 200.0, 1e4];
    let thetas = [0.01f32, 0.3, 2.0, 50.0, 1e4];
    let g = xs.len();
    for &theta in &thetas {
        let mut tables = Tables::default();
        let log_theta = vec![theta.ln(); g];
        tables.fill(&log_theta, g, true);
        let t = f64::from(tables.t[0]);
        let (t_row, inv_t, lg, psi) = tables.slab(0, g);
        for &mu in &mus {
            let rho = vec![1.0f32; g];
            let row = Row {
                x: &xs,
                rho: &rho,
                t: t_row,
                inv_t,
                lg,
                psi,
                library: mu,
                weight: 1.0,
            };
            let (mut lp, mut d, mut th) = (vec![0.0; g], vec![0.0; g], vec![0.0; g]);
            assert_eq!(nb_row::<true>(&row, &mut lp, &mut d, &mut th), 4); // 17, 40, 300, 2.5
            add_big_nb(&row, true, &mut lp, &mut th);
            let mut lp_only = vec![0.0; g];
            nb_row::<false>(&row, &mut lp_only, &mut [], &mut []);
            add_big_nb(&row, false, &mut lp_only, &mut []);
            assert_eq!(lp, lp_only);
            let pi = [-3.0f32, 0.0, 2.5, -0.5, 1.0, 4.0, -2.0, 0.3, 0.0];
            let (mut zlp, mut zd, mut zth, mut zdp) =
                (vec![0.0; g], vec![0.0; g], vec![0.0; g], vec![0.0; g]);
            zinb_row::<true>(&row, &pi, &mut zlp, &mut zd, &mut zth, &mut zdp);
            add_big_nb(&row, true, &mut zlp, &mut zth);
            for j in 0..g {
                let (x, m) = (f64::from(xs[j]), f64::from(mu));
                let what = format!("x={x} mu={mu} theta={theta}");
                let (wl, wa, wt) = nb_f64(x, t, m);
                // Sizes the terms of log p reach (the error is relative to them).
                let scale = 1.0 + x * (m.ln().abs() + t.ln().abs()) + t.min(m);
                near(lp[j], wl, 2e-6, scale, &format!("NB log p {what}"));
                near(d[j], wa, 2e-6, 1.0 + x + m.min(t), &format!("NB a {what}"));
                near(
                    th[j],
                    wt,
                    2e-5,
                    1.0 + x + m.min(t),
                    &format!("NB th {what}"),
                );
                let (zl, za, zt, zp) = zinb_f64(x, t, m, f64::from(pi[j]));
                near(zlp[j], zl, 2e-6, scale, &format!("ZINB log p {what}"));
                near(
                    zd[j],
                    za,
                    2e-6,
                    1.0 + x + m.min(t),
                    &format!("ZINB a {what}"),
                );
                near(
                    zth[j],
                    zt,
                    2e-5,
                    1.0 + x + m.min(t),
                    &format!("ZINB th {what}"),
                );
                near(zdp[j], zp, 1e-6, 1.0, &format!("ZINB dp {what}"));
            }
            let prow = Row {
                t: &[],
                inv_t: &[],
                lg: &[],
                psi: &[],
                ..row
            };
            let (mut plp, mut pd) = (vec![0.0; g], vec![0.0; g]);
            poisson_row::<true>(&prow, &mut plp, &mut pd);
            add_big_poisson(&xs, &mut plp);
            for j in 0..g {
                let (x, m) = (f64::from(xs[j]), f64::from(mu));
                let want = x * m.ln() - m - lgamma(x + 1.0);
                near(
                    plp[j],
                    want,
                    2e-6,
                    1.0 + x * m.ln().abs() + m,
                    "Poisson log p",
                );
                near(pd[j], x - m, 1e-6, 1.0 + x + m, "Poisson a");
            }
        }
    }
}

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
    // Both count paths (tables up to 16, f64 lgamma above) against the formula.
    let xs: Vec<f32> = (0..40).map(|x| x as f32).collect();
    let (t, m) = (0.37f32, 7.5f32);
    let got = nb_each(&xs, m, t, None);
    let t64 = f64::from(t.ln()).exp();
    for (x, &g) in got.iter().enumerate() {
        let (xf, m) = (x as f64, f64::from(m));
        let want = lgamma(xf + t64) - lgamma(t64) - lgamma(xf + 1.0)
            + t64 * (t64 / (t64 + m)).ln()
            + xf * (m / (t64 + m)).ln();
        assert!((g - want).abs() < 2e-6 * want.abs().max(1.0), "x={x}");
    }
    // mu -> 0: x = 0 is certain, x > 0 is very unlikely but finite.
    let got = nb_each(&[0.0, 2.0], 0.0, 0.5f32.exp(), None);
    assert!(got[0].abs() < 1e-30, "{}", got[0]);
    assert!(got[1] < -100.0 && got[1].is_finite());
}

/// The pmfs sum to 1 within f32 rounding: each log-pmf is within about `x * 2e-7` of
/// its value (`x ln(mu / (t + mu))` from a rounded ratio), and for a fixed mean and
/// dispersion that rounding has the same sign at every count, so it shows in the sum:
/// 1.1e-5 at mu = 200 (it was 1e-5 with the elements in f64; scaled by the mean here).
#[test]
fn pmfs_sum_to_one() {
    let xs: Vec<f32> = (0..=2000).map(|x| x as f32).collect();
    for &(mu, theta) in &[(0.3f32, 0.5f32), (5.0, 2.0), (50.0, 0.8), (200.0, 20.0)] {
        let tol = 1e-5 * f64::from(mu).max(1.0).sqrt();
        let s: f64 = nb_each(&xs, mu, theta, None).iter().map(|l| l.exp()).sum();
        assert!((s - 1.0).abs() < tol, "NB mu={mu} theta={theta}: {s}");
        for &p in &[-2.0f32, 0.0, 1.5] {
            let z = nb_each(&xs, mu, theta, Some(p));
            let s: f64 = z.iter().map(|l| l.exp()).sum();
            assert!((s - 1.0).abs() < tol, "ZINB mu={mu} pi={p}: {s}");
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
        assert!(
            (s - 1.0).abs() < 1e-5 * f64::from(mu).max(1.0).sqrt(),
            "Poisson mu={mu}: {s}"
        );
        assert!(
            (f64::from(out[3]) - (3.0 * f64::from(mu).ln() - f64::from(mu) - 6f64.ln())).abs()
                < 1e-5
        );
    }
}

/// The same rows over 1 or several threads, with gene-batch dispersion and groups
/// that end mid-way: identical bits (the groups, not the threads, fix the sums).
#[test]
fn results_do_not_depend_on_the_split() {
    let (b, g, k) = (37, 5000, 3);
    let mut seed = 7u64;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((seed >> 40) as f32) / (1u64 << 24) as f32
    };
    let x: Vec<f32> = (0..b * g)
        .map(|_| (next() * next() * 30.0).floor())
        .collect();
    let rho: Vec<f32> = (0..b * g).map(|_| next() / g as f32 * 2.0).collect();
    let library: Vec<f32> = (0..b).map(|_| 500.0 + next() * 5000.0).collect();
    let log_theta: Vec<f32> = (0..k * g).map(|_| next() * 4.0 - 2.0).collect();
    let theta_row: Vec<u32> = (0..b).map(|r| (r % k) as u32).collect();
    let weight = vec![-1.0 / b as f32; b];
    let run = |scratch: &mut CountScratch| {
        let (mut ll, mut dl, mut dt) = (vec![0.0; b], vec![0.0; b * g], vec![0.0; k * g]);
        nb_loglik::forward_backward_with(
            &x, &library, &rho, &log_theta, &theta_row, &weight, b, g, &mut ll, &mut dl, &mut dt,
            scratch,
        );
        (ll, dl, dt)
    };
    let mut scratch = CountScratch::default();
    let first = run(&mut scratch);
    // Reused scratch (stale groups from the last call) gives the same bits.
    assert_eq!(run(&mut scratch), first);
    // Rows one by one (one thread's order) give the same per-cell values.
    for r in [0usize, 15, 16, 36] {
        let mut ll = [0.0f32];
        nb_loglik::forward(
            &x[r * g..(r + 1) * g],
            &library[r..=r],
            &rho[r * g..(r + 1) * g],
            &log_theta,
            &theta_row[r..=r],
            1,
            g,
            &mut ll,
        );
        assert_eq!(ll[0].to_bits(), first.0[r].to_bits(), "row {r}");
    }
}

/// One scratch through calls of other shapes (genes, dispersion rows, with and without
/// gradients; 40 and 37 genes share a table stride) gives each call the bits of a fresh
/// scratch: the tables' zeros, kept between calls of one shape, are never stale.
#[test]
fn a_scratch_reused_across_shapes_gives_fresh_bits() {
    let data = |b: usize, g: usize, k: usize| {
        let x: Vec<f32> = (0..b * g).map(|i| ((i * 7) % 23) as f32).collect();
        let rho: Vec<f32> = (0..b * g)
            .map(|i| (1 + i % 5) as f32 / (3 * g) as f32)
            .collect();
        let library: Vec<f32> = (0..b).map(|r| 300.0 + 40.0 * r as f32).collect();
        let log_theta: Vec<f32> = (0..k * g).map(|i| (i % 9) as f32 * 0.4 - 1.5).collect();
        let theta_row: Vec<u32> = (0..b).map(|r| (r % k) as u32).collect();
        (x, rho, library, log_theta, theta_row)
    };
    let run = |b: usize, g: usize, k: usize, grad: bool, scratch: &mut CountScratch| {
        let (x, rho, library, log_theta, theta_row) = data(b, g, k);
        let (mut ll, mut dl, mut dt) = (vec![0.0; b], vec![0.0; b * g], vec![0.0; k * g]);
        let w = vec![-1.0 / b as f32; b];
        if grad {
            nb_loglik::forward_backward_with(
                &x, &library, &rho, &log_theta, &theta_row, &w, b, g, &mut ll, &mut dl, &mut dt,
                scratch,
            );
        } else {
            nb_loglik::forward_with(
                &x, &library, &rho, &log_theta, &theta_row, b, g, &mut ll, scratch,
            );
        }
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (bits(&ll), bits(&dl), bits(&dt))
    };
    let mut kept = CountScratch::default();
    for (b, g, k, grad) in [
        (9, 40, 1, true),
        (9, 37, 1, true),
        (9, 40, 2, false),
        (9, 40, 2, true),
        (5, 40, 1, true),
        (9, 300, 1, true),
        (9, 40, 1, true),
    ] {
        let fresh = run(b, g, k, grad, &mut CountScratch::default());
        assert_eq!(
            run(b, g, k, grad, &mut kept),
            fresh,
            "{b} x {g}, {k} rows, grad {grad}"
        );
    }
}

/// The count-term tables filled with the genes over threads (5,003 genes: two parts
/// where there are two threads) and wide give the bits of one baseline pass over all
/// genes; a row's end and the f64 sum, wide, give the baseline's bits.
#[test]
fn the_tables_and_row_ends_give_the_baseline_bits() {
    let g = 5003;
    let log_theta: Vec<f32> = (0..2 * g)
        .map(|i| ((i * 37) % 101) as f32 / 12.0 - 4.0)
        .collect();
    let mut tables = Tables::default();
    tables.fill(&log_theta, g, true);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    for kr in 0..2 {
        let (t, _, lg, psi) = tables.slab(kr, g);
        let (mut lg1, mut psi1) = (vec![0.0f32; lg.len()], vec![0.0f32; psi.len()]);
        let mut sum = vec![0.0f32; g];
        let one = vec![std::ops::Range { start: 0, end: g }];
        let mut lgs = cut_rows(&mut lg1, g, &one);
        let mut psis = cut_rows(&mut psi1, g, &one);
        fill_cols_body(t, &mut lgs[0], &mut psis[0], &mut sum);
        assert_eq!(bits(lg), bits(&lg1), "lg, dispersion row {kr}");
        assert_eq!(bits(psi), bits(&psi1), "psi, dispersion row {kr}");
    }
    let v: Vec<f32> = (0..g)
        .map(|i| ((i * 7919) % 1000) as f32 / 77.0 - 6.0)
        .collect();
    let rho: Vec<f32> = (0..g)
        .map(|i| (1 + i % 13) as f32 / (7 * g) as f32)
        .collect();
    let (mut dw, mut db) = (v.clone(), v.clone());
    let lw = finish_row(&mut dw, &rho, &v);
    let lb = finish_row_body(&mut db, &rho, &v);
    assert_eq!((lw.to_bits(), bits(&dw)), (lb.to_bits(), bits(&db)));
    assert_eq!(sum_f64(&v).to_bits(), sum_f64_body(&v).to_bits());
    assert_eq!(finish_row(&mut [], &rho, &v).to_bits(), lb.to_bits());
}

/// The row kernels called through their dispatch (AVX-512 or AVX2 where the CPU has
/// it) and as the baseline code (their bodies, compiled for SSE2) give the same bits.
#[test]
fn the_avx2_kernels_give_the_baseline_bits() {
    let g = 1003; // not a multiple of 8: the loops' tails too
    let mut seed = 11u64;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((seed >> 40) as f32) / (1u64 << 24) as f32
    };
    let x: Vec<f32> = (0..g).map(|_| (next() * next() * 40.0).floor()).collect();
    let rho: Vec<f32> = (0..g).map(|_| next() * next() / 100.0).collect();
    let pi: Vec<f32> = (0..g).map(|_| next() * 8.0 - 4.0).collect();
    let log_theta: Vec<f32> = (0..g).map(|_| next() * 6.0 - 3.0).collect();
    let mut tables = Tables::default();
    tables.fill(&log_theta, g, true);
    let (t, inv_t, lg, psi) = tables.slab(0, g);
    let row = Row {
        x: &x,
        rho: &rho,
        t,
        inv_t,
        lg,
        psi,
        library: 3000.0,
        weight: -0.25,
    };
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    let run_nb = |wide: bool| {
        let (mut lp, mut d, mut th) = (vec![0.0; g], vec![0.0; g], vec![0.5; g]);
        let big = if wide {
            nb_row::<true>(&row, &mut lp, &mut d, &mut th)
        } else {
            nb_row_body::<true>(&row, &mut lp, &mut d, &mut th)
        };
        (big, bits(&lp), bits(&d), bits(&th))
    };
    assert_eq!(run_nb(true), run_nb(false));
    let run_zinb = |wide: bool| {
        let mut o = [vec![0.0; g], vec![0.0; g], vec![0.5; g], vec![0.0; g]];
        let [lp, d, th, dp] = &mut o;
        let big = if wide {
            zinb_row::<true>(&row, &pi, lp, d, th, dp)
        } else {
            zinb_row_body::<true>(&row, &pi, lp, d, th, dp)
        };
        (big, o.map(|v| bits(&v)))
    };
    assert_eq!(run_zinb(true), run_zinb(false));
    let run_poisson = |wide: bool| {
        let (mut lp, mut d) = (vec![0.0; g], vec![0.0; g]);
        let big = if wide {
            poisson_row::<true>(&row, &mut lp, &mut d)
        } else {
            poisson_row_body::<true>(&row, &mut lp, &mut d)
        };
        (big, bits(&lp), bits(&d))
    };
    assert_eq!(run_poisson(true), run_poisson(false));
}
