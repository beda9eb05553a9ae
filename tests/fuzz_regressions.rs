//! What the fuzz targets (`fuzz/`, `cargo +nightly fuzz run <target>`) found, replayed on
//! stable: every file in `tests/fuzz_regressions/<target>/` is run through the same
//! target body the fuzzer ran (`tests/fuzz_regressions/targets.rs`) and must not panic;
//! the tests after it check each finding's error message.
//!
//! `write_fuzz_seeds` (ignored) writes the binary seed corpora (`fuzz/corpus/<target>/seed-*`)
//! from the demo data and small HDF5 files built here:
//! `cargo test --test fuzz_regressions -- --ignored write_fuzz_seeds`.

#[path = "fuzz_regressions/targets.rs"]
mod targets;

use cellvae::data::{read_inputs, InputFile, ReadOptions};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn findings(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(ROOT).join("tests/fuzz_regressions").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn every_saved_finding_replays_without_panic() {
    let mut failed = Vec::new();
    let mut n = 0;
    for (target, run) in targets::TARGETS {
        for path in findings(target) {
            let data = std::fs::read(&path).unwrap();
            n += 1;
            if std::panic::catch_unwind(|| run(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {n} findings panic: {failed:?}",
        failed.len()
    );
}

/// The error `read_inputs` gives for one file under the fuzzer's options.
fn read_error(name: &str, bytes: &[u8]) -> String {
    let opts = targets::options(false, Default::default());
    match read_inputs(&[InputFile::new(name, bytes.to_vec())], None, &opts) {
        Ok(m) => panic!("{name} was read ({} x {})", m.n_cells, m.n_genes),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_header_claiming_more_rows_than_the_limit_is_refused_before_allocating() {
    let mtx = b"%%MatrixMarket matrix coordinate integer general\n50000000 50000000 0\n";
    let e = read_error("big.mtx", mtx);
    assert!(e.contains("big.mtx") && e.contains("line 2"), "{e}");
    assert!(e.contains("more than the 100000"), "{e}");
    // The default limit still applies without the option.
    let opts = ReadOptions::default();
    let e = read_inputs(
        &[InputFile::new(
            "big.mtx",
            b"%%MatrixMarket matrix coordinate integer general\n50000001 2 0\n".to_vec(),
        )],
        None,
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("more than the 50000000"), "{e}");
}

fn finding(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(ROOT)
        .join("tests/fuzz_regressions")
        .join(target)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// codec: a CVMATRX1 header with `n_cells` = 2^64 - 1 overflowed `n_cells + 1` in
/// `CountMatrix::validate` (a panic in the page's worker); now an error.
#[test]
fn codec_n_cells_of_u64_max_is_refused() {
    for name in ["n-cells-max-min", "n-cells-max-found"] {
        let e = cellvae::session::codec::decode_matrix(&finding("codec", name))
            .unwrap_err()
            .to_string();
        assert!(e.contains("handed over between threads"), "{name}: {e}");
    }
}

/// tenx_h5 / h5ad: a chunked dataset declares its dimensions and hdf5-pure fills in the
/// chunks it lacks, so this 2 KB file (a 10x `.h5` whose `indices`, `data` and last
/// `indptr` say 2^28 values) took 5 GB and a minute to read. Found by a probe made
/// while the targets ran; now refused before reading, as damaged.
#[test]
fn h5_a_chunked_dataset_larger_than_the_file_can_hold_is_refused_before_reading() {
    let bytes = finding("tenx_h5", "chunked-declares-2pow28-values.h5");
    let t = std::time::Instant::now();
    let e = read_inputs(
        &[InputFile::new("big.h5", bytes)],
        None,
        &ReadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("big.h5") && e.contains("dataset /matrix/indices"),
        "{e}"
    );
    assert!(
        e.contains("declares 268435456 values") && e.contains("the file is damaged"),
        "{e}"
    );
    assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
}

/// A dataset that fits the file but expands past `max_expanded_bytes` is too large,
/// not damaged, and the limit is stated.
#[test]
fn h5_a_dataset_past_the_expanded_limit_is_too_large() {
    let path = Path::new(ROOT).join("fuzz/corpus/tenx_h5/seed-v3.h5");
    let opts = ReadOptions {
        max_expanded_bytes: Some(16),
        ..Default::default()
    };
    let e = read_inputs(
        &[InputFile::new("v3.h5", std::fs::read(path).unwrap())],
        None,
        &opts,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("more than the 16 bytes cellvae reads"), "{e}");
    assert!(e.contains("not damaged"), "{e}");
}

/// model: a 1 KB config.json may describe 8 layers of 8192 units (about 4 GB of
/// parameters); from_safetensors refuses it before allocating when the safetensors file
/// is smaller than the parameters (found reading the model target's path).
#[test]
fn model_an_architecture_larger_than_the_file_is_refused_before_allocating() {
    let mut config = targets::small_model();
    config.n_layers = 8;
    config.n_hidden = 8192;
    let params = cellvae::model::Params::init(&targets::small_model(), 1).unwrap();
    let bytes = cellvae::model::io::to_safetensors(&params).unwrap();
    let t = std::time::Instant::now();
    for e in [
        cellvae::model::io::from_safetensors(&bytes, &config, "model.safetensors")
            .map(|_| ())
            .unwrap_err(),
        cellvae::model::io::checkpoint_from_safetensors(&bytes, &config, "ck.safetensors")
            .map(|_| ())
            .unwrap_err(),
    ] {
        let e = e.to_string();
        assert!(e.contains("the architecture in config.json needs"), "{e}");
    }
    assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
}

/// mtx: under the default limits a 70-byte header asking for 50 million cells and genes
/// with no side files took 12 GB and 76 s (generated names, indptr); the sides without
/// a names file are now bounded by `MAX_UNNAMED` or the file's size in bytes.
#[test]
fn mtx_a_header_alone_cannot_ask_for_millions_of_unnamed_cells() {
    let bytes = finding("mtx", "unnamed-50M-x-50M");
    let t = std::time::Instant::now();
    let e = read_inputs(
        &[InputFile::new("big.mtx", bytes.clone())],
        None,
        &ReadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("big.mtx") && e.contains("line 2"), "{e}");
    assert!(
        e.contains("50000000 cells") && e.contains("at most 1000000 cells, or one per byte"),
        "{e}"
    );
    assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    // A named side is bounded by its names file instead: 3 barcodes, 2 unnamed genes.
    let m = read_inputs(
        &[
            InputFile::new(
                "s/matrix.mtx",
                b"%%MatrixMarket matrix coordinate integer general\n2 3 1\n1 1 4\n".to_vec(),
            ),
            InputFile::new("s/barcodes.tsv", b"a\nb\nc\n".to_vec()),
        ],
        None,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!((m.n_cells, m.n_genes), (3, 2));
}

/// tenx_h5: a bug in hdf5-pure 0.47.0 (`fixed_array.rs:296`, `1u64 << max_nelmts_bits`
/// with a damaged Fixed Array header's bits >= 64) panics where overflow checks are on
/// (debug and fuzz builds; release wraps). hdf5-pure now verifies metadata checksums
/// (its `checksum` feature, which cellvae had left off), so this header, whose checksum
/// is wrong, is refused as damaged; a header with a valid checksum and such bits is
/// refused when the file is opened (`data/h5/fixed_array.rs`, unit-tested there). The
/// fuzz smoke step replays the input too.
#[test]
fn tenx_h5_fixed_array_page_bits_past_63_are_refused_before_reading() {
    let bytes = finding("tenx_h5", "fixed-array-shift-overflow.h5");
    for opts in targets::option_sets(bytes.len()) {
        let e = read_inputs(&[InputFile::new("damaged.h5", bytes.clone())], None, &opts)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("damaged.h5") && e.contains("checksum mismatch"),
            "{e}"
        );
        assert!(
            !e.contains("stopped on malformed content"),
            "a caught panic: {e}"
        );
    }
    // The same header with its checksum made valid (fix_hdf5_checksums.py) passes hdf5-pure's check, and would reach the shift: refused at open.
    let bytes = finding("tenx_h5", "fixed-array-shift-overflow-checksummed.h5");
    for opts in targets::option_sets(bytes.len()) {
        let e = read_inputs(&[InputFile::new("damaged.h5", bytes.clone())], None, &opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged.h5 (byte 972)"), "{e}");
        assert!(
            e.contains("Fixed Array header") && e.contains("2^245"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Seeds

/// Writes `fuzz/corpus/<target>/seed-<name>`.
fn seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(ROOT).join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    parts.join(targets::SEP)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The first `n_cells` cells and `n_genes` most-expressed genes of the demo data, with
/// its metadata.
fn demo_subset(n_cells: usize, n_genes: usize) -> cellvae::CountMatrix {
    let dir = Path::new(ROOT).join("www/demo/pbmc68k_reduced_700");
    let files = cellvae::data::load_paths(std::slice::from_ref(&dir)).unwrap();
    let obs = InputFile::new("cells.tsv", std::fs::read(dir.join("cells.tsv")).unwrap());
    let m = read_inputs(&files, Some(&obs), &ReadOptions::default()).unwrap();
    let m = m.select_cells(&(0..n_cells).collect::<Vec<_>>());
    let mut totals = vec![0f64; m.n_genes];
    for (&g, &v) in m.indices.iter().zip(&m.data) {
        totals[g as usize] += v as f64;
    }
    let mut genes: Vec<usize> = (0..m.n_genes).collect();
    genes.sort_by(|&a, &b| totals[b].total_cmp(&totals[a]));
    genes.truncate(n_genes);
    genes.sort_unstable();
    m.select_genes(&genes)
}

fn mtx_text(m: &cellvae::CountMatrix, pattern: bool) -> String {
    let field = if pattern { "pattern" } else { "integer" };
    let mut s = format!(
        "%%MatrixMarket matrix coordinate {field} general\n%\n{} {} {}\n",
        m.n_genes,
        m.n_cells,
        m.nnz()
    );
    for c in 0..m.n_cells {
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            if pattern {
                s += &format!("{} {}\n", g + 1, c + 1);
            } else {
                s += &format!("{} {} {v}\n", g + 1, c + 1);
            }
        }
    }
    s
}

fn dense_text(m: &cellvae::CountMatrix, sep: char, cells_as_rows: bool) -> String {
    let mut s = String::new();
    if cells_as_rows {
        s += "cell";
        for g in &m.gene_names {
            s += &format!("{sep}{g}");
        }
        s += "\n";
        for c in 0..m.n_cells {
            s += &m.cell_ids[c];
            for v in m.dense_row(c) {
                s += &format!("{sep}{v}");
            }
            s += "\n";
        }
    } else {
        s += "gene";
        for c in &m.cell_ids {
            s += &format!("{sep}\"{c}\"");
        }
        s += "\n";
        for g in 0..m.n_genes {
            s += &m.gene_names[g];
            for c in 0..m.n_cells {
                s += &format!("{sep}{}", m.dense_row(c)[g]);
            }
            s += "\n";
        }
    }
    s
}

fn h5_seeds() {
    use hdf5_pure::{AttrValue, FileBuilder};
    let s = |v: &str| AttrValue::VarLenString(v.into());
    // 10x v3: genes x cells CSC, one chunked + deflated dataset.
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("matrix");
    g.create_dataset("data")
        .with_i32_data(&[1, 3, 2, 5])
        .with_chunks(&[2])
        .with_deflate(4);
    g.create_dataset("indices").with_i64_data(&[0, 2, 1, 3]);
    g.create_dataset("indptr").with_i64_data(&[0, 2, 2, 4]);
    g.create_dataset("shape").with_i32_data(&[4, 3]);
    g.create_dataset("barcodes")
        .with_ascii_strings(&["a", "b", "c"])
        .unwrap();
    let mut f = g.create_group("features");
    f.create_dataset("id")
        .with_ascii_strings(&["E0", "E1", "E2", "E3"])
        .unwrap();
    f.create_dataset("name")
        .with_ascii_strings(&["G0", "G1", "G2", "G0"])
        .unwrap();
    f.create_dataset("feature_type")
        .with_ascii_strings(&[
            "Gene Expression",
            "Gene Expression",
            "Antibody Capture",
            "Gene Expression",
        ])
        .unwrap();
    g.add_group(f.finish());
    fb.add_group(g.finish());
    seed("tenx_h5", "v3.h5", &fb.finish().unwrap());
    // 10x v2: one group per genome.
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("GRCh38");
    g.create_dataset("data").with_f32_data(&[1.0, 3.0, 2.0]);
    g.create_dataset("indices").with_i32_data(&[0, 1, 1]);
    g.create_dataset("indptr").with_i32_data(&[0, 2, 3]);
    g.create_dataset("shape").with_i64_data(&[2, 2]);
    g.create_dataset("barcodes")
        .with_ascii_strings(&["a", "b"])
        .unwrap();
    g.create_dataset("genes")
        .with_ascii_strings(&["E0", "E1"])
        .unwrap();
    g.create_dataset("gene_names")
        .with_ascii_strings(&["G0", "G1"])
        .unwrap();
    fb.add_group(g.finish());
    seed("tenx_h5", "v2.h5", &fb.finish().unwrap());

    // h5ad, current encoding: CSR X, categorical obs, var with gene_ids.
    // vlen strings (as anndata writes them) take a 4 KiB global heap each: one seed has
    // them, the others fixed-length strings, which keeps them small.
    let frames = |fb: &mut FileBuilder, vlen: bool| {
        let strings = |d: &mut hdf5_pure::DatasetBuilder, v: &[&str]| {
            if vlen {
                d.with_vlen_strings(v);
            } else {
                d.with_ascii_strings(v).unwrap();
            }
        };
        fb.set_attr("encoding-type", s("anndata"));
        let mut obs = fb.create_group("obs");
        obs.set_attr("encoding-type", s("dataframe"));
        obs.set_attr("encoding-version", s("0.2.0"));
        obs.set_attr("_index", s("cell"));
        obs.set_attr(
            "column-order",
            AttrValue::VarLenStringArray(vec!["ct".into(), "n".into()]),
        );
        strings(obs.create_dataset("cell"), &["a", "b", "c"]);
        let mut ct = obs.create_group("ct");
        ct.set_attr("encoding-type", s("categorical"));
        ct.set_attr("encoding-version", s("0.2.0"));
        strings(ct.create_dataset("categories"), &["T", "B"]);
        ct.create_dataset("codes").with_i8_data(&[1, -1, 0]);
        obs.add_group(ct.finish());
        obs.create_dataset("n").with_i64_data(&[10, 20, 30]);
        fb.add_group(obs.finish());
        let mut var = fb.create_group("var");
        var.set_attr("encoding-type", s("dataframe"));
        var.set_attr("encoding-version", s("0.2.0"));
        var.set_attr("_index", s("_index"));
        var.set_attr(
            "column-order",
            AttrValue::VarLenStringArray(vec!["gene_ids".into()]),
        );
        strings(var.create_dataset("_index"), &["G0", "G1", "G2", "G0"]);
        strings(var.create_dataset("gene_ids"), &["E0", "E1", "E2", "E3"]);
        fb.add_group(var.finish());
    };
    let csr = |g: &mut hdf5_pure::GroupBuilder, data: &[f32]| {
        g.set_attr("encoding-type", s("csr_matrix"));
        g.set_attr("encoding-version", s("0.1.0"));
        g.set_attr("shape", AttrValue::I64Array(vec![3, 4]));
        g.create_dataset("data").with_f32_data(data);
        g.create_dataset("indices").with_i32_data(&[0, 2, 1, 3]);
        g.create_dataset("indptr").with_i32_data(&[0, 2, 2, 4]);
    };
    let mut fb = FileBuilder::new();
    frames(&mut fb, true);
    let mut x = fb.create_group("X");
    csr(&mut x, &[1.0, 3.0, 2.0, 5.0]);
    fb.add_group(x.finish());
    seed("h5ad", "csr.h5ad", &fb.finish().unwrap());
    // Normalised X, counts in layers/counts.
    let mut fb = FileBuilder::new();
    frames(&mut fb, false);
    let mut x = fb.create_group("X");
    csr(&mut x, &[0.5, 1.5, 0.25, 2.5]);
    fb.add_group(x.finish());
    let mut layers = fb.create_group("layers");
    let mut counts = layers.create_group("counts");
    csr(&mut counts, &[1.0, 3.0, 2.0, 5.0]);
    layers.add_group(counts.finish());
    fb.add_group(layers.finish());
    seed("h5ad", "layers.h5ad", &fb.finish().unwrap());
    // Dense X.
    let mut fb = FileBuilder::new();
    frames(&mut fb, false);
    fb.create_dataset("X")
        .with_f32_data(&[1.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 5.0])
        .with_shape(&[3, 4]);
    seed("h5ad", "dense.h5ad", &fb.finish().unwrap());
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run by hand when the seeds should change"]
fn write_fuzz_seeds() {
    let m = demo_subset(6, 10);
    // mtx: a 10x triplet (plain and gzip), a pattern matrix alone, a transposed one.
    let features: String = (0..m.n_genes)
        .map(|g| format!("{}\t{}\tGene Expression\n", m.gene_ids[g], m.gene_names[g]))
        .collect();
    let barcodes: String = m.cell_ids.iter().map(|c| format!("{c}\n")).collect();
    let mtx = mtx_text(&m, false);
    seed(
        "mtx",
        "triplet",
        &join(&[mtx.as_bytes(), features.as_bytes(), barcodes.as_bytes()]),
    );
    seed(
        "mtx",
        "triplet-gz",
        &join(&[
            &gz(mtx.as_bytes()),
            &gz(features.as_bytes()),
            barcodes.as_bytes(),
        ]),
    );
    seed("mtx", "pattern", mtx_text(&m, true).as_bytes());
    let header = format!("gene_id\tgene_name\n{features}");
    seed(
        "mtx",
        "features-header",
        &join(&[mtx.as_bytes(), header.as_bytes()]),
    );
    // dense: cells as rows (CSV), cells as columns (TSV, quoted ids), gzip.
    let rows = dense_text(&m, ',', true);
    seed("dense", "rows.csv", rows.as_bytes());
    seed("dense", "cols.tsv", dense_text(&m, '\t', false).as_bytes());
    seed("dense", "rows.csv.gz", &gz(rows.as_bytes()));
    // obs: the demo's cells.tsv head (joins OBS_MATRIX), a CSV, and one with a matrix.
    let cells =
        std::fs::read_to_string(Path::new(ROOT).join("www/demo/pbmc68k_reduced_700/cells.tsv"))
            .unwrap();
    let head: String = cells.lines().take(7).map(|l| format!("{l}\n")).collect();
    seed("obs", "cells.tsv", head.as_bytes());
    seed("obs", "cells.csv", head.replace('\t', ",").as_bytes());
    seed(
        "obs",
        "with-matrix",
        &join(&[head.as_bytes(), rows.as_bytes()]),
    );
    // codec: the subset with its metadata, and an empty matrix.
    seed("codec", "demo", &cellvae::session::codec::encode_matrix(&m));
    let empty = cellvae::CountMatrix {
        indptr: vec![0],
        ..Default::default()
    };
    seed(
        "codec",
        "empty",
        &cellvae::session::codec::encode_matrix(&empty),
    );
    // model: config.json + model.safetensors of the small model; a checkpoint.
    let config = targets::small_model();
    let files = cellvae::model::io::ModelFiles {
        format: "cellvae-model".into(),
        cellvae_version: env!("CARGO_PKG_VERSION").into(),
        model: config.clone(),
        gene_ids: (0..4).map(|g| format!("E{g}")).collect(),
        gene_names: (0..4).map(|g| format!("G{g}")).collect(),
        batch_key: Some("sample".into()),
        batch_levels: vec!["s1".into(), "s2".into()],
        preprocessing: serde_json::Value::Null,
        training: serde_json::Value::Null,
    };
    let json = serde_json::to_string_pretty(&files).unwrap();
    let params = cellvae::model::Params::init(&config, 1).unwrap();
    let st = cellvae::model::io::to_safetensors(&params).unwrap();
    seed("model", "model", &join(&[json.as_bytes(), &st]));
    let state = cellvae::model::TrainState::new(params);
    let ck = cellvae::model::io::checkpoint_to_safetensors(&state).unwrap();
    seed("model", "checkpoint", &join(&[json.as_bytes(), &ck]));
    h5_seeds();
}
