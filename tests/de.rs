//! Differential expression from the model (`cellvae::de`) on synthetic cells with
//! planted differences: a model trained here on two populations finds the planted genes
//! (with the right sign and size) and calls few others at the stated false discovery
//! rate; two halves of one population give almost nothing.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use cellvae::backend::cpu::sample;
use cellvae::data::CountMatrix;
use cellvae::de::{differential_expression, to_csv, DeOptions, DecodeAs};
use cellvae::model::{CpuBackend, ModelConfig, Params, TrainState};
use cellvae::rng;
use cellvae::train::{TrainConfig, Trainer};

const G: usize = 60;
const PER_GROUP: usize = 300;
/// Genes 0..8 are 4x higher in population B, genes 8..16 4x lower.
const UP: std::ops::Range<usize> = 0..8;
const DOWN: std::ops::Range<usize> = 8..16;

/// Two populations of Poisson counts (library about 2000) differing in 16 genes. The
/// planted genes are rare (0.2% each), so renormalising moves the others by log2 1.05.
fn data(seed: u64) -> CountMatrix {
    let base: Vec<f32> = (0..G)
        .map(|j| {
            if j < 16 {
                0.002
            } else {
                0.5 + rng::uniform(seed, 9, 0, j as u32)
            }
        })
        .collect();
    let rest: f32 = base[16..].iter().sum();
    let scale_rest = (1.0 - 0.032) / rest;
    let a: Vec<f32> = (0..G)
        .map(|j| {
            if j < 16 {
                base[j]
            } else {
                base[j] * scale_rest
            }
        })
        .collect();
    let mut b = a.clone();
    for j in UP {
        b[j] *= 4.0;
    }
    for j in DOWN {
        b[j] /= 4.0;
    }
    let sb: f32 = b.iter().sum();
    for v in &mut b {
        *v /= sb;
    }
    let n = 2 * PER_GROUP;
    let mut mu = vec![0f32; n * G];
    for c in 0..n {
        let lib = 1500.0 + 1000.0 * rng::uniform(seed, 10, 0, c as u32);
        let p = if c < PER_GROUP { &a } else { &b };
        for j in 0..G {
            mu[c * G + j] = lib * p[j];
        }
    }
    let mut counts = vec![0f32; n * G];
    sample::poisson(&mu, seed, 0, &mut counts);
    let triplets = counts
        .iter()
        .enumerate()
        .filter(|(_, &v)| v > 0.0)
        .map(|(i, &v)| ((i / G) as u32, (i % G) as u32, v))
        .collect();
    let mut m = CountMatrix::from_triplets(n, G, triplets);
    m.gene_ids = (0..G).map(|j| format!("g{j}")).collect();
    m.gene_names = m.gene_ids.clone();
    m.cell_ids = (0..n).map(|c| format!("c{c}")).collect();
    m
}

fn trained(m: &CountMatrix) -> Params {
    let mut cfg = ModelConfig::scvi_defaults(G, 1);
    cfg.n_hidden = 32;
    cfg.n_latent = 4;
    let mut tc = TrainConfig::scvi_defaults(m.n_cells);
    tc.epochs = 120;
    tc.kl_warmup_epochs = 40;
    tc.lr = 3e-3;
    let state = TrainState::new(Params::init(&cfg, 1).unwrap());
    let cells: Vec<usize> = (0..m.n_cells).collect();
    let mut t = Trainer::new(CpuBackend::new(), tc, state, cells, vec![], || 0.0).unwrap();
    t.run_epochs(m, 120, |_| {}).unwrap();
    t.params().unwrap()
}

#[test]
fn planted_genes_are_found_and_few_others_are_called() {
    let m = data(3);
    let params = trained(&m);
    let a: Vec<usize> = (0..PER_GROUP).collect();
    let b: Vec<usize> = (PER_GROUP..2 * PER_GROUP).collect();
    let opts = DeOptions {
        n_samples: 2000,
        n_pairs: 5000,
        ..DeOptions::default()
    };
    let r = differential_expression(&params, &m, &[], &b, &a, &opts).unwrap();
    assert_eq!(
        (r.n_cells1, r.n_cells2, r.genes.len()),
        (PER_GROUP, PER_GROUP, G)
    );
    let planted = |j: usize| j < 16;
    let called: Vec<usize> = r
        .genes
        .iter()
        .filter(|x| x.is_de_fdr)
        .map(|x| x.gene)
        .collect();
    assert_eq!(called.len(), r.n_de);
    let found = called.iter().filter(|&&j| planted(j)).count();
    let false_calls = called.len() - found;
    eprintln!(
        "called {} genes: {found} planted, {false_calls} not",
        called.len()
    );
    assert!(found >= 14, "found {found} of 16 planted genes: {called:?}");
    // At most the stated rate of the calls is false (with one call of slack).
    assert!(
        false_calls as f64 <= 0.05 * called.len() as f64 + 1.0,
        "{false_calls} false calls of {}",
        called.len()
    );
    // The planted genes come first, with the right sign and about the right size (log2 4 = 2;
    // the model shrinks it: 1.19-1.63 seen after the CPU kernels changed their rounding, so
    // 1.0-3.0 is asked).
    for x in &r.genes[..14] {
        assert!(planted(x.gene), "gene {} ranked among the first 14", x.gene);
    }
    let planted_lfc: Vec<String> = r
        .genes
        .iter()
        .filter(|x| planted(x.gene))
        .map(|x| format!("{}:{:.2}", x.gene, x.lfc_mean))
        .collect();
    eprintln!("planted genes' LFC means: {}", planted_lfc.join(" "));
    for x in &r.genes {
        if UP.contains(&x.gene) {
            assert!(
                x.lfc_mean > 1.0 && x.lfc_mean < 3.0,
                "up gene {}: {}",
                x.gene,
                x.lfc_mean
            );
        } else if DOWN.contains(&x.gene) {
            assert!(
                x.lfc_mean < -1.0 && x.lfc_mean > -3.0,
                "down gene {}: {}",
                x.gene,
                x.lfc_mean
            );
        } else {
            assert!(
                x.lfc_mean.abs() < 0.5,
                "null gene {}: {}",
                x.gene,
                x.lfc_mean
            );
        }
        assert!(x.lfc_std >= 0.0 && x.lfc_min <= x.lfc_mean && x.lfc_mean <= x.lfc_max);
        assert!((0.0..=1.0).contains(&x.proba_de));
        let bf = ((x.proba_de as f64 + 1e-8).ln() - (1.0 - x.proba_de as f64 + 1e-8).ln()) as f32;
        assert!((x.bayes_factor - bf).abs() < 1e-3);
        // Raw means follow the populations.
        if UP.contains(&x.gene) {
            assert!(x.raw_mean1 > 2.5 * x.raw_mean2);
        }
    }
    // Sorted by probability of change.
    assert!(r.genes.windows(2).all(|w| w[0].proba_de >= w[1].proba_de));

    // The same seed gives the same numbers; another seed, others close to them.
    let again = differential_expression(&params, &m, &[], &b, &a, &opts).unwrap();
    assert_eq!(again, r);
    let other = differential_expression(
        &params,
        &m,
        &[],
        &b,
        &a,
        &DeOptions {
            seed: 7,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_ne!(other.genes, r.genes);

    // Two halves of population A: nothing planted, (almost) nothing called.
    let (h1, h2): (Vec<usize>, Vec<usize>) = a.iter().partition(|&&c| c % 2 == 0);
    let null = differential_expression(&params, &m, &[], &h1, &h2, &opts).unwrap();
    eprintln!("null comparison calls {} genes", null.n_de);
    assert!(
        null.n_de <= 1,
        "two halves of one population: {} genes called",
        null.n_de
    );
    assert!(null.genes.iter().all(|x| x.lfc_mean.abs() < 0.25));

    // CSV: a header and one row per gene, in rank order.
    let csv = to_csv(&r, &m.gene_ids, &m.gene_names);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), G + 1);
    assert!(lines[0].starts_with("gene_id,gene_name,lfc_mean,lfc_std"));
    assert!(lines[1].starts_with(&format!("g{0},g{0},", r.genes[0].gene)));
}

#[test]
fn bad_requests_are_refused_in_plain_words() {
    let m = data(4);
    let mut cfg = ModelConfig::scvi_defaults(G, 2);
    cfg.n_hidden = 8;
    cfg.n_latent = 2;
    let p = Params::init(&cfg, 1).unwrap();
    let codes = vec![0u32; m.n_cells];
    let de = |g1: &[usize], g2: &[usize], o: &DeOptions| {
        differential_expression(&p, &m, &codes, g1, g2, o)
            .unwrap_err()
            .to_string()
    };
    let ok = DeOptions::default();
    assert!(de(&[], &[1], &ok).contains("group 1 has no cells"));
    assert!(de(&[1], &[], &ok).contains("group 2 has no cells"));
    assert!(de(&[1], &[100_000], &ok).contains("group 2 names cell 100000"));
    let e = de(
        &[1],
        &[2],
        &DeOptions {
            decode_as: DecodeAs::Batch(5),
            ..ok.clone()
        },
    );
    assert!(e.contains("batch 5 does not exist"), "{e}");
    assert!(de(
        &[1],
        &[2],
        &DeOptions {
            n_samples: 0,
            ..ok.clone()
        }
    )
    .contains("posterior samples"));
    assert!(de(
        &[1],
        &[2],
        &DeOptions {
            fdr_target: 1.5,
            ..ok.clone()
        }
    )
    .contains("false discovery rate"));
    assert!(de(
        &[1],
        &[2],
        &DeOptions {
            delta: f32::NAN,
            ..ok.clone()
        }
    )
    .contains("delta"));
}

/// Decoding every cell as each batch in turn pairs draws within a batch: with a model of
/// two batches, the answer differs from decoding as one batch, and every pair count is
/// used (no batch left without draws).
#[test]
fn decoding_as_all_batches_pairs_within_batches() {
    let m = data(5);
    let mut cfg = ModelConfig::scvi_defaults(G, 2);
    cfg.n_hidden = 16;
    cfg.n_latent = 3;
    let p = Params::init(&cfg, 2).unwrap();
    let codes: Vec<u32> = (0..m.n_cells as u32).map(|c| c % 2).collect();
    let a: Vec<usize> = (0..PER_GROUP).collect();
    let b: Vec<usize> = (PER_GROUP..2 * PER_GROUP).collect();
    let o = DeOptions {
        n_samples: 400,
        n_pairs: 1000,
        ..DeOptions::default()
    };
    let all = differential_expression(
        &p,
        &m,
        &codes,
        &a,
        &b,
        &DeOptions {
            decode_as: DecodeAs::AllBatches,
            ..o.clone()
        },
    )
    .unwrap();
    let b0 = differential_expression(
        &p,
        &m,
        &codes,
        &a,
        &b,
        &DeOptions {
            decode_as: DecodeAs::Batch(0),
            ..o.clone()
        },
    )
    .unwrap();
    let obs = differential_expression(&p, &m, &codes, &a, &b, &o).unwrap();
    assert_ne!(all.genes, b0.genes);
    assert_ne!(obs.genes, b0.genes);
    for r in [&all, &b0, &obs] {
        assert!(r
            .genes
            .iter()
            .all(|x| x.lfc_mean.is_finite() && x.proba_de.is_finite()));
    }
}

// ---------------------------------------------------------------------------------------
// Against scvi-tools (tests/fixtures/de/make_reference.py: scvi-tools 1.4.2's own
// `differential_expression(mode="change")` on a model it trained on the demo).

/// Ranks with ties averaged (1-based).
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn spearman_is_one_for_monotone_and_minus_one_for_reversed() {
    let a = [1.0, 2.0, 2.0, 5.0, 9.0];
    assert!((spearman(&a, &[0.1, 0.2, 0.2, 0.3, 7.0]) - 1.0).abs() < 1e-12);
    assert!((spearman(&a, &[9.0, 5.0, 5.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
    assert_eq!(ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
}

/// One comparison's rows as (gene, lfc_mean, proba_de), in file order.
fn table(text: &str, sep: char, gene_col: &str) -> Vec<(String, f64, f64)> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(sep).collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (g, l, p) = (col(gene_col), col("lfc_mean"), col("proba_de"));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(sep).collect();
            (
                f[g].to_string(),
                f[l].parse().unwrap(),
                f[p].parse().unwrap(),
            )
        })
        .collect()
}

/// How two tables of the same genes agree: Spearman of lfc_mean and of proba_de (genes
/// matched by name), and how many of the top 50 genes they share.
fn agreement(ours: &[(String, f64, f64)], theirs: &[(String, f64, f64)]) -> (f64, f64, usize) {
    let by_name: std::collections::HashMap<&str, &(String, f64, f64)> =
        theirs.iter().map(|r| (r.0.as_str(), r)).collect();
    let other = |r: &(String, f64, f64)| by_name[r.0.as_str()];
    let (a, b): (Vec<f64>, Vec<f64>) = ours.iter().map(|r| (r.1, other(r).1)).unzip();
    let (pa, pb): (Vec<f64>, Vec<f64>) = ours.iter().map(|r| (r.2, other(r).2)).unzip();
    let shared = top50(ours).intersection(&top50(theirs)).count();
    (spearman(&a, &b), spearman(&pa, &pb), shared)
}

/// The 50 genes of largest change: by probability of change, then |lfc_mean| (the
/// order cellvae reports; scvi-tools sorts by probability only, its ties unordered).
fn top50(rows: &[(String, f64, f64)]) -> std::collections::HashSet<String> {
    let mut r = rows.to_vec();
    r.sort_by(|a, b| b.2.total_cmp(&a.2).then(b.1.abs().total_cmp(&a.1.abs())));
    r.into_iter().take(50).map(|x| x.0).collect()
}

#[test]
fn cellvae_de_ranks_genes_as_scvi_tools_does() {
    use std::process::Command;
    let root = env!("CARGO_MANIFEST_DIR");
    let demo = format!("{root}/www/demo/pbmc68k_reduced_700");
    let cells = format!("{demo}/cells.tsv");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("de_scvi");
    let _ = std::fs::remove_dir_all(&out);
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_cellvae"))
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "cellvae {args:?}: {err}");
        (String::from_utf8_lossy(&o.stdout).to_string(), err)
    };
    let model = out.join("model");
    let model = model.to_str().unwrap();
    // The reference's architecture and data: scvi-tools' defaults, every cell.
    run(&[
        "train", &demo, "--obs", &cells, "--epochs", EPOCHS, "--seed", "0", "--out", model,
    ]);
    // (name, group 1, group 2, least Spearman of lfc_mean, least top-50 genes shared).
    // NK against CD8 T cells (31 and 54 cells, both cytotoxic) is a subtle comparison:
    // two cellvae models with seeds 0 and 1 agree on it only to Spearman 0.85 (0.97 and
    // 0.98 on the others), so two independently trained models cannot agree better; with
    // one model for both tools (the scvi-tools interop issue) it would be 0.9.
    for (name, g1, g2, least_rho, least_shared) in [
        ("monocyte_vs_b", "CD14+ Monocyte", Some("CD19+ B"), 0.9, 40),
        ("dendritic_vs_rest", "Dendritic", None, 0.9, 35),
        ("nk_vs_cd8", "CD56+ NK", Some("CD8+ Cytotoxic T"), 0.75, 20),
    ] {
        let mut args = vec![
            "de",
            model,
            &demo,
            "--obs",
            &cells,
            "--groupby",
            "cell_type",
            "--group1",
            g1,
        ];
        if let Some(g2) = g2 {
            args.extend(["--group2", g2]);
        }
        let (csv, err) = run(&args);
        assert!(
            err.contains("genes called at an expected false discovery rate"),
            "{err}"
        );
        // `cellvae de` prints the core's numbers: the same call in the library (as the
        // page's session makes it) writes the same CSV, byte for byte.
        assert_eq!(csv, core_csv(model, g1, g2), "{name}");
        let ours = table(&csv, ',', "gene_name");
        let reference =
            std::fs::read_to_string(format!("{root}/tests/fixtures/de/{name}.tsv")).unwrap();
        let theirs = table(&reference, '\t', "gene");
        assert_eq!(ours.len(), theirs.len(), "{name}: the same genes");
        let (rho, rho_p, shared) = agreement(&ours, &theirs);
        // Genes called: as many as scvi-tools calls, give or take a third (or 5).
        let called = |t: &str, col: usize, yes: &str| {
            t.lines()
                .skip(1)
                .filter(|l| l.split(if col == 9 { ',' } else { '\t' }).nth(col) == Some(yes))
                .count()
        };
        let (n_ours, n_theirs) = (called(&csv, 9, "true"), called(&reference, 5, "1"));
        eprintln!(
            "{name}: Spearman of lfc_mean {rho:.4}, of proba_de {rho_p:.4}, top 50 shared {shared}, \
             called {n_ours} (scvi-tools {n_theirs})"
        );
        assert!(rho >= least_rho, "{name}: Spearman {rho}");
        assert!(
            shared >= least_shared,
            "{name}: {shared} of the top 50 shared"
        );
        assert!(
            (n_ours as f64 - n_theirs as f64).abs() <= (n_theirs as f64 / 3.0).max(5.0),
            "{name}: {n_ours} genes called, scvi-tools {n_theirs}"
        );
    }
}

/// The CSV of `cellvae::de` for a saved model on the demo, with the default options.
fn core_csv(model: &str, g1: &str, g2: Option<&str>) -> String {
    use cellvae::de::groups_by_column;
    use cellvae::model::io::{from_safetensors, read_config};
    let m = common::demo();
    let text = std::fs::read_to_string(format!("{model}/config.json")).unwrap();
    let mf = read_config(&text, "config.json").unwrap();
    let bytes = std::fs::read(format!("{model}/model.safetensors")).unwrap();
    let params = from_safetensors(&bytes, &mf.model, "model.safetensors").unwrap();
    let prep = cellvae::pipeline::prepare_for_model(&mf, &m, None, None).unwrap();
    let (a, b) = groups_by_column(&prep.matrix, &prep.train_cells, "cell_type", g1, g2).unwrap();
    let r = differential_expression(
        &params,
        &prep.matrix,
        &prep.batch_codes,
        &a,
        &b,
        &DeOptions::default(),
    )
    .unwrap();
    to_csv(&r, &mf.gene_ids, &mf.gene_names)
}

/// Epochs of the cellvae model compared with scvi-tools' (which trained 400).
const EPOCHS: &str = "400";

/// On one fixed model (scvi-tools' own `nb_batch` fixture, read by cellvae), cellvae's
/// estimator and scvi-tools' `differential_expression(mode="change")`
/// (tests/fixtures/de/make_fixed_model_reference.py) agree: Spearman of the LFC means
/// 0.996 or more, nearly all of the top 50 genes shared, the same genes called give or
/// take a few (both draw their own posterior samples).
#[test]
fn on_the_same_model_cellvae_de_is_scvi_tools_de() {
    use cellvae::de::groups_by_column;
    use cellvae::model::scvi::read_scvi_model;
    let root = env!("CARGO_MANIFEST_DIR");
    let bytes = std::fs::read(format!("{root}/tests/fixtures/scvi/nb_batch/model.pt")).unwrap();
    let (files, params) = read_scvi_model(&bytes, "model.pt").unwrap();
    let m = common::demo();
    let prep = cellvae::pipeline::prepare_for_model(&files, &m, None, None).unwrap();
    for (name, g1, g2) in [
        ("monocyte_vs_b", "CD14+ Monocyte", Some("CD19+ B")),
        ("dendritic_vs_rest", "Dendritic", None),
        ("nk_vs_cd8", "CD56+ NK", Some("CD8+ Cytotoxic T")),
    ] {
        let (a, b) =
            groups_by_column(&prep.matrix, &prep.train_cells, "cell_type", g1, g2).unwrap();
        let r = differential_expression(
            &params,
            &prep.matrix,
            &prep.batch_codes,
            &a,
            &b,
            &DeOptions::default(),
        )
        .unwrap();
        let ours: Vec<(String, f64, f64)> = r
            .genes
            .iter()
            .map(|x| {
                (
                    files.gene_names[x.gene].clone(),
                    f64::from(x.lfc_mean),
                    f64::from(x.proba_de),
                )
            })
            .collect();
        let reference =
            std::fs::read_to_string(format!("{root}/tests/fixtures/de/fixed_{name}.tsv")).unwrap();
        let theirs = table(&reference, '\t', "gene");
        let (rho, _, shared) = agreement(&ours, &theirs);
        let theirs_called = reference
            .lines()
            .skip(1)
            .filter(|l| l.ends_with("\t1"))
            .count();
        eprintln!("{name}: Spearman {rho:.4}, top 50 shared {shared}, called {} (scvi-tools {theirs_called})", r.n_de);
        assert!(rho >= 0.99, "{name}: Spearman {rho}");
        assert!(shared >= 45, "{name}: {shared} of the top 50 shared");
        assert!(
            (r.n_de as i64 - theirs_called as i64).abs() <= 10,
            "{name}: {} vs {theirs_called}",
            r.n_de
        );
    }
}
