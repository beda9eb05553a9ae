//! The lessons' computations (`cellvae::teach`, through `Session::teach_*`) on the
//! built-in demo with a briefly trained model: each test asserts what the lesson
//! claims (estimators agree and differ in variance, rotations keep p(x), ...).

use cellvae::explore::Explorer;
use cellvae::session::{Session, SessionOptions};
use cellvae::teach;
use cellvae::CountMatrix;
use std::sync::OnceLock;

mod common;

fn clock() -> f64 {
    0.0
}

fn demo() -> &'static CountMatrix {
    static DEMO: OnceLock<CountMatrix> = OnceLock::new();
    DEMO.get_or_init(common::demo)
}

const OPTIONS: &str =
    r#"{"top_genes": 200, "epochs": 30, "kl_warmup_epochs": 5, "lr": 0.003, "seed": 1}"#;

/// The demo's model trained once per test binary (its files, so each test opens its
/// own session: sessions are not `Send`).
fn trained_files() -> &'static (Vec<u8>, String) {
    static FILES: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    FILES.get_or_init(|| {
        let opts: SessionOptions = serde_json::from_str(OPTIONS).unwrap();
        let mut s = Session::new(demo(), &opts, clock).unwrap();
        let t = std::time::Instant::now();
        let st = s.step(100_000).unwrap();
        assert!(st.finished, "{st:?}");
        eprintln!(
            "trained the demo: {} epochs, {} steps in {:.1} s, ELBO {:?}",
            st.epoch,
            st.step,
            t.elapsed().as_secs_f64(),
            st.elbo
        );
        (
            s.model_safetensors().unwrap(),
            s.model_config_json().unwrap(),
        )
    })
}

fn trained() -> Session {
    let (st, json) = trained_files();
    let opts: SessionOptions = serde_json::from_str(OPTIONS).unwrap();
    Session::from_model(demo(), st, json, &opts, clock).unwrap()
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let out = f();
    eprintln!("{what}: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    out
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (x.abs().max(y.abs()).max(1e-12)))
        .fold(0.0, f32::max)
}

#[test]
fn a_rotated_model_decodes_the_same_and_keeps_log_px() {
    let mut s = trained();
    let original = s.params().unwrap();
    let angle = 0.9;
    let rot = timed("teach_rotation (200 cells x 50 samples)", || {
        s.teach_rotation([0, 1], angle, 200, 50, 7).unwrap()
    });
    let r = &rot.report;
    eprintln!("{r:?}");
    assert_eq!(r.n_cells_evaluated, 200);
    assert_eq!(r.cells_evaluated, "training");
    assert!(
        r.log_px_relative_change.abs() < 0.002,
        "IW log p(x) {} -> {}",
        r.log_px_iw_before_nats_per_cell,
        r.log_px_iw_after_nats_per_cell
    );
    assert!(r.log_px_iw_before_nats_per_cell.is_finite());
    // The decoded profile at R z of the rotated model is the original's at z.
    let zs: Vec<f32> = vec![0.0, 0.0, 1.0, -0.5, -1.5, 2.0, 0.3, 0.8];
    let rz: Vec<f32> = zs
        .chunks(2)
        .flat_map(|z| {
            let m = &r.rotation_row_major;
            [m[0] * z[0] + m[1] * z[1], m[2] * z[0] + m[3] * z[1]]
        })
        .collect();
    let mut before = Explorer::new(original.clone());
    let mut after = Explorer::new(rot.params.clone());
    let a = before.decode(&zs, 0, 1000.0).unwrap().proportions;
    let b = after.decode(&rz, 0, 1000.0).unwrap().proportions;
    let d = max_rel_diff(&a, &b);
    eprintln!("decoded at z vs rotated at R z: max relative difference {d:e}");
    assert!(d < 1e-3, "{d}");
    // A traversal along axis 1 is not the same walk any more.
    let (_, ta) = before
        .traverse_axis(&[0.0, 0.0], 1, -2.0, 2.0, 9, 0, 1000.0)
        .unwrap();
    let (_, tb) = after
        .traverse_axis(&[0.0, 0.0], 1, -2.0, 2.0, 9, 0, 1000.0)
        .unwrap();
    let d = max_rel_diff(&ta.proportions, &tb.proportions);
    eprintln!("traversal along axis 1, before vs after: max relative difference {d}");
    assert!(d > 0.05, "{d}");
    // A rotation by 0 changes nothing; bad planes are refused with the reason.
    let same = teach::identifiability::rotate_params(
        &original,
        &teach::identifiability::rotation_matrix(2, [0, 1], 0.0).unwrap(),
    )
    .unwrap();
    assert_eq!(same.values, original.values);
    let e = s
        .teach_rotation([1, 1], 0.3, 10, 5, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("two different latent axes"), "{e}");
}

#[test]
fn the_decoders_gradient_matches_finite_differences() {
    let mut s = trained();
    let p = s.params().unwrap();
    let m = &s.data().matrix;
    let row = m.dense_row(3);
    let lib: f32 = row.iter().sum();
    let z = [0.4f32, -0.7];
    let pass = teach::decoder::decode(&p, &z, &[0]);
    // The forward is explore's decoder, bit for bit.
    let rho = Explorer::new(p.clone())
        .decode(&z, 0, 1.0)
        .unwrap()
        .proportions;
    assert_eq!(pass.rho, rho);
    let (ll, dz) = teach::decoder::loglik_grad_z(&p, &pass, &[0], &row, &[lib]);
    let f = |zz: [f32; 2]| {
        let pass = teach::decoder::decode(&p, &zz, &[0]);
        f64::from(teach::decoder::loglik(&p, &pass, &[0], &row, &[lib])[0])
    };
    assert_eq!(f64::from(ll[0]), f(z));
    for j in 0..2 {
        let h = 1e-2f32;
        let (mut a, mut b) = (z, z);
        a[j] += h;
        b[j] -= h;
        let num = (f(a) - f(b)) / (2.0 * f64::from(h));
        let ana = f64::from(dz[j]);
        eprintln!("d log p / dz{j}: analytic {ana}, finite differences {num}");
        assert!(
            (num - ana).abs() < 0.02 * ana.abs() + 0.05,
            "{num} vs {ana}"
        );
    }
}

/// `d log p(x|z) / dz` against central differences for `params`, at a few points, for
/// cell `cell` in batch `batch`.
fn check_grad_z(p: &cellvae::model::Params, m: &CountMatrix, cell: usize, batch: u32) {
    let row = m.dense_row(cell);
    let lib: f32 = row.iter().sum();
    let zd = p.config.n_latent;
    for point in 0..3 {
        let z: Vec<f32> = (0..zd)
            .map(|j| 0.3 * (point as f32 - 1.0) + 0.2 * j as f32)
            .collect();
        let pass = teach::decoder::decode(p, &z, &[batch]);
        let (_, dz) = teach::decoder::loglik_grad_z(p, &pass, &[batch], &row, &[lib]);
        let f = |zz: &[f32]| {
            let pass = teach::decoder::decode(p, zz, &[batch]);
            f64::from(teach::decoder::loglik(p, &pass, &[batch], &row, &[lib])[0])
        };
        for j in 0..zd {
            // Small steps: the decoder is piecewise linear in z (ReLU), and a step
            // across a kink is not the derivative; the closer of two steps counts.
            let ana = f64::from(dz[j]);
            let num = [3e-3f32, 1e-3]
                .iter()
                .map(|&h| {
                    let (mut a, mut b) = (z.clone(), z.clone());
                    a[j] += h;
                    b[j] -= h;
                    (f(&a) - f(&b)) / (2.0 * f64::from(h))
                })
                .min_by(|x, y| (x - ana).abs().total_cmp(&(y - ana).abs()))
                .unwrap();
            assert!(
                (num - ana).abs() < 0.02 * ana.abs() + 0.05,
                "{:?}, {} layers, dim {j}: finite differences {num} vs {ana}",
                p.config.likelihood,
                p.config.n_layers
            );
        }
    }
}

#[test]
fn the_decoders_gradient_holds_for_every_likelihood_layers_and_batches() {
    let (sim, _) = teach::mixing::simulate_batch_effect(demo(), None, 0.5, 1).unwrap();
    for json in [
        r#"{"top_genes": 100, "epochs": 2, "likelihood": "zinb", "n_layers": 2, "n_latent": 3,
            "batch_key": "batch", "dispersion": "gene-batch", "seed": 4}"#,
        r#"{"top_genes": 100, "epochs": 2, "likelihood": "poisson", "seed": 4}"#,
    ] {
        let opts: SessionOptions = serde_json::from_str(json).unwrap();
        let mut s = Session::new(&sim, &opts, clock).unwrap();
        s.step(100_000).unwrap();
        let p = s.params().unwrap();
        let batch = s.data().batch_codes[7];
        check_grad_z(&p, &s.data().matrix, 7, batch);
        // The forward is explore's decoder, bit for bit, in each batch.
        let z = vec![0.1f32; p.config.n_latent];
        for k in 0..p.config.n_batches as u32 {
            let ours = teach::decoder::decode(&p, &z, &[k]);
            let theirs = Explorer::new(p.clone()).decode(&z, k, 1.0).unwrap();
            assert_eq!(ours.rho, theirs.proportions);
        }
        // And the lessons run on such a model.
        let e = s.teach_gradient_estimators(7, 200, 5, 1).unwrap();
        assert_eq!(e.mu.len(), p.config.n_latent);
        let v = s.teach_count_variance(&[], 10, 1).unwrap();
        let zinb = p.config.likelihood == cellvae::model::Likelihood::Zinb;
        assert_eq!(v.zinb_dropout_source == "model", zinb);
        let r = s.teach_rotation([0, 1], 0.5, 50, 20, 1).unwrap();
        assert!(
            r.report.log_px_relative_change.abs() < 0.01,
            "{:?}",
            r.report
        );
    }
}

#[test]
fn reparameterisation_and_score_function_agree_with_different_variances() {
    let mut s = trained();
    let g = timed("teach_gradient_estimators (2000 draws)", || {
        s.teach_gradient_estimators(5, 2000, 20, 11).unwrap()
    });
    assert_eq!((g.n_draws, g.n_shown, g.eps_shown.len()), (2000, 20, 40));
    assert!(g.sigma.iter().all(|&v| v > 0.0));
    for (j, z) in g.z_shown.iter().enumerate() {
        let want = g.mu[j % 2] + g.sigma[j % 2] * g.eps_shown[j];
        assert_eq!(*z, want);
    }
    let (rp, sf, sb) = (
        &g.reparameterization,
        &g.score_function,
        &g.score_function_baseline,
    );
    eprintln!("reparameterisation {rp:?}\nscore function {sf:?}\nwith baseline {sb:?}");
    eprintln!(
        "log p(x|z): mean {} sd {}",
        g.mean_loglik_nats, g.sd_loglik_nats
    );
    for j in 0..2 {
        for other in [sf, sb] {
            let se = (rp.standard_error_per_dim[j].powi(2)
                + other.standard_error_per_dim[j].powi(2))
            .sqrt();
            let diff = (rp.mean_per_dim[j] - other.mean_per_dim[j]).abs();
            assert!(diff < 4.0 * se, "dim {j}: {diff} vs standard error {se}");
        }
    }
    assert!(
        rp.total_variance * 10.0 < sb.total_variance,
        "{} vs {}",
        rp.total_variance,
        sb.total_variance
    );
    assert!(sb.total_variance < sf.total_variance);
    // Seeded: the same numbers again.
    assert_eq!(g, s.teach_gradient_estimators(5, 2000, 20, 11).unwrap());
    assert!(s.teach_gradient_estimators(100_000, 10, 1, 0).is_err());
}

#[test]
fn the_mixing_score_knows_separated_from_mixed() {
    // Two batches on two far-apart lines: separated; alternating on one line: mixed.
    let n = 200;
    let batch: Vec<u32> = (0..n).map(|i| (i % 2) as u32).collect();
    let separated: Vec<f32> = (0..n)
        .flat_map(|i| [i as f32 * 0.01 + 100.0 * (i % 2) as f32, 0.0])
        .collect();
    let mixed: Vec<f32> = (0..n).flat_map(|i| [i as f32 * 0.01, 0.0]).collect();
    let cells: Vec<usize> = (0..n).collect();
    let sep =
        teach::mixing::batch_mixing_entropy(&separated, 2, &batch, &cells, &cells, 10).unwrap();
    let mix = teach::mixing::batch_mixing_entropy(&mixed, 2, &batch, &cells, &cells, 10).unwrap();
    eprintln!("separated {sep}, mixed {mix}");
    assert!(sep < 1e-9, "{sep}");
    assert!(mix > 0.95, "{mix}");
    assert_eq!(
        teach::mixing::batch_mixing_entropy(&mixed, 2, &vec![0; n], &cells, &cells, 10),
        None
    );
}

#[test]
fn a_simulated_batch_effect_is_stratified_seeded_and_integer() {
    let m = demo();
    let (sim, rep) = teach::mixing::simulate_batch_effect(m, Some("cell_type"), 0.7, 3).unwrap();
    assert_eq!((sim.n_cells, sim.n_genes), (m.n_cells, m.n_genes));
    assert!(sim.data.iter().all(|&v| v > 0.0 && v == v.floor()));
    assert_eq!(rep.n_cells_a + rep.n_cells_b, m.n_cells);
    assert!(rep.n_cells_a.abs_diff(rep.n_cells_b) <= 1);
    // Stratified: each cell type splits evenly (the toggle carries across types).
    let (types, _) = cellvae::pipeline::column_codes(m.obs.get("cell_type").unwrap());
    let (batches, levels) = cellvae::pipeline::column_codes(sim.obs.get("batch").unwrap());
    assert_eq!(levels, vec!["A", "B"]);
    for t in 0..10u32 {
        let (mut a, mut b) = (0usize, 0usize);
        for c in 0..m.n_cells {
            if types[c] == Some(t) {
                if batches[c] == Some(0) {
                    a += 1
                } else {
                    b += 1
                }
            }
        }
        assert!(a.abs_diff(b) <= 1, "type {t}: {a} vs {b}");
    }
    // Batch A is untouched; batch B's genes moved by their factors.
    let a_cell = (0..m.n_cells).find(|&c| batches[c] == Some(0)).unwrap();
    assert_eq!(sim.dense_row(a_cell), m.dense_row(a_cell));
    let (mut before, mut after) = (vec![0.0f64; m.n_genes], vec![0.0f64; m.n_genes]);
    for c in (0..m.n_cells).filter(|&c| batches[c] == Some(1)) {
        for (j, (x, y)) in m.dense_row(c).iter().zip(sim.dense_row(c)).enumerate() {
            before[j] += f64::from(*x);
            after[j] += f64::from(y);
        }
    }
    let mut checked = 0;
    for j in 0..m.n_genes {
        if before[j] > 200.0 {
            let ratio = after[j] / before[j];
            let f = f64::from(rep.factor_per_gene[j]);
            assert!(
                (ratio / f - 1.0).abs() < 0.25,
                "gene {j}: ratio {ratio} factor {f}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked}");
    let (again, _) = teach::mixing::simulate_batch_effect(m, Some("cell_type"), 0.7, 3).unwrap();
    assert_eq!(again.data, sim.data);
    assert!(teach::mixing::simulate_batch_effect(m, Some("tissue"), 0.7, 3).is_err());
}

#[test]
fn the_batch_covariate_mixes_batches_better() {
    let (sim, _) = teach::mixing::simulate_batch_effect(demo(), Some("cell_type"), 0.7, 3).unwrap();
    let score = |batch_key: Option<&str>| {
        let mut opts: SessionOptions = serde_json::from_str(
            r#"{"top_genes": 200, "epochs": 25, "kl_warmup_epochs": 5, "lr": 0.003, "seed": 2}"#,
        )
        .unwrap();
        opts.batch_key = batch_key.map(str::to_string);
        let mut s = Session::new(&sim, &opts, clock).unwrap();
        s.step(100_000).unwrap();
        // Scored against the simulated batches whether or not the model saw them.
        let mean = s.latent().unwrap();
        let (codes, _) = cellvae::pipeline::column_codes(sim.obs.get("batch").unwrap());
        let batch: Vec<u32> = codes.iter().map(|c| c.unwrap()).collect();
        let cells: Vec<usize> = (0..sim.n_cells).collect();
        let mix = teach::mixing::batch_mixing(&mean, 2, &batch, None, &cells, 30, 0).unwrap();
        let own = s.teach_batch_mixing(30, 0).unwrap();
        (mix, own)
    };
    let t = std::time::Instant::now();
    let (without, own_without) = score(None);
    let (with, own_with) = score(Some("batch"));
    eprintln!(
        "two trainings in {:.1} s; without the covariate {without:?}; with {with:?}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        own_without.batch_mixing_entropy, None,
        "one batch in that session"
    );
    assert!(own_without.label_knn_accuracy.unwrap() > 0.3);
    assert_eq!(own_with.batch_mixing_entropy, with.batch_mixing_entropy);
    let (a, b) = (
        without.batch_mixing_entropy.unwrap(),
        with.batch_mixing_entropy.unwrap(),
    );
    assert!(a < b, "mixing without the covariate {a}, with {b}");
}

#[test]
fn elbo_surgery_adds_up() {
    let mut s = trained();
    let a = timed(
        "teach_aggregate_posterior (700 cells x 10 draws, 2000 prior)",
        || s.teach_aggregate_posterior(1000, 10, 2000, 8, 5).unwrap(),
    );
    eprintln!(
        "mean KL {} = MI {} (se {}) + KL(q(z)||p) {} (se {}); sum {} (se {}); ln N {}; \
         prior in holes {}",
        a.mean_kl_nats,
        a.mutual_information_nats,
        a.mutual_information_se_nats,
        a.kl_aggregate_prior_nats,
        a.kl_aggregate_prior_se_nats,
        a.sum_of_parts_nats,
        a.sum_of_parts_se_nats,
        a.log_n_cells,
        a.prior_fraction_in_holes
    );
    for v in [
        a.mean_kl_nats,
        a.mutual_information_nats,
        a.kl_aggregate_prior_nats,
        a.sum_of_parts_nats,
    ] {
        assert!(v.is_finite());
    }
    assert_eq!(a.n_cells, 700);
    assert!(
        (a.sum_of_parts_nats - a.mean_kl_nats).abs() < 4.0 * a.sum_of_parts_se_nats,
        "{} vs {}",
        a.sum_of_parts_nats,
        a.mean_kl_nats
    );
    assert!(
        (a.sum_of_parts_nats - a.mutual_information_nats - a.kl_aggregate_prior_nats).abs() < 1e-9
    );
    assert!(a.mutual_information_nats <= a.log_n_cells);
    assert!(a.mutual_information_nats > 0.0 && a.kl_aggregate_prior_nats > 0.0);
    assert_eq!(a.holes.len(), 8);
    assert!(a
        .holes
        .windows(2)
        .all(|w| w[0].log_q_aggregate <= w[1].log_q_aggregate));
    assert!(a.holes[0].log_q_aggregate < a.hole_threshold_log_q);
    assert!((0.0..1.0).contains(&a.prior_fraction_in_holes));
}

fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let mb = b.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x) - ma, f64::from(y) - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

#[test]
fn cells_generated_from_the_prior_look_like_the_data() {
    let mut s = trained();
    let g = timed("teach_generate (300 cells)", || {
        s.teach_generate(300, 0, 9).unwrap()
    });
    assert_eq!(g.counts.len(), 300 * g.n_genes);
    assert!(g.counts.iter().all(|&v| v >= 0.0 && v == v.floor()));
    let mean_total = g.total_counts.iter().map(|&v| f64::from(v)).sum::<f64>() / 300.0;
    eprintln!(
        "generated mean total {mean_total}, data mean library {}, log-normal ({}, {})",
        g.data_mean_library, g.log_library_mean, g.log_library_sd
    );
    assert!(
        (mean_total / g.data_mean_library - 1.0).abs() < 0.15,
        "{mean_total} vs {}",
        g.data_mean_library
    );
    for j in 0..2 {
        let z: Vec<f32> = g.z.iter().skip(j).step_by(2).copied().collect();
        let e: Vec<f32> = g.encoded_mean.iter().skip(j).step_by(2).copied().collect();
        let r = pearson(&z, &e);
        eprintln!("dimension {j}: correlation of z and the encoded mean {r}");
        assert!(r > 0.5, "{r}");
    }
    assert_eq!(g, s.teach_generate(300, 0, 9).unwrap());
    assert!(s.teach_generate(10, 3, 9).is_err());
}

#[test]
fn the_decoder_makes_genes_independent_given_z() {
    let mut s = trained();
    let centre = s.latent().unwrap()[..2].to_vec();
    let c = timed(
        "teach_decoder_correlations (20 genes, 40 neighbours x 10)",
        || {
            s.teach_decoder_correlations(20, &centre, 40, 10, 4)
                .unwrap()
        },
    );
    eprintln!(
        "mean |corr|: real overall {}, generated overall {}, real neighbourhood {}, \
         generated neighbourhood {}; agreement {}",
        c.real_overall.mean_abs_offdiag,
        c.generated_overall.mean_abs_offdiag,
        c.real_neighbourhood.mean_abs_offdiag,
        c.generated_neighbourhood.mean_abs_offdiag,
        c.overall_agreement
    );
    assert_eq!(c.genes.len(), 20);
    assert_eq!(c.neighbourhood_cells.len(), 40);
    assert_eq!(c.neighbourhood_cells[0], 0, "the centre is cell 0's mean");
    assert!(c.generated_neighbourhood.mean_abs_offdiag < c.real_overall.mean_abs_offdiag);
    assert!(c.overall_agreement > 0.3, "{}", c.overall_agreement);
    assert!(c.real_overall.correlation.iter().all(|v| v.is_finite()));
}

#[test]
fn count_likelihoods_differ_in_variance() {
    let mut s = trained();
    let v = timed("teach_count_variance", || {
        s.teach_count_variance(&[], 500, 2).unwrap()
    });
    assert_eq!(v.gene_mean.len(), 200);
    assert_eq!(v.curve_mean.len(), 60);
    assert!(v.theta_median > 0.0);
    for i in 0..60 {
        assert!(v.curve_mean[i] > 0.0);
        assert_eq!(v.poisson_variance[i], v.curve_mean[i]);
        assert!(v.nb_variance[i] > v.poisson_variance[i]);
        assert!(v.zinb_variance[i] > v.nb_variance[i]);
    }
    assert_eq!(v.zinb_dropout_source, "illustrative");
    assert_eq!(v.gaussian.len(), 5);
    for gg in &v.gaussian {
        assert_eq!(gg.samples_counts.len(), 500);
        assert!(
            gg.fraction_non_integer > 0.99,
            "{}",
            gg.fraction_non_integer
        );
    }
    // The data are overdispersed: most genes' variance exceeds their mean.
    let over = (0..200)
        .filter(|&j| v.gene_variance[j] > v.gene_mean[j])
        .count();
    assert!(over > 150, "{over}");
    assert!(s.teach_count_variance(&[5000], 10, 0).is_err());
}

#[test]
fn gradient_noise_falls_with_batch_size_and_samples() {
    let mut s = trained();
    let n = timed(
        "teach_gradient_noise (16/64/256; 1/4/16 x 32 cells; 8 repeats)",
        || {
            s.teach_gradient_noise(&[16, 64, 256], &[1, 4, 16], 32, 8, 6)
                .unwrap()
        },
    );
    for x in n.minibatch.iter().chain(&n.monte_carlo) {
        eprintln!("{x:?}");
    }
    for w in n.minibatch.windows(2) {
        assert!(w[1].trace_cov_all_params < w[0].trace_cov_all_params);
        assert!(w[1].trace_cov_decoder < w[0].trace_cov_decoder);
    }
    for w in n.monte_carlo.windows(2) {
        assert!(w[1].trace_cov_all_params < w[0].trace_cov_all_params);
    }
    assert!(n.n_params_decoder < n.n_params);
    assert!(s.teach_gradient_noise(&[1], &[1], 32, 8, 6).is_err());
}

#[test]
fn decoded_prior_points_lie_nearer_the_data_than_far_ones() {
    let mut s = trained();
    let d = timed("teach_decoded_distances (200 points x 3)", || {
        s.teach_decoded_distances(None, 200, 4.0, 8).unwrap()
    });
    for x in [&d.prior, &d.data_box, &d.wide_box] {
        eprintln!(
            "{}: median {} (q10 {}, q90 {})",
            x.source, x.median, x.q10, x.q90
        );
        assert!(x
            .distances
            .iter()
            .all(|v| v.is_finite() && (0.0..=1.0).contains(v)));
        assert_eq!(x.distances.len(), 200);
    }
    assert!(d.prior.median < d.wide_box.median);
}
