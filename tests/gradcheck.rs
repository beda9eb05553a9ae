//! Central finite-difference checks of every CPU backward function.
//!
//! Inputs are small random shapes drawn from the Philox generator. Each check perturbs
//! one f32 input at a time by `+-h`, takes the actually representable perturbation in f64,
//! evaluates a scalar loss in f64 (a random projection `sum c_i y_i` of the outputs, or
//! the weighted log-likelihood), and compares the central difference to the analytic
//! gradient: `err = |analytic - numeric| / max(|numeric|, 0.1 * rms(numeric))`, maximum
//! over coordinates, must be below `TOL`. Run with `--nocapture` to see the errors.

use cellvae::backend::cpu::{
    batchnorm, kl, linear, nb_loglik, onehot, poisson_loglik, relu_dropout, reparam, sample,
    softmax, zinb_loglik,
};
use cellvae::rng::{normal, uniform, INIT};

/// Largest accepted relative error (f32 kernels, f64 differences).
const TOL: f64 = 5e-3;

/// `n` standard normals times `scale` from Philox (seed, step).
fn randn(n: usize, seed: u64, step: u32, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| scale * normal(seed, INIT, step, i as u32))
        .collect()
}

/// `n` uniforms in (lo, hi) from Philox (seed, step).
fn randu(n: usize, seed: u64, step: u32, lo: f32, hi: f32) -> Vec<f32> {
    (0..n)
        .map(|i| lo + (hi - lo) * uniform(seed, INIT, step, i as u32))
        .collect()
}

/// Central differences of `f` at `x0`, each coordinate moved by `+-h`.
fn numeric(x0: &[f32], h: f32, mut f: impl FnMut(&[f32]) -> f64) -> Vec<f64> {
    let mut x = x0.to_vec();
    (0..x0.len())
        .map(|i| {
            let (xp, xm) = (x0[i] + h, x0[i] - h);
            x[i] = xp;
            let fp = f(&x);
            x[i] = xm;
            let fm = f(&x);
            x[i] = x0[i];
            (fp - fm) / (f64::from(xp) - f64::from(xm))
        })
        .collect()
}

/// Maximum relative error of `analytic` against `numeric` (see the module docs).
fn max_err(analytic: &[f32], numeric: &[f64]) -> f64 {
    assert_eq!(analytic.len(), numeric.len());
    let rms = (numeric.iter().map(|n| n * n).sum::<f64>() / numeric.len() as f64).sqrt();
    let floor = (0.1 * rms).max(1e-9);
    analytic
        .iter()
        .zip(numeric)
        .map(|(&a, &n)| (f64::from(a) - n).abs() / n.abs().max(floor))
        .fold(0.0, f64::max)
}

/// Asserts the analytic gradient matches and prints the measured error.
fn check(name: &str, analytic: &[f32], numeric: &[f64]) {
    let err = max_err(analytic, numeric);
    println!(
        "gradcheck {name:<34} max rel err {err:.2e} ({} values)",
        analytic.len()
    );
    assert!(err < TOL, "{name}: max rel err {err:.3e} >= {TOL:e}");
}

/// `sum c_i y_i` in f64.
fn project(c: &[f32], y: &[f32]) -> f64 {
    c.iter()
        .zip(y)
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// The one-hot covariate rows: `y += W[category[r]]`, gradient w.r.t. W.
#[test]
fn onehot_rows() {
    let (b, k, n_out) = (5, 3, 4);
    let category = [2u32, 0, 2, 1, 0];
    let w = randn(k * n_out, 9, 0, 0.5);
    let y0 = randn(b * n_out, 9, 1, 1.0);
    let c = randn(b * n_out, 9, 2, 1.0);
    let mut dw = vec![f32::NAN; k * n_out];
    onehot::backward(&category, &c, n_out, &mut dw);
    let numeric_dw = numeric(&w, 0.1, |w| {
        let mut y = y0.clone();
        onehot::forward(&category, w, n_out, &mut y);
        project(&c, &y)
    });
    check("onehot dw", &dw, &numeric_dw);
}

#[test]
fn linear_dense() {
    let (b, n_in, n_out) = (3, 4, 5);
    let x = randn(b * n_in, 1, 0, 1.0);
    let w = randn(n_in * n_out, 1, 1, 0.5);
    let bias = randn(n_out, 1, 2, 0.5);
    let c = randn(b * n_out, 1, 3, 1.0);
    let mut y = vec![0.0; b * n_out];
    let (mut dx, mut dw, mut db) = (
        vec![0.0; b * n_in],
        vec![0.0; n_in * n_out],
        vec![0.0; n_out],
    );
    linear::backward(&x, &w, &c, b, n_in, n_out, Some(&mut dx), &mut dw, &mut db);
    let mut loss = |x: &[f32], w: &[f32], bias: &[f32]| {
        linear::forward(x, w, bias, b, n_in, n_out, &mut y);
        project(&c, &y)
    };
    check("linear dx", &dx, &numeric(&x, 0.1, |v| loss(v, &w, &bias)));
    check("linear dw", &dw, &numeric(&w, 0.1, |v| loss(&x, v, &bias)));
    check(
        "linear dbias",
        &db,
        &numeric(&bias, 0.1, |v| loss(&x, &w, v)),
    );
}

#[test]
fn linear_sparse_weights_match_dense() {
    // CSR 5 x 6 with ~half the entries stored; minibatch rows [4, 0, 2, 2].
    let (n_rows, n_in, n_out) = (5, 6, 3);
    let dense_all = randu(n_rows * n_in, 2, 0, 0.0, 1.0);
    let (mut indptr, mut indices, mut values) = (vec![0usize], vec![], vec![]);
    for r in 0..n_rows {
        for j in 0..n_in {
            if dense_all[r * n_in + j] > 0.5 {
                indices.push(j as u32);
                values.push((dense_all[r * n_in + j] * 10.0).floor());
            }
        }
        indptr.push(indices.len());
    }
    let rows = [4usize, 0, 2, 2];
    let b = rows.len();
    let w = randn(n_in * n_out, 2, 1, 0.5);
    let bias = randn(n_out, 2, 2, 0.5);
    let dy = randn(b * n_out, 2, 3, 1.0);
    let mut xt = vec![0.0f32; b * n_in];
    for (r, &cell) in rows.iter().enumerate() {
        for nz in indptr[cell]..indptr[cell + 1] {
            xt[r * n_in + indices[nz] as usize] = values[nz].ln_1p();
        }
    }
    let (mut dw_d, mut db_d) = (vec![0.0; n_in * n_out], vec![0.0; n_out]);
    linear::backward(&xt, &w, &dy, b, n_in, n_out, None, &mut dw_d, &mut db_d);
    let (mut dw_s, mut db_s) = (vec![f32::NAN; n_in * n_out], vec![f32::NAN; n_out]);
    linear::backward_sparse_weights(
        &indptr,
        &indices,
        &values,
        &rows,
        f32::ln_1p,
        &dy,
        n_in,
        n_out,
        &mut dw_s,
        &mut db_s,
    );
    let diff = dw_d
        .iter()
        .zip(&dw_s)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!("sparse vs dense dw: max abs diff {diff:.2e}");
    assert!(diff < 1e-5 && db_d == db_s);
    let mut y = vec![0.0; b * n_out];
    let num = numeric(&w, 0.1, |v| {
        linear::forward_sparse(
            &indptr,
            &indices,
            &values,
            &rows,
            f32::ln_1p,
            v,
            &bias,
            n_in,
            n_out,
            &mut y,
        );
        project(&dy, &y)
    });
    check("sparse linear dw", &dw_s, &num);
}

#[test]
fn batchnorm_train() {
    let (b, n) = (6, 4);
    let x = randn(b * n, 3, 0, 2.0);
    let gamma = randu(n, 3, 1, 0.5, 1.5);
    let beta = randn(n, 3, 2, 0.5);
    let c = randn(b * n, 3, 3, 1.0);
    let fwd = |x: &[f32], g: &[f32], be: &[f32], y: &mut [f32], xh: &mut [f32], is: &mut [f32]| {
        let (mut rm, mut rv, mut m) = (vec![0.0; n], vec![1.0; n], vec![0.0; n]);
        batchnorm::forward_train(
            x, b, n, g, be, 1e-3, 0.01, &mut rm, &mut rv, y, xh, &mut m, is,
        );
    };
    let (mut y, mut xh, mut is) = (vec![0.0; b * n], vec![0.0; b * n], vec![0.0; n]);
    fwd(&x, &gamma, &beta, &mut y, &mut xh, &mut is);
    let (mut dx, mut dg, mut db) = (vec![0.0; b * n], vec![0.0; n], vec![0.0; n]);
    batchnorm::backward(&c, &xh, &is, &gamma, b, n, &mut dx, &mut dg, &mut db);
    let loss = |x: &[f32], g: &[f32], be: &[f32]| {
        let (mut y, mut xh, mut is) = (vec![0.0; b * n], vec![0.0; b * n], vec![0.0; n]);
        fwd(x, g, be, &mut y, &mut xh, &mut is);
        project(&c, &y)
    };
    check(
        "batchnorm dx",
        &dx,
        &numeric(&x, 1e-2, |v| loss(v, &gamma, &beta)),
    );
    check(
        "batchnorm dgamma",
        &dg,
        &numeric(&gamma, 1e-2, |v| loss(&x, v, &beta)),
    );
    check(
        "batchnorm dbeta",
        &db,
        &numeric(&beta, 1e-2, |v| loss(&x, &gamma, v)),
    );
}

/// Batch norm with the fused ReLU + dropout epilogue (the GPU step's form): the backward
/// of `forward_train_act` (fixed mask) against differences of the forward.
#[test]
fn batchnorm_train_act() {
    let (b, n, p) = (6, 4, 0.3);
    let drop = relu_dropout::Dropout {
        p_drop: p,
        seed: 8,
        step: 2,
        stream: 1,
    };
    let fwd = |x: &[f32], g: &[f32], be: &[f32], y: &mut [f32], xh: &mut [f32]| {
        let (mut rm, mut rv) = (vec![0.0; n], vec![1.0; n]);
        let mut cache = batchnorm::BnCache::new(n);
        batchnorm::forward_train_act(
            x, b, n, g, be, 1e-3, 0.01, &mut rm, &mut rv, y, xh, &mut cache, &drop,
        );
        cache
    };
    // The first seed whose batch-norm outputs keep 0.05 away from the ReLU's kink (the
    // differences would cross it) and whose mask drops something.
    let inputs = |seed: u64| {
        let x = randn(b * n, seed, 0, 2.0);
        let gamma = randu(n, seed, 1, 0.5, 1.5);
        let beta = randn(n, seed, 2, 0.5);
        let (mut plain, mut xh) = (vec![0.0; b * n], vec![0.0; b * n]);
        let (mut rm, mut rv, mut m, mut is) =
            (vec![0.0; n], vec![1.0; n], vec![0.0; n], vec![0.0; n]);
        batchnorm::forward_train(
            &x, b, n, &gamma, &beta, 1e-3, 0.01, &mut rm, &mut rv, &mut plain, &mut xh, &mut m,
            &mut is,
        );
        (x, gamma, beta, plain)
    };
    let seed = (5..200)
        .find(|&seed| {
            let (x, gamma, beta, plain) = inputs(seed);
            let (mut y, mut xh) = (vec![0.0; b * n], vec![0.0; b * n]);
            fwd(&x, &gamma, &beta, &mut y, &mut xh);
            plain.iter().all(|v| v.abs() > 0.05)
                && y.iter().zip(&plain).any(|(&y, &v)| v > 0.0 && y == 0.0)
        })
        .expect("a seed away from the kink");
    let (x, gamma, beta, _) = inputs(seed);
    let c = randn(b * n, seed, 3, 1.0);
    let (mut y, mut xh) = (vec![0.0; b * n], vec![0.0; b * n]);
    let cache = fwd(&x, &gamma, &beta, &mut y, &mut xh);
    let (mut dx, mut dg, mut db) = (vec![0.0; b * n], vec![0.0; n], vec![0.0; n]);
    batchnorm::backward_act(
        &c,
        &y,
        &xh,
        &cache.inv_std,
        &gamma,
        b,
        n,
        p,
        &mut dx,
        &mut dg,
        &mut db,
    );
    let loss = |x: &[f32], g: &[f32], be: &[f32]| {
        let (mut y, mut xh) = (vec![0.0; b * n], vec![0.0; b * n]);
        fwd(x, g, be, &mut y, &mut xh);
        project(&c, &y)
    };
    check(
        "batchnorm+act dx",
        &dx,
        &numeric(&x, 1e-3, |v| loss(v, &gamma, &beta)),
    );
    check(
        "batchnorm+act dgamma",
        &dg,
        &numeric(&gamma, 1e-3, |v| loss(&x, v, &beta)),
    );
    check(
        "batchnorm+act dbeta",
        &db,
        &numeric(&beta, 1e-3, |v| loss(&x, &gamma, v)),
    );
}

#[test]
fn relu_dropout() {
    let (b, n, p) = (4, 6, 0.3);
    // Keep every input at least 0.05 from the kink at 0.
    let x: Vec<f32> = randn(b * n, 4, 0, 1.0)
        .into_iter()
        .map(|v| {
            if v.abs() < 0.05 {
                0.05f32.copysign(v) + v
            } else {
                v
            }
        })
        .collect();
    let c = randn(b * n, 4, 1, 1.0);
    let mut y = vec![0.0; b * n];
    relu_dropout::relu_dropout_forward(&x, b, n, p, 8, 2, 1, &mut y);
    let dropped = y
        .iter()
        .zip(&x)
        .filter(|(&y, &x)| x > 0.0 && y == 0.0)
        .count();
    assert!(dropped > 0, "the fixed mask should drop something");
    let mut dx = vec![0.0; b * n];
    relu_dropout::relu_dropout_backward(&c, &y, b, n, p, &mut dx);
    let num = numeric(&x, 1e-2, |v| {
        relu_dropout::relu_dropout_forward(v, b, n, p, 8, 2, 1, &mut y);
        project(&c, &y)
    });
    check("relu+dropout dx (fixed mask)", &dx, &num);
}

#[test]
fn softmax_backward() {
    let (b, g) = (3, 5);
    let logits = randn(b * g, 5, 0, 1.5);
    let c = randn(b * g, 5, 1, 1.0);
    let mut rho = vec![0.0; b * g];
    softmax::forward(&logits, b, g, &mut rho);
    let mut dl = vec![0.0; b * g];
    softmax::backward(&rho, &c, b, g, &mut dl);
    let num = numeric(&logits, 1e-2, |v| {
        softmax::forward(v, b, g, &mut rho);
        project(&c, &rho)
    });
    check("softmax dlogits", &dl, &num);
}

/// A small decoder output and counts drawn from it (plus two large counts, so both the
/// exact small-count sums and the lgamma path are exercised).
struct Counts {
    b: usize,
    g: usize,
    x: Vec<f32>,
    library: Vec<f32>,
    logits: Vec<f32>,
    weight: Vec<f32>,
}

fn counts(seed: u64) -> Counts {
    let (b, g) = (4, 7);
    let logits = randn(b * g, seed, 0, 1.0);
    let library = randu(b, seed, 1, 5.0, 40.0);
    let mut rho = vec![0.0; b * g];
    softmax::forward(&logits, b, g, &mut rho);
    let mu: Vec<f32> = (0..b * g).map(|i| library[i / g] * rho[i]).collect();
    let mut x = vec![0.0; b * g];
    sample::nb(&mu, &[0.3; 7], &[0; 4], None, b, g, seed, 0, &mut x);
    x[3] = 23.0;
    x[b * g - 2] = 41.0;
    let weight = randu(b, seed, 2, 0.5, 1.5);
    assert!(x.contains(&0.0) && x.iter().any(|&v| v > 0.0 && v < 16.0));
    Counts {
        b,
        g,
        x,
        library,
        logits,
        weight,
    }
}

/// Weighted log-likelihood of the given logits, dispersion and dropout logits.
fn weighted_loglik(
    d: &Counts,
    logits: &[f32],
    log_theta: &[f32],
    rows: &[u32],
    pi: Option<&[f32]>,
    poisson: bool,
) -> f64 {
    let (b, g) = (d.b, d.g);
    let mut rho = vec![0.0; b * g];
    softmax::forward(logits, b, g, &mut rho);
    let mut ll = vec![0.0; b];
    match (pi, poisson) {
        (_, true) => poisson_loglik::forward(&d.x, &d.library, &rho, b, g, &mut ll),
        (Some(p), _) => {
            zinb_loglik::forward(&d.x, &d.library, &rho, log_theta, rows, p, b, g, &mut ll)
        }
        (None, _) => nb_loglik::forward(&d.x, &d.library, &rho, log_theta, rows, b, g, &mut ll),
    }
    project(&d.weight, &ll)
}

#[test]
fn nb_gene_and_gene_batch() {
    for (k, rows) in [(1usize, vec![0u32; 4]), (2, vec![1, 0, 1, 1])] {
        let d = counts(6 + k as u64);
        let (b, g) = (d.b, d.g);
        let log_theta = randn(k * g, 6, 9, 1.0);
        let mut rho = vec![0.0; b * g];
        softmax::forward(&d.logits, b, g, &mut rho);
        let (mut ll, mut dl, mut dt) = (vec![0.0; b], vec![0.0; b * g], vec![f32::NAN; k * g]);
        nb_loglik::forward_backward(
            &d.x, &d.library, &rho, &log_theta, &rows, &d.weight, b, g, &mut ll, &mut dl, &mut dt,
        );
        assert!(
            (project(&d.weight, &ll)
                - weighted_loglik(&d, &d.logits, &log_theta, &rows, None, false))
            .abs()
                < 1e-4
        );
        let name = if k == 1 { "gene" } else { "gene-batch" };
        let num = numeric(&d.logits, 1e-2, |v| {
            weighted_loglik(&d, v, &log_theta, &rows, None, false)
        });
        check(&format!("NB dlogits ({name})"), &dl, &num);
        let num = numeric(&log_theta, 1e-2, |v| {
            weighted_loglik(&d, &d.logits, v, &rows, None, false)
        });
        check(&format!("NB dlog_theta ({name})"), &dt, &num);
    }
}

#[test]
fn zinb() {
    let d = counts(11);
    let (b, g) = (d.b, d.g);
    let rows = [0u32, 1, 1, 0];
    let log_theta = randn(2 * g, 11, 9, 1.0);
    let pi = randn(b * g, 11, 10, 1.5);
    let mut rho = vec![0.0; b * g];
    softmax::forward(&d.logits, b, g, &mut rho);
    let (mut ll, mut dl, mut dt, mut dp) = (
        vec![0.0; b],
        vec![0.0; b * g],
        vec![0.0; 2 * g],
        vec![0.0; b * g],
    );
    zinb_loglik::forward_backward(
        &d.x, &d.library, &rho, &log_theta, &rows, &pi, &d.weight, b, g, &mut ll, &mut dl, &mut dt,
        &mut dp,
    );
    let f = |l: &[f32], t: &[f32], p: &[f32]| weighted_loglik(&d, l, t, &rows, Some(p), false);
    assert!((project(&d.weight, &ll) - f(&d.logits, &log_theta, &pi)).abs() < 1e-4);
    check(
        "ZINB dlogits",
        &dl,
        &numeric(&d.logits, 1e-2, |v| f(v, &log_theta, &pi)),
    );
    check(
        "ZINB dlog_theta",
        &dt,
        &numeric(&log_theta, 1e-2, |v| f(&d.logits, v, &pi)),
    );
    check(
        "ZINB dpi",
        &dp,
        &numeric(&pi, 1e-2, |v| f(&d.logits, &log_theta, v)),
    );
}

#[test]
fn poisson() {
    let d = counts(12);
    let (b, g) = (d.b, d.g);
    let mut rho = vec![0.0; b * g];
    softmax::forward(&d.logits, b, g, &mut rho);
    let (mut ll, mut dl) = (vec![0.0; b], vec![0.0; b * g]);
    poisson_loglik::forward_backward(&d.x, &d.library, &rho, &d.weight, b, g, &mut ll, &mut dl);
    let num = numeric(&d.logits, 1e-2, |v| {
        weighted_loglik(&d, v, &[], &[], None, true)
    });
    check("Poisson dlogits", &dl, &num);
}

#[test]
fn wrong_gradients_are_caught() {
    // Negative control: NB logit gradient without the softmax term (a_k alone) must fail.
    let d = counts(6);
    let (b, g) = (d.b, d.g);
    let (log_theta, rows) = (randn(g, 6, 9, 1.0), vec![0u32; b]);
    let mut rho = vec![0.0; b * g];
    softmax::forward(&d.logits, b, g, &mut rho);
    let (mut ll, mut dl, mut dt) = (vec![0.0; b], vec![0.0; b * g], vec![0.0; g]);
    nb_loglik::forward_backward(
        &d.x, &d.library, &rho, &log_theta, &rows, &d.weight, b, g, &mut ll, &mut dl, &mut dt,
    );
    let num = numeric(&d.logits, 1e-2, |v| {
        weighted_loglik(&d, v, &log_theta, &rows, None, false)
    });
    for r in 0..b {
        let s: f32 = dl[r * g..(r + 1) * g].iter().sum();
        assert!(s.abs() < 1e-3, "softmax gradients sum to zero per cell");
    }
    let wrong: Vec<f32> = (0..b * g).map(|i| dl[i] + rho[i] * 0.5).collect();
    assert!(max_err(&wrong, &num) > 10.0 * TOL);
    let scaled: Vec<f32> = dt.iter().map(|v| v * 1.02).collect();
    let num_t = numeric(&log_theta, 1e-2, |v| {
        weighted_loglik(&d, &d.logits, v, &rows, None, false)
    });
    assert!(max_err(&scaled, &num_t) > TOL, "a 2% error must be visible");
}

#[test]
fn kl_and_reparam() {
    let (b, z) = (3, 4);
    let mean = randn(b * z, 13, 0, 1.0);
    let v = randn(b * z, 13, 1, 1.0);
    let w = randu(b, 13, 2, 0.2, 2.0);
    let (mut dm, mut dv) = (vec![0.0; b * z], vec![0.0; b * z]);
    kl::backward(&mean, &v, &w, b, z, &mut dm, &mut dv);
    let mut klv = vec![0.0; b];
    let mut loss = |m: &[f32], v: &[f32]| {
        kl::forward(m, v, b, z, &mut klv);
        project(&w, &klv)
    };
    check("KL dmean", &dm, &numeric(&mean, 1e-2, |x| loss(x, &v)));
    check("KL dv", &dv, &numeric(&v, 1e-2, |x| loss(&mean, x)));

    let c = randn(b * z, 13, 3, 1.0);
    let (mut eps, mut zs) = (vec![0.0; b * z], vec![0.0; b * z]);
    reparam::forward(&mean, &v, b, z, 21, 5, 2, &mut eps, &mut zs);
    let (mut dm, mut dv) = (vec![f32::NAN; b * z], vec![f32::NAN; b * z]);
    reparam::backward(&c, &eps, &v, b, z, &mut dm, &mut dv);
    let mut loss = |m: &[f32], v: &[f32]| {
        reparam::forward(m, v, b, z, 21, 5, 2, &mut eps, &mut zs);
        project(&c, &zs)
    };
    check("reparam dmean", &dm, &numeric(&mean, 1e-2, |x| loss(x, &v)));
    check("reparam dv", &dv, &numeric(&v, 1e-2, |x| loss(&mean, x)));
}
