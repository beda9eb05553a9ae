//! The exploration API: decoding, traversals, prior samples and nearest cells.
#![cfg(not(target_arch = "wasm32"))]

use cellvae::explore::{nearest_cells, Explorer};
use cellvae::model::{Likelihood, ModelConfig, Params};
use cellvae::rng;

fn model(likelihood: Likelihood, n_batches: usize) -> Params {
    let mut c = ModelConfig::scvi_defaults(40, n_batches);
    c.n_hidden = 16;
    c.n_latent = 3;
    c.likelihood = likelihood;
    Params::init(&c, 9).unwrap()
}

#[test]
fn decoded_profiles_are_proportions_times_library() {
    let mut e = Explorer::new(model(Likelihood::Nb, 2));
    let z = [0.3f32, -1.0, 2.0, 0.0, 0.0, 0.0];
    let d = e.decode(&z, 1, 500.0).unwrap();
    assert_eq!(d.n, 2);
    for r in 0..2 {
        let s: f64 = d.proportions[r * 40..(r + 1) * 40]
            .iter()
            .map(|&v| v as f64)
            .sum();
        assert!((s - 1.0).abs() < 1e-5, "row {r} sums to {s}");
    }
    for (e, p) in d.expected.iter().zip(&d.proportions) {
        assert!((e - 500.0 * p).abs() <= 1e-4 * e.abs().max(1e-3));
    }
    // Different points and different batches decode differently.
    assert_ne!(d.proportions[..40], d.proportions[40..]);
    let other = e.decode(&z[..3], 0, 500.0).unwrap();
    assert_ne!(other.proportions[..], d.proportions[..40]);
}

#[test]
fn zinb_expected_counts_include_the_dropout_probability() {
    let mut e = Explorer::new(model(Likelihood::Zinb, 1));
    let d = e.decode(&[0.1, 0.2, 0.3], 0, 1000.0).unwrap();
    let below = d
        .expected
        .iter()
        .zip(&d.proportions)
        .filter(|(e, p)| **e < 1000.0 * **p * 0.999)
        .count();
    assert_eq!(below, 40, "every gene's expectation is scaled by 1 - pi");
}

#[test]
fn traversals_start_and_end_at_their_points() {
    let mut e = Explorer::new(model(Likelihood::Nb, 1));
    let (a, b) = ([-2.0f32, 0.5, 1.0], [2.0f32, -0.5, 0.0]);
    let (pts, d) = e.traverse_line(&a, &b, 5, 0, 100.0).unwrap();
    assert_eq!(pts.len(), 15);
    assert_eq!(&pts[..3], &a);
    assert_eq!(&pts[12..], &b);
    let da = e.decode(&a, 0, 100.0).unwrap();
    assert_eq!(&d.proportions[..40], &da.proportions[..]);
    let (pts, _) = e
        .traverse_axis(&[0.5, 0.5, 0.5], 1, -3.0, 3.0, 7, 0, 100.0)
        .unwrap();
    for s in 0..7 {
        assert_eq!(pts[s * 3], 0.5);
        assert_eq!(pts[s * 3 + 2], 0.5);
        assert!((pts[s * 3 + 1] - (-3.0 + s as f32)).abs() < 1e-6);
    }
    assert!(e.traverse_axis(&[0.0; 3], 3, -1.0, 1.0, 3, 0, 1.0).is_err());
}

#[test]
fn prior_samples_are_counts_around_their_expectation() {
    for lik in [Likelihood::Nb, Likelihood::Poisson, Likelihood::Zinb] {
        let mut e = Explorer::new(model(lik, 1));
        let (z, d, counts) = e.sample_prior(400, 0, 200.0, 4).unwrap();
        assert_eq!(z.len(), 1200);
        assert!(
            counts.iter().all(|&c| c >= 0.0 && c.fract() == 0.0),
            "{lik:?}: not counts"
        );
        let total: f64 = counts.iter().map(|&c| c as f64).sum();
        let expected: f64 = d.expected.iter().map(|&c| c as f64).sum();
        assert!(
            (total - expected).abs() < 0.1 * expected,
            "{lik:?}: sampled {total}, expected {expected}"
        );
        // Same seed, same samples.
        let (_, _, again) = e.sample_prior(400, 0, 200.0, 4).unwrap();
        assert_eq!(counts, again);
    }
}

#[test]
fn nearest_cells_are_the_nearest() {
    let n = 300;
    let pts: Vec<f32> = (0..n * 2).map(|i| rng::normal(3, 9, 0, i as u32)).collect();
    let q = [0.2f32, -0.1];
    let got = nearest_cells(&pts, 2, &q, 15);
    assert_eq!(got.len(), 15);
    let mut all: Vec<f32> = pts
        .chunks(2)
        .map(|p| ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt())
        .collect();
    all.sort_by(f32::total_cmp);
    for (i, (_, d)) in got.iter().enumerate() {
        assert!((d - all[i]).abs() < 1e-6);
    }
}

#[test]
fn bad_requests_are_errors() {
    let mut e = Explorer::new(model(Likelihood::Nb, 1));
    assert!(e.decode(&[1.0, 2.0], 0, 100.0).is_err());
    assert!(e.decode(&[1.0, 2.0, 3.0], 1, 100.0).is_err());
    assert!(e.decode(&[1.0, 2.0, 3.0], 0, 0.0).is_err());
    assert!(e.decode(&[f32::NAN, 2.0, 3.0], 0, 10.0).is_err());
}
