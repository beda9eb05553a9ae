//! `cellvae inspect` end to end: every format in ../shared/data read exactly (shape and
//! total from the Matrix Market text, computed here), several inputs at once, and bad
//! input as one clear line with a non-zero exit.
#![cfg(not(target_arch = "wasm32"))]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
}

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

struct Facts {
    cells: usize,
    genes: usize,
    nnz: usize,
    total: f64,
}

/// Reads Matrix Market text directly: the expected numbers, independent of the crate.
fn mtx_facts(path: &Path) -> Facts {
    let raw = std::fs::read(path).unwrap();
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut text)
            .unwrap();
    } else {
        text = String::from_utf8(raw).unwrap();
    }
    let mut lines = text.lines().filter(|l| !l.starts_with('%'));
    let dims: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let total = lines
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<f64>().unwrap())
        .sum();
    Facts {
        cells: dims[1],
        genes: dims[0],
        nnz: dims[2],
        total,
    }
}

fn inspect(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cellvae"))
        .arg("inspect")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn inspect_json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    let (ok, stdout, stderr) = inspect(&a);
    assert!(ok, "inspect {args:?} failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn assert_facts(j: &serde_json::Value, f: &Facts, what: &str) {
    assert_eq!(j["n_cells"], f.cells, "{what}: n_cells");
    assert_eq!(j["n_genes"], f.genes, "{what}: n_genes");
    assert_eq!(j["nnz"], f.nnz, "{what}: nnz");
    assert_eq!(
        j["total_counts"].as_f64().unwrap(),
        f.total,
        "{what}: total_counts"
    );
    assert!(j["obs_columns"].is_array(), "{what}: obs_columns");
    assert!(j["format"].is_string(), "{what}: format");
}

#[test]
fn every_10x_folder_reads_exactly() {
    for folder in [
        "pbmc68k_reduced_700",
        "wu2020_200",
        "mouse_10k_1000",
        "scanpy_10x_v3_chr21/filtered_feature_bc_matrix",
    ] {
        let dir = data(folder);
        let j = inspect_json(&[dir.to_str().unwrap()]);
        assert_facts(&j, &mtx_facts(&dir.join("matrix.mtx.gz")), folder);
        assert_eq!(j["format"], "10x-mtx");
        assert_eq!(j["integer_counts"], true);
    }
}

#[test]
fn tenx_h5_reads_exactly_and_several_at_once() {
    let h5 = data("scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5");
    let f = mtx_facts(&data(
        "scanpy_10x_v3_chr21/filtered_feature_bc_matrix/matrix.mtx.gz",
    ));
    let j = inspect_json(&[h5.to_str().unwrap()]);
    assert_facts(&j, &f, "10x h5");
    assert_eq!(j["format"], "10x-h5");
    // Two samples (the same file under two names): cells stacked, a `sample` column.
    let copy = tmp("second_sample.h5");
    std::fs::copy(&h5, &copy).unwrap();
    let j = inspect_json(&[h5.to_str().unwrap(), copy.to_str().unwrap()]);
    assert_eq!(j["n_cells"], 2 * f.cells);
    assert_eq!(j["n_genes"], f.genes);
    assert_eq!(j["total_counts"].as_f64().unwrap(), 2.0 * f.total);
    assert_eq!(j["format"], "10x-h5+10x-h5");
    let sample = j["obs_columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sample")
        .expect("sample column");
    assert_eq!(sample["n_levels"], 2);
}

#[test]
fn h5ad_reads_exactly_with_obs() {
    let j = inspect_json(&[data("wu2020_200/wu2020_200_v0_11.h5ad").to_str().unwrap()]);
    assert_facts(
        &j,
        &mtx_facts(&data("wu2020_200/matrix.mtx.gz")),
        "wu2020 h5ad",
    );
    assert_eq!(j["format"], "h5ad");
    let cols = j["obs_columns"].as_array().unwrap();
    let batch = cols
        .iter()
        .find(|c| c["name"] == "batch")
        .expect("batch column");
    assert_eq!(batch["n_levels"], 30);
}

#[test]
fn obs_table_joins_by_id() {
    let dir = data("pbmc68k_reduced_700");
    let j = inspect_json(&[
        dir.to_str().unwrap(),
        "--obs",
        dir.join("cells.tsv").to_str().unwrap(),
    ]);
    let cols = j["obs_columns"].as_array().unwrap();
    let ct = cols
        .iter()
        .find(|c| c["name"] == "cell_type")
        .expect("cell_type column");
    assert_eq!(ct["n_levels"], 10);
}

#[test]
fn dense_csv_reads_exactly() {
    // Build a cells-as-rows CSV from the pbmc Matrix Market text.
    let path = data("pbmc68k_reduced_700/matrix.mtx.gz");
    let f = mtx_facts(&path);
    let raw = std::fs::read(&path).unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .unwrap();
    let mut dense = vec![0u32; f.cells * f.genes];
    for l in text.lines().filter(|l| !l.starts_with('%')).skip(1) {
        let v: Vec<usize> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
        dense[(v[1] - 1) * f.genes + (v[0] - 1)] = v[2] as u32;
    }
    let genes = std::fs::read_to_string(data("pbmc68k_reduced_700/features.tsv")).unwrap();
    let barcodes = std::fs::read_to_string(data("pbmc68k_reduced_700/barcodes.tsv")).unwrap();
    let mut csv = String::from("cell_id");
    for g in genes.lines() {
        csv.push(',');
        csv.push_str(g.split('\t').nth(1).unwrap());
    }
    csv.push('\n');
    for (c, b) in barcodes.lines().enumerate() {
        csv.push_str(b);
        for g in 0..f.genes {
            csv.push_str(&format!(",{}", dense[c * f.genes + g]));
        }
        csv.push('\n');
    }
    let out = tmp("pbmc.csv");
    std::fs::write(&out, csv).unwrap();
    let j = inspect_json(&[out.to_str().unwrap()]);
    assert_facts(&j, &f, "dense csv");
    assert_eq!(j["format"], "csv");
}

#[test]
fn normalised_h5ad_is_refused_with_the_reason() {
    let p = data("pbmc68k_reduced_700/original_scanpy_10x_pbmc68k_reduced.h5ad");
    let (ok, _, stderr) = inspect(&[p.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("original_scanpy_10x_pbmc68k_reduced.h5ad"),
        "{stderr}"
    );
    assert!(stderr.contains("raw counts"), "{stderr}");
    // With --allow-non-counts it can still be inspected, and says it is not counts.
    let j = inspect_json(&[p.to_str().unwrap(), "--allow-non-counts"]);
    assert_eq!(j["n_cells"], 700);
    assert_eq!(j["integer_counts"], false);
}

#[test]
fn bad_inputs_exit_nonzero_with_one_clear_line() {
    let cases: Vec<(&str, &[u8], &[&str])> = vec![
        ("ragged.csv", b"cell,A,B\nc1,1,2\nc2,3\n", &["ragged.csv", "line 3"]),
        ("words.csv", b"cell,A,B\nc1,1,x\n", &["words.csv", "line 2"]),
        ("negative.csv", b"cell,A,B\nc1,1,-2\n", &["negative.csv", "negative"]),
        ("nan.csv", b"cell,A,B\nc1,1,NaN\n", &["nan.csv", "NaN"]),
        ("normalised.csv", b"cell,A,B\nc1,1.5,2\n", &["normalised.csv", "raw"]),
        ("empty.csv", b"", &["empty.csv", "empty"]),
        ("picture.h5ad", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", &["picture.h5ad", "HDF5"]),
        ("range.mtx", b"%%MatrixMarket matrix coordinate integer general\n2 2 1\n3 1 4\n", &["range.mtx", "line 3"]),
        ("huge.mtx", b"%%MatrixMarket matrix coordinate integer general\n1000000000000 1000000000000 1\n1 1 1\n", &["huge.mtx"]),
        ("notes.txt.h5", b"hello", &["notes.txt.h5", "HDF5"]),
    ];
    for (name, bytes, must) in cases {
        let p = tmp(name);
        std::fs::write(&p, bytes).unwrap();
        let (ok, _, stderr) = inspect(&[p.to_str().unwrap()]);
        assert!(!ok, "{name} was accepted");
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{name}: not one line: {stderr}"
        );
        assert!(stderr.starts_with("error: "), "{name}: {stderr}");
        for m in must {
            assert!(stderr.contains(m), "{name}: '{m}' missing from: {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let (ok, _, stderr) = inspect(&["/nonexistent/counts.h5ad"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/counts.h5ad"), "{stderr}");
}
