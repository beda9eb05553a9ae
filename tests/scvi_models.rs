//! scvi-tools SCVI models read by cellvae (`cellvae::model::scvi`) reproduce scvi-tools'
//! own latent means and normalised expression: five small models trained and saved by
//! scvi-tools 1.4.2 on the demo (tests/fixtures/scvi/make_models.py: NB and ZINB, with
//! and without batches, 1 and 2 layers, the batch given to the encoder), with
//! `get_latent_representation()` and `get_normalized_expression()` (at the posterior
//! mean) for the first 20 cells, recorded by that script.
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::demo;

use cellvae::eval::latent;
use cellvae::explore::Explorer;
use cellvae::model::scvi::read_scvi_model;
use cellvae::model::{Likelihood, ModelConfig};
use cellvae::pipeline::prepare_for_model;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scvi/");

fn tsv(path: &str) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// The largest relative difference, each element against max(|reference|, floor).
fn worst(ours: &[f32], theirs: &[Vec<f64>], floor: f64) -> f64 {
    let flat: Vec<f64> = theirs.iter().flatten().copied().collect();
    assert_eq!(ours.len(), flat.len());
    ours.iter()
        .zip(&flat)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(floor))
        .fold(0.0, f64::max)
}

#[test]
fn scvi_tools_models_reproduce_scvi_tools_outputs() {
    let m = demo();
    for (name, likelihood, n_batches, n_layers, encode) in [
        ("nb", Likelihood::Nb, 1, 1, false),
        ("zinb", Likelihood::Zinb, 1, 1, false),
        ("nb_batch", Likelihood::Nb, 3, 1, false),
        ("zinb_2layers", Likelihood::Zinb, 3, 2, false),
        ("nb_encode", Likelihood::Nb, 3, 1, true),
    ] {
        let path = format!("{FIXTURES}{name}/model.pt");
        let bytes = std::fs::read(&path).unwrap();
        let (files, params) = read_scvi_model(&bytes, "model.pt").unwrap();
        let c: &ModelConfig = &files.model;
        assert_eq!(
            (
                c.likelihood,
                c.n_batches,
                c.n_layers,
                c.encode_batch,
                c.n_hidden,
                c.n_latent,
                c.n_genes
            ),
            (likelihood, n_batches, n_layers, encode, 32, 5, 200),
            "{name}"
        );
        if n_batches > 1 {
            assert_eq!(files.batch_key.as_deref(), Some("phase"));
            assert_eq!(files.batch_levels, ["G1", "G2M", "S"]);
        }
        let genes: Vec<String> = std::fs::read_to_string(format!("{FIXTURES}genes.txt"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(files.gene_names, genes);
        let prep = prepare_for_model(&files, &m, None, None).unwrap();
        let cells: Vec<usize> = (0..20).collect();
        let (mean, _) = latent(&params, &prep.matrix, &prep.batch_codes, &cells);
        let lat = worst(&mean, &tsv(&format!("{FIXTURES}{name}/latent.tsv")), 1e-2);
        let mut ex = Explorer::new(params.clone());
        let mut rho = Vec::new();
        for (i, &c) in cells.iter().enumerate() {
            let z = &mean[i * 5..(i + 1) * 5];
            rho.extend(ex.decode(z, prep.batch_codes[c], 1.0).unwrap().proportions);
        }
        let norm = worst(
            &rho,
            &tsv(&format!("{FIXTURES}{name}/normalized.tsv")),
            1e-6,
        );
        eprintln!("{name}: latent means within {lat:.2e}, normalised expression within {norm:.2e} (relative)");
        assert!(lat <= 1e-4, "{name}: latent {lat}");
        assert!(norm <= 1e-4, "{name}: normalised {norm}");
    }
}

/// `cellvae encode`, `eval` and `de` take an scvi-tools model folder or its model.pt.
#[test]
fn the_command_line_takes_scvi_tools_models() {
    use std::process::Command;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pbmc68k_reduced_700");
    let cells = format!("{demo}/cells.tsv");
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_cellvae"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // encode, from the folder: scvi-tools' latent means.
    let folder = format!("{FIXTURES}nb_batch");
    let (ok, out, err) = run(&["encode", &folder, demo, "--obs", &cells]);
    assert!(ok, "{err}");
    assert!(err.contains("encoded 700 cells"), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 701);
    assert_eq!(lines[0], "cell_id\tz1\tz2\tz3\tz4\tz5");
    let want = tsv(&format!("{folder}/latent.tsv"));
    for (c, row) in want.iter().enumerate() {
        let got: Vec<f64> = lines[c + 1]
            .split('\t')
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        for (a, b) in got.iter().zip(row) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1e-2),
                "cell {c}: {a} vs {b}"
            );
        }
    }
    // eval, from model.pt: finite metrics.
    let pt = format!("{FIXTURES}zinb_2layers/model.pt");
    let (ok, out, err) = run(&["eval", &pt, demo, "--obs", &cells, "--eval-samples", "5"]);
    assert!(ok, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(m["heldout_elbo_per_cell"].as_f64().unwrap().is_finite());
    assert_eq!(m["n_genes"], 200);
    // de on an scvi-tools model.
    let (ok, out, err) = run(&[
        "de",
        &folder,
        demo,
        "--obs",
        &cells,
        "--groupby",
        "cell_type",
        "--group1",
        "CD19+ B",
        "--n-samples",
        "500",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 201);
    // The batch column the model needs, missing: said.
    let (ok, _, err) = run(&["encode", &folder, demo]);
    assert!(!ok);
    assert!(err.contains("batch column phase"), "{err}");
    // Not a model.
    let (ok, _, err) = run(&["encode", &cells, demo]);
    assert!(!ok && err.contains("is not a model"), "{err}");
}

/// cellvae's scvi-tools writer: reading back what it wrote gives the same parameters and
/// settings, bit for bit, and the file has the structure scvi-tools' own has (the same
/// zip records and state-dict tensors with the same shapes, in the same order, as the
/// fixture saved by scvi-tools for the same architecture). scvi-tools' own `SCVI.load`
/// of exported models: tests/fixtures/scvi_export/check_scvi_load.py (recorded).
#[test]
fn exported_models_read_back_and_have_scvi_tools_structure() {
    use cellvae::model::scvi::pickle::{self, Value};
    use cellvae::model::scvi::write::write_scvi_model;
    use cellvae::model::scvi::zip::Archive;
    let state = |bytes: &[u8]| -> (Vec<String>, Vec<(String, Vec<i64>)>) {
        let a = Archive::open(bytes, "model.pt").unwrap();
        let records: Vec<String> = a
            .entries
            .iter()
            .map(|e| e.name.trim_start_matches(|c| c != '/').to_string())
            .filter(|n| !n.starts_with("/data/") && !n.starts_with("/."))
            .collect();
        let root = pickle::read(
            &a.read(a.find("data.pkl").unwrap(), "model.pt", 1 << 26)
                .unwrap(),
        )
        .unwrap();
        let tensors = root
            .get("model_state_dict")
            .unwrap()
            .entries()
            .iter()
            .filter_map(|(k, v)| {
                let Value::Object { args, .. } = v else {
                    return None;
                };
                let shape = args
                    .items()?
                    .get(2)?
                    .items()?
                    .iter()
                    .map(|d| d.as_int().unwrap())
                    .collect();
                Some((k.as_str()?.to_string(), shape))
            })
            .collect();
        (records, tensors)
    };
    for name in ["nb", "zinb", "nb_batch", "zinb_2layers", "nb_encode"] {
        let original = std::fs::read(format!("{FIXTURES}{name}/model.pt")).unwrap();
        let (files, params) = read_scvi_model(&original, "model.pt").unwrap();
        let written = write_scvi_model(&files, &params).unwrap();
        let (files2, params2) = read_scvi_model(&written, "model.pt").unwrap();
        assert_eq!(params2.values, params.values, "{name}");
        assert_eq!(params2.buffers, params.buffers, "{name}");
        assert_eq!(files2.model, files.model, "{name}");
        assert_eq!(files2.gene_names, files.gene_names, "{name}");
        assert_eq!(files2.batch_levels, files.batch_levels, "{name}");
        let (rec_theirs, t_theirs) = state(&original);
        let (rec_ours, t_ours) = state(&written);
        for r in ["/data.pkl", "/byteorder", "/version"] {
            assert!(
                rec_theirs.iter().any(|x| x == r) && rec_ours.iter().any(|x| x == r),
                "{name}: record {r}"
            );
        }
        assert_eq!(t_ours, t_theirs, "{name}: state-dict tensors and shapes");
    }
}
