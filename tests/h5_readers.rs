//! The HDF5 readers (`cellvae::data::h5`) against the real files in `../shared/data`
//! (each compared cell for cell with the same counts as a Matrix Market triplet, parsed
//! here independently) and against small files written here with `hdf5-pure`'s writer.

use cellvae::data::{h5, CountMatrix, InputFile, ObsValues, ReadOptions};
use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use std::io::Read;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn input(rel: &str) -> InputFile {
    let path = format!("{DATA}/{rel}");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    InputFile::new(path, bytes)
}

/// A text file, gunzipped when its name ends in `.gz`.
fn text(rel: &str) -> String {
    let bytes = input(rel).bytes.to_vec();
    if rel.ends_with(".gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut s)
            .unwrap();
        s
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

fn column(tsv: &str, k: usize) -> Vec<String> {
    tsv.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').nth(k).unwrap_or("").to_string())
        .collect()
}

/// Rows (cells) of a genes x cells Matrix Market file, each sorted by gene.
fn mtx_rows(rel: &str) -> (usize, usize, Vec<Vec<(u32, f32)>>) {
    let t = text(rel);
    let mut lines = t.lines().filter(|l| !l.starts_with('%'));
    let dims: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (n_genes, n_cells, nnz) = (dims[0], dims[1], dims[2]);
    let mut rows = vec![Vec::new(); n_cells];
    let mut seen = 0;
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let (g, c, v): (usize, usize, f64) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        rows[c - 1].push(((g - 1) as u32, v as f32));
        seen += 1;
    }
    assert_eq!(seen, nnz);
    for r in rows.iter_mut() {
        r.sort_by_key(|p| p.0);
    }
    (n_genes, n_cells, rows)
}

fn assert_same_counts(m: &CountMatrix, n_genes: usize, rows: &[Vec<(u32, f32)>]) {
    assert_eq!(m.n_cells, rows.len());
    assert_eq!(m.n_genes, n_genes);
    m.validate().unwrap();
    for (c, want) in rows.iter().enumerate() {
        let (idx, val) = m.row(c);
        let got: Vec<(u32, f32)> = idx.iter().copied().zip(val.iter().copied()).collect();
        let want: Vec<(u32, f32)> = want.iter().copied().filter(|p| p.1 != 0.0).collect();
        assert_eq!(got, want, "cell {c}");
    }
}

/// Text of every cell of an obs column.
fn obs_strings(m: &CountMatrix, name: &str) -> Vec<String> {
    let col = m
        .obs
        .get(name)
        .unwrap_or_else(|| panic!("no obs column {name}"));
    (0..col.len()).map(|i| col.value_string(i)).collect()
}

fn n_levels(m: &CountMatrix, name: &str) -> usize {
    match &m.obs.get(name).unwrap().values {
        ObsValues::Categorical { levels, .. } => levels.len(),
        other => panic!("{name} is not categorical: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Real files

#[test]
fn tenx_v3_h5_matches_the_mtx_triplet() {
    let m = h5::read_10x_h5(
        &input("scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5"),
        &ReadOptions::default(),
    )
    .unwrap();
    let dir = "scanpy_10x_v3_chr21/filtered_feature_bc_matrix";
    let (n_genes, _, rows) = mtx_rows(&format!("{dir}/matrix.mtx.gz"));
    assert_eq!((m.n_cells, m.n_genes), (1107, 507));
    assert_same_counts(&m, n_genes, &rows);
    assert_eq!(m.nnz(), 23866);
    assert_eq!(
        m.cell_ids,
        column(&text(&format!("{dir}/barcodes.tsv.gz")), 0)
    );
    let features = text(&format!("{dir}/features.tsv.gz"));
    assert_eq!(m.gene_ids, column(&features, 0));
    let mut names = column(&features, 1);
    cellvae::data::make_unique(&mut names);
    assert_eq!(m.gene_names, names);
    assert_eq!(m.format, "10x-h5");
    assert_eq!(m.source, "matrix");
}

#[test]
fn wu2020_h5ad_matches_the_mtx_triplet_and_cells_tsv() {
    let m = h5::read_h5ad(
        &input("wu2020_200/wu2020_200_v0_11.h5ad"),
        &ReadOptions::default(),
    )
    .unwrap();
    let (n_genes, _, rows) = mtx_rows("wu2020_200/matrix.mtx.gz");
    assert_eq!((m.n_cells, m.n_genes), (200, 30727));
    assert_same_counts(&m, n_genes, &rows);
    assert_eq!(m.format, "h5ad");
    assert_eq!(m.source, "X");
    assert_eq!(m.cell_ids, column(&text("wu2020_200/barcodes.tsv"), 0));
    let features = text("wu2020_200/features.tsv");
    assert_eq!(m.gene_ids, column(&features, 0));
    let mut names = column(&features, 1);
    cellvae::data::make_unique(&mut names);
    assert_eq!(m.gene_names, names);

    // cells.tsv: barcode, cell_type, batch, patient, source, clonotype_orig.
    let cells = text("wu2020_200/cells.tsv");
    let tsv = |k: usize| column(&cells, k)[1..].to_vec();
    assert_eq!(column(&cells, 0)[1..], m.cell_ids[..]);
    assert_eq!(obs_strings(&m, "cluster_orig"), tsv(1), "cell_type");
    assert_eq!(n_levels(&m, "cluster_orig"), 16);
    // cells.tsv's batch is the h5ad's `sample` (its own `batch` holds numeric codes).
    assert_eq!(obs_strings(&m, "sample"), tsv(2), "batch");
    assert_eq!(n_levels(&m, "sample"), 30);
    assert_eq!(n_levels(&m, "batch"), 30);
    assert_eq!(obs_strings(&m, "patient"), tsv(3));
    assert_eq!(obs_strings(&m, "source"), tsv(4));
    assert_eq!(obs_strings(&m, "clonotype_orig"), tsv(5));
    // Numeric columns and categoricals with missing values (-1 codes) come through.
    assert!(matches!(
        m.obs.get("IR_VJ_1_duplicate_count").unwrap().values,
        ObsValues::Numeric(_)
    ));
    let with_missing: Vec<&str> = m
        .obs
        .columns
        .iter()
        .filter(
            |c| matches!(&c.values, ObsValues::Categorical { codes, .. } if codes.contains(&None)),
        )
        .map(|c| c.name.as_str())
        .collect();
    assert!(with_missing.contains(&"extra_chains"), "{with_missing:?}");
    assert!(m.obs.columns.len() >= 40, "{}", m.obs.columns.len());
}

const PBMC: &str = "pbmc68k_reduced_700/original_scanpy_10x_pbmc68k_reduced.h5ad";

#[test]
fn pbmc68k_old_encoding_without_raw_counts_is_refused() {
    let e = h5::read_h5ad(&input(PBMC), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("original_scanpy_10x_pbmc68k_reduced.h5ad"),
        "{e}"
    );
    assert!(e.contains("raw counts"), "{e}");
    assert!(e.contains("X holds negative values"), "{e}");
    assert!(
        e.contains("e.g. -0.326 in dataset /X, element 0 (cell 0, gene 0)"),
        "{e}"
    );
    assert!(e.contains("raw.X holds non-integer values"), "{e}");
    assert!(e.contains("no layers/counts"), "{e}");
}

#[test]
fn pbmc68k_old_encoding_reads_with_allow_non_counts() {
    let opts = ReadOptions {
        allow_non_counts: true,
        ..Default::default()
    };
    let m = h5::read_h5ad(&input(PBMC), &opts).unwrap();
    m.validate().unwrap();
    assert_eq!((m.n_cells, m.n_genes), (700, 765));
    assert_eq!(m.source, "X");
    assert!(
        m.notes.iter().any(|n| n.contains("X holds negative")),
        "{:?}",
        m.notes
    );
    assert!(!m.is_integer_counts());
    assert_eq!(
        m.cell_ids,
        column(&text("pbmc68k_reduced_700/barcodes.tsv"), 0)
    );
    assert_eq!(
        m.gene_names,
        column(&text("pbmc68k_reduced_700/features.tsv"), 1)
    );

    let cells = text("pbmc68k_reduced_700/cells.tsv");
    let tsv = |k: usize| column(&cells, k)[1..].to_vec();
    assert_eq!(obs_strings(&m, "bulk_labels"), tsv(1), "cell_type");
    assert_eq!(n_levels(&m, "bulk_labels"), 10);
    assert_eq!(obs_strings(&m, "louvain"), tsv(2));
    assert_eq!(n_levels(&m, "louvain"), 11);
    assert_eq!(obs_strings(&m, "phase"), tsv(3));
    assert_eq!(n_levels(&m, "phase"), 3);
    match &m.obs.get("n_genes").unwrap().values {
        ObsValues::Numeric(v) => assert!(v.iter().all(|&x| x > 0.0 && x.fract() == 0.0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_real_files_are_errors_never_panics() {
    for rel in ["scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5", PBMC] {
        let full = input(rel);
        let n = full.bytes.len();
        for k in 1..40 {
            let cut = n * k / 40;
            let f = InputFile::new("cut.h5", full.bytes[..cut].to_vec());
            let r = if rel.ends_with(".h5") {
                h5::read_10x_h5(&f, &ReadOptions::default())
            } else {
                h5::read_h5ad(&f, &ReadOptions::default())
            };
            let e = r.expect_err("a truncated file must not read").to_string();
            assert!(e.starts_with("cut.h5"), "{e}");
        }
        let f = InputFile::new("half.h5", full.bytes[..n / 2].to_vec());
        let e = h5::read_10x_h5(&f, &ReadOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("half.h5") && e.contains("truncated"), "{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Synthetic files. The matrix: 3 cells x 4 genes,
//   cell a: gene 0 = 1, gene 2 = 3;  cell b: nothing;  cell c: gene 1 = 2, gene 3 = 5.

const DENSE: [f64; 12] = [1., 0., 3., 0., 0., 0., 0., 0., 0., 2., 0., 5.];
const CSR: ([f32; 4], [i32; 4], [i32; 4]) = ([1., 3., 2., 5.], [0, 2, 1, 3], [0, 2, 2, 4]);

fn s(v: &str) -> AttrValue {
    AttrValue::VarLenString(v.into())
}

fn encoding(g: &mut GroupBuilder, kind: &str) {
    g.set_attr("encoding-type", s(kind));
    g.set_attr("encoding-version", s("0.1.0"));
}

fn sparse(
    g: &mut GroupBuilder,
    kind: &str,
    shape: [i64; 2],
    data: &[f32],
    idx: &[i32],
    ptr: &[i32],
) {
    encoding(g, kind);
    g.set_attr("shape", AttrValue::I64Array(shape.to_vec()));
    g.create_dataset("data").with_f32_data(data);
    g.create_dataset("indices").with_i32_data(idx);
    g.create_dataset("indptr").with_i32_data(ptr);
}

/// `obs` (3 cells, a categorical `ct` with a missing value, a numeric `n`) and `var`
/// (4 genes, with `gene_ids`).
fn frames(fb: &mut FileBuilder) {
    fb.set_attr("encoding-type", s("anndata"));
    let mut obs = fb.create_group("obs");
    encoding(&mut obs, "dataframe");
    obs.set_attr("_index", s("cell"));
    obs.set_attr(
        "column-order",
        AttrValue::VarLenStringArray(vec!["ct".into(), "n".into(), "tag".into()]),
    );
    obs.create_dataset("cell")
        .with_vlen_strings(&["a", "b", "c"]);
    let mut ct = obs.create_group("ct");
    encoding(&mut ct, "categorical");
    ct.create_dataset("categories")
        .with_vlen_strings(&["T", "B"]);
    ct.create_dataset("codes").with_i8_data(&[1, -1, 0]);
    obs.add_group(ct.finish());
    obs.create_dataset("n").with_i64_data(&[10, 20, 30]);
    obs.create_dataset("tag")
        .with_vlen_strings(&["x", "y", "x"]);
    fb.add_group(obs.finish());
    let mut var = fb.create_group("var");
    encoding(&mut var, "dataframe");
    var.set_attr("_index", s("_index"));
    var.set_attr(
        "column-order",
        AttrValue::VarLenStringArray(vec!["gene_ids".into()]),
    );
    var.create_dataset("_index")
        .with_vlen_strings(&["G0", "G1", "G2", "G0"]);
    var.create_dataset("gene_ids")
        .with_vlen_strings(&["E0", "E1", "E2", "E3"]);
    fb.add_group(var.finish());
}

fn file(name: &str, fb: FileBuilder) -> InputFile {
    InputFile::new(name, fb.finish().unwrap())
}

fn with_csr_x() -> FileBuilder {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    sparse(&mut x, "csr_matrix", [3, 4], &CSR.0, &CSR.1, &CSR.2);
    fb.add_group(x.finish());
    fb
}

fn assert_small(m: &CountMatrix) {
    m.validate().unwrap();
    assert_eq!((m.n_cells, m.n_genes), (3, 4));
    let dense: Vec<f32> = (0..3).flat_map(|c| m.dense_row(c)).collect();
    assert_eq!(dense, DENSE.map(|x| x as f32).to_vec());
    assert_eq!(m.cell_ids, ["a", "b", "c"]);
    assert_eq!(m.gene_ids, ["E0", "E1", "E2", "E3"]);
    assert_eq!(m.gene_names, ["G0", "G1", "G2", "G0-1"]);
    assert_eq!(m.format, "h5ad");
}

fn read(f: &InputFile) -> cellvae::Result<CountMatrix> {
    h5::read_h5ad(f, &ReadOptions::default())
}

#[test]
fn csr_x_with_categorical_obs_and_missing_codes() {
    let m = read(&file("csr.h5ad", with_csr_x())).unwrap();
    assert_small(&m);
    assert_eq!(m.source, "X");
    assert_eq!(
        m.obs.get("ct").unwrap().values,
        ObsValues::Categorical {
            levels: vec!["T".into(), "B".into()],
            codes: vec![Some(1), None, Some(0)]
        }
    );
    assert_eq!(
        m.obs.get("n").unwrap().values,
        ObsValues::Numeric(vec![10., 20., 30.])
    );
    assert_eq!(obs_strings(&m, "tag"), ["x", "y", "x"]);
    assert_eq!(m.obs.columns.len(), 3);
}

#[test]
fn csc_x_with_integer_data() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    encoding(&mut x, "csc_matrix");
    x.set_attr("shape", AttrValue::I64Array(vec![3, 4]));
    x.create_dataset("data").with_i64_data(&[1, 2, 3, 5]);
    x.create_dataset("indices").with_u16_data(&[0, 2, 0, 2]);
    x.create_dataset("indptr").with_i64_data(&[0, 1, 2, 3, 4]);
    fb.add_group(x.finish());
    let m = read(&file("csc.h5ad", fb)).unwrap();
    assert_small(&m);
}

#[test]
fn dense_x_in_float64_and_uint16() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    fb.create_dataset("X")
        .with_f64_data(&DENSE)
        .with_shape(&[3, 4]);
    assert_small(&read(&file("dense.h5ad", fb)).unwrap());

    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let u: Vec<u16> = DENSE.iter().map(|&x| x as u16).collect();
    fb.create_dataset("X").with_u16_data(&u).with_shape(&[3, 4]);
    assert_small(&read(&file("dense16.h5ad", fb)).unwrap());
}

/// X log-normalised (the same pattern, non-integer values), counts in layers/counts.
fn normalised_x(fb: &mut FileBuilder) {
    let mut x = fb.create_group("X");
    sparse(
        &mut x,
        "csr_matrix",
        [3, 4],
        &[0.7, 1.4, 1.1, 1.8],
        &CSR.1,
        &CSR.2,
    );
    fb.add_group(x.finish());
}

#[test]
fn normalised_x_falls_back_to_layers_counts() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    normalised_x(&mut fb);
    let mut layers = fb.create_group("layers");
    encoding(&mut layers, "dict");
    let mut counts = layers.create_group("counts");
    sparse(&mut counts, "csr_matrix", [3, 4], &CSR.0, &CSR.1, &CSR.2);
    layers.add_group(counts.finish());
    fb.add_group(layers.finish());
    let m = read(&file("layers.h5ad", fb)).unwrap();
    assert_small(&m);
    assert_eq!(m.source, "layers/counts");
    let note = m.notes.join("\n");
    assert!(
        note.contains("X holds non-integer values") && note.contains("layers/counts"),
        "{note}"
    );
}

#[test]
fn normalised_x_falls_back_to_raw_x_with_raw_var() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    normalised_x(&mut fb);
    let mut raw = fb.create_group("raw");
    let mut x = raw.create_group("X");
    // raw holds one more gene than X.
    sparse(
        &mut x,
        "csr_matrix",
        [3, 5],
        &[1., 3., 2., 5., 7.],
        &[0, 2, 1, 3, 4],
        &[0, 2, 2, 5],
    );
    raw.add_group(x.finish());
    let mut var = raw.create_group("var");
    encoding(&mut var, "dataframe");
    var.set_attr("_index", s("_index"));
    var.set_attr("column-order", AttrValue::F64Array(vec![]));
    var.create_dataset("_index")
        .with_vlen_strings(&["R0", "R1", "R2", "R3", "R4"]);
    raw.add_group(var.finish());
    fb.add_group(raw.finish());
    let m = read(&file("raw.h5ad", fb)).unwrap();
    m.validate().unwrap();
    assert_eq!(m.source, "raw/X");
    assert_eq!((m.n_cells, m.n_genes), (3, 5));
    assert_eq!(m.gene_names, ["R0", "R1", "R2", "R3", "R4"]);
    assert_eq!(m.gene_ids, m.gene_names);
    assert_eq!(m.dense_row(2), [0., 2., 0., 5., 7.]);
}

#[test]
fn scaled_x_without_counts_is_refused_unless_allowed() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    sparse(
        &mut x,
        "csr_matrix",
        [3, 4],
        &[-0.5, 1.2, 0.3, 2.0],
        &CSR.1,
        &CSR.2,
    );
    fb.add_group(x.finish());
    let f = file("scaled.h5ad", fb);
    let e = read(&f).unwrap_err().to_string();
    assert!(e.starts_with("scaled.h5ad: holds no raw counts"), "{e}");
    assert!(e.contains("X holds negative values"), "{e}");
    assert!(e.contains("raw counts"), "{e}");
    let opts = ReadOptions {
        allow_non_counts: true,
        ..Default::default()
    };
    let m = h5::read_h5ad(&f, &opts).unwrap();
    assert_eq!(m.dense_row(0), [-0.5, 0., 1.2, 0.]);
}

#[test]
fn nan_is_refused_even_when_non_counts_are_allowed() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    sparse(
        &mut x,
        "csr_matrix",
        [3, 4],
        &[1., f32::NAN, 2., 5.],
        &CSR.1,
        &CSR.2,
    );
    fb.add_group(x.finish());
    let opts = ReadOptions {
        allow_non_counts: true,
        ..Default::default()
    };
    let e = h5::read_h5ad(&file("nan.h5ad", fb), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("nan.h5ad (dataset /X/data, element 1 (cell 0, gene 2))"),
        "{e}"
    );
    assert!(e.contains("NaN"), "{e}");
}

fn broken_csr(name: &str, idx: &[i32], ptr: &[i32], shape: [i64; 2]) -> String {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    sparse(&mut x, "csr_matrix", shape, &CSR.0, idx, ptr);
    fb.add_group(x.finish());
    read(&file(name, fb)).unwrap_err().to_string()
}

#[test]
fn damaged_sparse_structure_is_refused() {
    let e = broken_csr("ptr.h5ad", &CSR.1, &[0, 3, 2, 4], [3, 4]);
    assert!(
        e.starts_with("ptr.h5ad (dataset /X/indptr, element 2)"),
        "{e}"
    );
    assert!(e.contains("never decrease"), "{e}");
    let e = broken_csr("idx.h5ad", &[0, 2, 1, 9], &CSR.2, [3, 4]);
    assert!(
        e.starts_with("idx.h5ad (dataset /X/indices, element 3)"),
        "{e}"
    );
    assert!(e.contains("index 9 is out of range"), "{e}");
    let e = broken_csr("shape.h5ad", &CSR.1, &CSR.2, [4, 4]);
    assert!(e.starts_with("shape.h5ad (/X)"), "{e}");
    assert!(e.contains("4 rows but obs has 3 cells"), "{e}");
    let e = broken_csr("huge.h5ad", &CSR.1, &CSR.2, [3, 1 << 40]);
    assert!(e.contains("huge.h5ad") && e.contains("larger than"), "{e}");
}

#[test]
fn unsorted_csr_rows_are_sorted() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    sparse(
        &mut x,
        "csr_matrix",
        [3, 4],
        &[3., 1., 5., 2.],
        &[2, 0, 3, 1],
        &CSR.2,
    );
    fb.add_group(x.finish());
    assert_small(&read(&file("unsorted.h5ad", fb)).unwrap());
}

#[test]
fn anndata_0_7_categoricals_and_nullable_columns() {
    let mut fb = FileBuilder::new();
    // obs in the 0.7 style: codes dataset with a `categories` attribute, labels in
    // __categories; plus a nullable integer column.
    let mut obs = fb.create_group("obs");
    obs.set_attr("_index", s("_index"));
    obs.set_attr(
        "column-order",
        AttrValue::VarLenStringArray(vec!["ct".into(), "k".into()]),
    );
    obs.create_dataset("_index")
        .with_vlen_strings(&["a", "b", "c"]);
    obs.create_dataset("ct")
        .with_i8_data(&[0, 1, -1])
        .set_attr("categories", s("/obs/__categories/ct"));
    let mut cats = obs.create_group("__categories");
    cats.create_dataset("ct").with_vlen_strings(&["x", "y"]);
    obs.add_group(cats.finish());
    let mut k = obs.create_group("k");
    encoding(&mut k, "nullable-integer");
    k.create_dataset("values").with_i32_data(&[4, 5, 6]);
    k.create_dataset("mask").with_u8_data(&[0, 1, 0]);
    obs.add_group(k.finish());
    fb.add_group(obs.finish());
    let mut var = fb.create_group("var");
    var.set_attr("_index", s("_index"));
    var.create_dataset("_index")
        .with_vlen_strings(&["G0", "G1", "G2", "G3"]);
    fb.add_group(var.finish());
    let mut x = fb.create_group("X");
    sparse(&mut x, "csr_matrix", [3, 4], &CSR.0, &CSR.1, &CSR.2);
    fb.add_group(x.finish());
    let m = read(&file("v07.h5ad", fb)).unwrap();
    assert_eq!(
        m.obs.get("ct").unwrap().values,
        ObsValues::Categorical {
            levels: vec!["x".into(), "y".into()],
            codes: vec![Some(0), Some(1), None]
        }
    );
    match &m.obs.get("k").unwrap().values {
        ObsValues::Numeric(v) => assert!(v[0] == 4.0 && v[1].is_nan() && v[2] == 6.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.gene_ids, ["G0", "G1", "G2", "G3"]);
}

/// A Cell Ranger v3 `.h5` of the small matrix (genes x cells CSC).
fn tenx(data: &[i32]) -> FileBuilder {
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("matrix");
    g.create_dataset("data").with_i32_data(data);
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
    g.add_group(f.finish());
    fb.add_group(g.finish());
    fb
}

#[test]
fn small_tenx_h5_and_a_negative_count() {
    let m = h5::read_10x_h5(
        &file("small.h5", tenx(&[1, 3, 2, 5])),
        &ReadOptions::default(),
    )
    .unwrap();
    m.validate().unwrap();
    let dense: Vec<f32> = (0..3).flat_map(|c| m.dense_row(c)).collect();
    assert_eq!(dense, DENSE.map(|x| x as f32).to_vec());
    assert_eq!(m.gene_names, ["G0", "G1", "G2", "G0-1"]);
    assert_eq!(m.cell_ids, ["a", "b", "c"]);

    let e = h5::read_10x_h5(
        &file("neg.h5", tenx(&[1, 3, -2, 5])),
        &ReadOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("neg.h5 (dataset /matrix/data, element 2 (cell 2, gene 1))"),
        "{e}"
    );
    assert!(e.contains("negative"), "{e}");
}

#[test]
fn missing_groups_name_the_file_and_what_it_is() {
    let e = h5::read_10x_h5(&file("anndata.h5", with_csr_x()), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("anndata.h5: has no group /matrix"), "{e}");
    assert!(
        e.contains("not a 10x Cell Ranger v3 .h5") && e.contains("name it .h5ad"),
        "{e}"
    );
    let e = read(&file("tenx.h5ad", tenx(&[1, 3, 2, 5])))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("tenx.h5ad: has no X"), "{e}");
    assert!(e.contains("name it .h5"), "{e}");
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("matrix");
    g.create_dataset("shape").with_i32_data(&[4, 3]);
    fb.add_group(g.finish());
    let e = h5::read_10x_h5(&file("partial.h5", fb), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("partial.h5 (/matrix/barcodes): dataset is missing"),
        "{e}"
    );
}

#[test]
fn files_that_are_not_hdf5_are_named() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(vec![0u8; 200]);
    let e = read(&InputFile::new("photo.h5ad", png))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "photo.h5ad: is not an HDF5 file (it starts with the bytes of a PNG image); \
         export the data as .h5ad, .h5, .mtx or .csv"
    );
    let csv = b"cell,CD3E,CD19\nAAAC-1,1,0\n".to_vec();
    let e = h5::read_10x_h5(&InputFile::new("counts.h5", csv), &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("counts.h5: is not an HDF5 file"), "{e}");
    assert!(
        e.contains("it holds text, starting with \"cell,CD3E,CD19\""),
        "{e}"
    );
    let e = read(&InputFile::new("empty.h5ad", Vec::new()))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("empty.h5ad: is not an HDF5 file (the file is empty)"),
        "{e}"
    );
}

#[test]
fn gzipped_h5ad_is_read() {
    let f = file("csr.h5ad", with_csr_x());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &f.bytes).unwrap();
    let m = read(&InputFile::new("csr.h5ad.gz", gz.finish().unwrap())).unwrap();
    assert_small(&m);
}

#[test]
fn dense_normalised_x_falls_back_to_dense_layers_counts() {
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let norm: Vec<f32> = DENSE.iter().map(|&x| (x as f32 + 1.0).ln()).collect();
    fb.create_dataset("X")
        .with_f32_data(&norm)
        .with_shape(&[3, 4]);
    let mut layers = fb.create_group("layers");
    let counts: Vec<i32> = DENSE.iter().map(|&x| x as i32).collect();
    layers
        .create_dataset("counts")
        .with_i32_data(&counts)
        .with_shape(&[3, 4]);
    fb.add_group(layers.finish());
    let m = read(&file("dense-layers.h5ad", fb)).unwrap();
    assert_small(&m);
    assert_eq!(m.source, "layers/counts");
    assert!(
        m.notes[0].contains("e.g. 0.6931472 in dataset /X, element 0 (cell 0, gene 0)"),
        "{:?}",
        m.notes
    );
}

#[test]
fn huge_dense_shape_is_refused_before_reading() {
    let mut fb = FileBuilder::new();
    fb.create_dataset("X")
        .with_dtype(hdf5_pure::make_f32_type())
        .with_shape(&[0, 1 << 40]);
    let e = read(&file("wide.h5ad", fb)).unwrap_err().to_string();
    assert!(
        e.starts_with("wide.h5ad (/X): is a dense 0 x 1099511627776 matrix"),
        "{e}"
    );
}

#[test]
fn cell_ranger_v2_layout() {
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("hg19");
    g.create_dataset("data").with_u32_data(&[1, 3, 2, 5]);
    g.create_dataset("indices").with_i64_data(&[0, 2, 1, 3]);
    g.create_dataset("indptr").with_i64_data(&[0, 2, 2, 4]);
    g.create_dataset("shape").with_i32_data(&[4, 3]);
    g.create_dataset("barcodes")
        .with_ascii_strings(&["a", "b", "c"])
        .unwrap();
    g.create_dataset("genes")
        .with_ascii_strings(&["E0", "E1", "E2", "E3"])
        .unwrap();
    g.create_dataset("gene_names")
        .with_ascii_strings(&["G0", "G1", "G2", "G3"])
        .unwrap();
    fb.add_group(g.finish());
    let m = h5::read_10x_h5(&file("v2.h5", fb), &ReadOptions::default()).unwrap();
    assert_eq!(m.source, "hg19");
    assert_eq!(m.gene_ids, ["E0", "E1", "E2", "E3"]);
    let dense: Vec<f32> = (0..3).flat_map(|c| m.dense_row(c)).collect();
    assert_eq!(dense, DENSE.map(|x| x as f32).to_vec());
}

/// Damaged files (a few bytes flipped in the metadata-heavy start) may read or fail,
/// but never panic.
#[test]
fn flipped_bytes_never_panic() {
    let mut n_panic = 0;
    for rel in [
        "scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5",
        PBMC,
        "wu2020_200/wu2020_200_v0_11.h5ad",
    ] {
        let full = input(rel);
        let mut seed: u64 = 12345;
        for _ in 0..40 {
            let mut b = full.bytes.to_vec();
            for _ in 0..4 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pos = ((seed >> 33) as usize) % b.len().min(200_000);
                b[pos] ^= (seed >> 20) as u8 | 1;
            }
            let f = InputFile::new("fz", b);
            let r = std::panic::catch_unwind(|| {
                let _ = h5::read_10x_h5(&f, &ReadOptions::default());
                let _ = h5::read_h5ad(&f, &ReadOptions::default());
            });
            if r.is_err() {
                n_panic += 1;
            }
        }
    }
    assert_eq!(n_panic, 0);
}

/// IEEE binary16, as AnnData writes `X.astype("float16")`.
fn float16(big_endian: bool) -> hdf5_pure::Datatype {
    hdf5_pure::Datatype::FloatingPoint {
        size: 2,
        byte_order: if big_endian {
            hdf5_pure::DatatypeByteOrder::BigEndian
        } else {
            hdf5_pure::DatatypeByteOrder::LittleEndian
        },
        layout: hdf5_pure::FloatingPointLayout {
            bit_offset: 0,
            bit_precision: 16,
            exponent_location: 10,
            exponent_size: 5,
            mantissa_location: 0,
            mantissa_size: 10,
            exponent_bias: 15,
        },
    }
}

/// Small non-negative integers as binary16 bytes (exact below 2048).
fn half_bytes(values: &[f64], big_endian: bool) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| {
            let bits: u16 = if v == 0.0 {
                0
            } else {
                let e = v.log2().floor() as i32;
                let m = ((v / 2f64.powi(e) - 1.0) * 1024.0).round() as u16;
                (((e + 15) as u16) << 10) | m
            };
            if big_endian {
                bits.to_be_bytes()
            } else {
                bits.to_le_bytes()
            }
        })
        .collect()
}

/// Counts stored as float16 (dense X, either byte order, and a sparse X's data) are
/// read as numbers, exactly.
#[test]
fn float16_counts_are_read_as_numbers() {
    for big_endian in [false, true] {
        let mut fb = FileBuilder::new();
        frames(&mut fb);
        fb.create_dataset("X")
            .with_raw_data(float16(big_endian), half_bytes(&DENSE, big_endian), 12)
            .with_shape(&[3, 4]);
        let m = read(&file("half.h5ad", fb)).unwrap_or_else(|e| panic!("{e}"));
        assert_small(&m);
    }
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut x = fb.create_group("X");
    encoding(&mut x, "csr_matrix");
    x.set_attr("shape", AttrValue::I64Array(vec![3, 4]));
    let data: Vec<f64> = CSR.0.iter().map(|&v| f64::from(v)).collect();
    x.create_dataset("data")
        .with_raw_data(float16(false), half_bytes(&data, false), 4);
    x.create_dataset("indices").with_i32_data(&CSR.1);
    x.create_dataset("indptr").with_i32_data(&CSR.2);
    fb.add_group(x.finish());
    assert_small(&read(&file("half_csr.h5ad", fb)).unwrap_or_else(|e| panic!("{e}")));
    // A non-integer float16 value is refused as not counts, like any other float.
    let mut fb = FileBuilder::new();
    frames(&mut fb);
    let mut bad = DENSE;
    bad[2] = 1.5;
    fb.create_dataset("X")
        .with_raw_data(float16(false), half_bytes(&bad, false), 12)
        .with_shape(&[3, 4]);
    let e = read(&file("half_norm.h5ad", fb)).unwrap_err().to_string();
    assert!(e.contains("1.5") && e.contains("non-integer"), "{e}");
}
