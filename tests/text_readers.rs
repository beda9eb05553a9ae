//! Text readers (Matrix Market / 10x triplets, dense CSV/TSV, metadata tables) against
//! the real data in `../shared/data` and against one hand-made bad input per problem.

use cellvae::data::dense::read_dense;
use cellvae::data::mtx::read_mtx;
use cellvae::data::obs::{join_obs, read_obs_table};
use cellvae::data::{CountMatrix, InputFile, ObsValues, Orientation, ReadOptions};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

fn load(path: &Path) -> InputFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    InputFile::new(path.display().to_string(), bytes)
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> InputFile {
    let path = names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("none of {names:?} in {}", dir.display()));
    load(&path)
}

fn read_folder(dir: &Path) -> CountMatrix {
    let matrix = find(dir, &["matrix.mtx.gz", "matrix.mtx"]);
    let features = find(dir, &["features.tsv.gz", "features.tsv", "genes.tsv"]);
    let barcodes = find(dir, &["barcodes.tsv.gz", "barcodes.tsv"]);
    read_mtx(
        &matrix,
        Some(&features),
        Some(&barcodes),
        &ReadOptions::default(),
    )
    .unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes.to_vec()
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A simple, independent Matrix Market parse: (rows, cols, summed entries).
fn parse_mtx_simply(bytes: &[u8]) -> (usize, usize, HashMap<(usize, usize), f64>) {
    let text = String::from_utf8(gunzip(bytes)).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('%'));
    let size: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let mut entries = HashMap::new();
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        let (r, c, v): (usize, usize, f64) = (
            w[0].parse().unwrap(),
            w[1].parse().unwrap(),
            w[2].parse().unwrap(),
        );
        *entries.entry((r - 1, c - 1)).or_insert(0.0) += v;
    }
    entries.retain(|_, v| *v != 0.0);
    (size[0], size[1], entries)
}

fn value(m: &CountMatrix, cell: usize, gene: usize) -> f32 {
    let (idx, val) = m.row(cell);
    idx.binary_search(&(gene as u32))
        .map(|k| val[k])
        .unwrap_or(0.0)
}

fn err_text<T: std::fmt::Debug>(r: cellvae::Result<T>) -> String {
    let message = r.expect_err("expected an error").to_string();
    eprintln!("{message}");
    message
}

fn assert_has(message: &str, parts: &[&str]) {
    for p in parts {
        assert!(message.contains(p), "missing {p:?} in: {message}");
    }
    assert!(
        !message.contains('\n'),
        "message is not one line: {message}"
    );
}

fn file(name: &str, text: &str) -> InputFile {
    InputFile::new(name, text.as_bytes().to_vec())
}

fn dense(name: &str, text: &str) -> cellvae::Result<CountMatrix> {
    read_dense(&file(name, text), &ReadOptions::default())
}

fn mtx(text: &str) -> cellvae::Result<CountMatrix> {
    read_mtx(&file("m.mtx", text), None, None, &ReadOptions::default())
}

const BANNER: &str = "%%MatrixMarket matrix coordinate integer general\n";

#[test]
fn real_mtx_folders_match_an_independent_parse() {
    for folder in [
        "pbmc68k_reduced_700",
        "wu2020_200",
        "mouse_10k_1000",
        "scanpy_10x_v3_chr21/filtered_feature_bc_matrix",
    ] {
        let dir = Path::new(DATA).join(folder);
        let start = std::time::Instant::now();
        let m = read_folder(&dir);
        eprintln!("{folder}: read in {:?}", start.elapsed());
        m.validate().unwrap();
        let (rows, cols, entries) =
            parse_mtx_simply(&find(&dir, &["matrix.mtx.gz", "matrix.mtx"]).bytes);
        assert_eq!((m.n_genes, m.n_cells), (rows, cols), "{folder}: shape");
        assert_eq!(m.nnz(), entries.len(), "{folder}: nnz");
        let total: f64 = entries.values().sum();
        assert_eq!(m.total_counts(), total, "{folder}: total count");
        for (&(g, c), &v) in &entries {
            assert_eq!(value(&m, c, g) as f64, v, "{folder}: cell {c} gene {g}");
        }
        let barcodes = gunzip(&find(&dir, &["barcodes.tsv.gz", "barcodes.tsv"]).bytes);
        let first = String::from_utf8(barcodes).unwrap();
        assert_eq!(m.cell_ids[0], first.lines().next().unwrap());
        assert_eq!(m.gene_ids.len(), rows);
        assert_eq!(m.format, "10x-mtx");
        assert!(m.is_integer_counts());
    }
}

#[test]
fn pbmc_cells_tsv_joins_with_ten_cell_types() {
    let dir = Path::new(DATA).join("pbmc68k_reduced_700");
    let mut m = read_folder(&dir);
    let (ids, table) = read_obs_table(&load(&dir.join("cells.tsv"))).unwrap();
    assert_eq!(ids.len(), 700);
    join_obs(&mut m, &ids, table, "cells.tsv").unwrap();
    m.validate().unwrap();
    let cell_type = m.obs.get("cell_type").expect("cell_type column");
    assert_eq!(cell_type.summary().kind, "categorical");
    assert_eq!(cell_type.summary().n_levels, 10);
    assert!(
        m.notes.iter().all(|n| !n.contains("cells.tsv")),
        "{:?}",
        m.notes
    );
    assert_eq!(m.obs.get("phase").unwrap().summary().kind, "categorical");
}

/// Writes a matrix as a dense table.
fn to_dense(m: &CountMatrix, cells_as_rows: bool, sep: char, corner: &str, eol: &str) -> String {
    let mut s = String::from(corner);
    let col_labels = if cells_as_rows {
        &m.gene_names
    } else {
        &m.cell_ids
    };
    for l in col_labels {
        s.push(sep);
        s.push_str(l);
    }
    s.push_str(eol);
    if cells_as_rows {
        for c in 0..m.n_cells {
            s.push_str(&m.cell_ids[c]);
            for v in m.dense_row(c) {
                s.push(sep);
                s.push_str(&v.to_string());
            }
            s.push_str(eol);
        }
    } else {
        let rows: Vec<Vec<f32>> = (0..m.n_cells).map(|c| m.dense_row(c)).collect();
        for g in 0..m.n_genes {
            s.push_str(&m.gene_names[g]);
            for row in &rows {
                s.push(sep);
                s.push_str(&row[g].to_string());
            }
            s.push_str(eol);
        }
    }
    s
}

fn assert_same_counts(a: &CountMatrix, b: &CountMatrix) {
    assert_eq!((a.n_cells, a.n_genes), (b.n_cells, b.n_genes));
    assert_eq!(a.indptr, b.indptr);
    assert_eq!(a.indices, b.indices);
    assert_eq!(a.data, b.data);
    assert_eq!(a.cell_ids, b.cell_ids);
    assert_eq!(a.gene_names, b.gene_names);
}

#[test]
fn dense_tables_from_pbmc_read_back_equal() {
    let m = read_folder(&Path::new(DATA).join("pbmc68k_reduced_700"));
    let auto = ReadOptions::default();
    for cells_as_rows in [true, false] {
        for (ext, sep) in [("csv", ','), ("tsv", '\t')] {
            for (bom, eol) in [("", "\n"), ("\u{feff}", "\r\n")] {
                let text = format!("{bom}{}", to_dense(&m, cells_as_rows, sep, "", eol));
                for gz in [false, true] {
                    let (name, bytes) = if gz {
                        (format!("t.{ext}.gz"), gzip(text.as_bytes()))
                    } else {
                        (format!("t.{ext}"), text.clone().into_bytes())
                    };
                    let what = format!(
                        "{name} cells_as_rows={cells_as_rows} bom={}",
                        !bom.is_empty()
                    );
                    let d = read_dense(&InputFile::new(name, bytes), &auto)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_same_counts(&d, &m);
                    assert_eq!(d.format, ext, "{what}");
                    let side = if cells_as_rows { "row" } else { "column" };
                    assert!(
                        d.notes[0].contains(&format!("{side} labels look like cell barcodes")),
                        "{what}: {:?}",
                        d.notes
                    );
                }
            }
        }
    }
    // Explicit orientation: correct override reads equal; the wrong one transposes.
    let by_cols = to_dense(&m, false, ',', "", "\n");
    let opts = |orientation| ReadOptions {
        orientation,
        ..Default::default()
    };
    let d = read_dense(&file("t.csv", &by_cols), &opts(Orientation::CellsAsColumns)).unwrap();
    assert_same_counts(&d, &m);
    assert!(d.notes[0].contains("as asked"), "{:?}", d.notes);
    let wrong = read_dense(&file("t.csv", &by_cols), &opts(Orientation::CellsAsRows)).unwrap();
    assert_eq!((wrong.n_cells, wrong.n_genes), (m.n_genes, m.n_cells));
}

#[test]
fn dense_orientation_falls_back_to_header_word_then_shape() {
    let mut m = read_folder(&Path::new(DATA).join("pbmc68k_reduced_700"));
    // Labels that say nothing: cells c1.., genes g1.. (700 cells x 765 genes).
    m.cell_ids = (1..=m.n_cells).map(|c| format!("c{c}")).collect();
    m.gene_names = (1..=m.n_genes).map(|g| format!("g{g}")).collect();
    let auto = ReadOptions::default();
    let rows = read_dense(&file("a.csv", &to_dense(&m, true, ',', "", "\n")), &auto).unwrap();
    assert_same_counts(&rows, &m);
    assert!(
        rows.notes[0].contains("longer side is taken to be genes"),
        "{:?}",
        rows.notes
    );
    let cols = read_dense(&file("a.csv", &to_dense(&m, false, ',', "", "\n")), &auto).unwrap();
    assert_same_counts(&cols, &m);
    // A header word wins over the shape: 765 genes as rows of a "cell" table are cells.
    let worded = read_dense(
        &file("a.csv", &to_dense(&m, false, ',', "cell", "\n")),
        &auto,
    )
    .unwrap();
    assert_eq!(worded.n_cells, m.n_genes);
    assert!(
        worded.notes[0].contains("first field is 'cell'"),
        "{:?}",
        worded.notes
    );
    let gene = read_dense(
        &file("a.csv", &to_dense(&m, false, ',', "gene", "\n")),
        &auto,
    )
    .unwrap();
    assert_same_counts(&gene, &m);
    // Ensembl ids as column labels mean genes are columns.
    let ens = "x,ENSG00000000001,ENSG00000000002\na,1,0\nb,0,2\nc,3,0\n";
    let e = dense("e.csv", ens).unwrap();
    assert_eq!((e.n_cells, e.n_genes), (3, 2));
}

#[test]
fn dense_r_style_header_and_quotes() {
    let d = dense("r.csv", "\"A\",\"B, C\"\n\"c1\",1,0\n\"c2\",0,\"2\"\n").unwrap();
    assert_eq!(d.gene_names, ["A", "B, C"]);
    assert_eq!(d.cell_ids, ["c1", "c2"]);
    assert_eq!(d.dense_row(1), [0.0, 2.0]);
    let spaced = dense("r.txt", "\"A\" \"B\"\n\"c1\" 1 0\n\"c2\" 0 2\n").unwrap();
    assert_eq!(spaced.gene_names, ["A", "B"]);
}

#[test]
fn dense_bad_values_name_file_line_and_field() {
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,1,abc\n"));
    assert_has(&e, &["bad.csv", "line 2, field 3", "'abc' is not a number"]);
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,1,2\nc2,1\n"));
    assert_has(&e, &["bad.csv", "line 3", "has 2 fields", "3"]);
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,1,2,3,4\n"));
    assert_has(
        &e,
        &["bad.csv", "line 2", "5 fields", "header (line 1) has 3"],
    );
    let e = err_text(dense("bad.tsv", "cell\tA\tB\nc1\t-1\t2\n"));
    assert_has(
        &e,
        &["bad.tsv", "line 2, field 2", "negative", "raw UMI counts"],
    );
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,1,NaN\n"));
    assert_has(&e, &["bad.csv", "line 2, field 3", "NaN"]);
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,inf,1\n"));
    assert_has(&e, &["bad.csv", "line 2, field 2", "inf", "finite"]);
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,1,1\nc2,0.5,2\n"));
    assert_has(
        &e,
        &[
            "bad.csv",
            "line 3, field 2",
            "not an integer",
            "normalised or log-transformed data is not counts",
        ],
    );
    let e = err_text(dense("bad.csv", "cell,A,B\nc1,,1\n"));
    assert_has(&e, &["bad.csv", "line 2, field 2", "empty"]);
    // allow_non_counts passes finite non-counts through, never NaN.
    let lenient = ReadOptions {
        allow_non_counts: true,
        ..Default::default()
    };
    let ok = read_dense(&file("n.csv", "cell,A,B\nc1,0.5,-2\n"), &lenient).unwrap();
    assert_eq!(ok.dense_row(0), [0.5, -2.0]);
    assert!(read_dense(&file("n.csv", "cell,A,B\nc1,nan,1\n"), &lenient).is_err());
}

#[test]
fn dense_empty_and_header_only() {
    assert_has(&err_text(dense("empty.csv", "")), &["empty.csv", "empty"]);
    assert_has(
        &err_text(dense("empty.csv", "\n  \n")),
        &["empty.csv", "empty"],
    );
    let e = err_text(dense("head.csv", "cell,A,B\n"));
    assert_has(&e, &["head.csv", "header (line 1) but no data rows"]);
    let e = err_text(dense("one.csv", "cell\nc1\n"));
    assert_has(&e, &["one.csv", "line 2", "no values"]);
}

#[test]
fn dense_duplicated_genes_bom_crlf_and_utf8() {
    let d = dense("dup.csv", "\u{feff}cell,A,A,B\r\nc1,1,2,3\r\nc2,0,0,1").unwrap();
    assert_eq!(d.gene_names, ["A", "A-1", "B"]);
    assert_eq!(d.gene_ids, ["A", "A", "B"]);
    assert_eq!(d.dense_row(0), [1.0, 2.0, 3.0]);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("dup.csv") && n.contains("1 duplicated gene names")),
        "{:?}",
        d.notes
    );
    let bytes = b"cell,A\nc\xff1,1\n".to_vec();
    let e = err_text(read_dense(
        &InputFile::new("u.csv", bytes),
        &ReadOptions::default(),
    ));
    assert_has(&e, &["u.csv", "line 2", "not valid UTF-8"]);
    let e = err_text(dense("q.csv", "cell,\"A\nc1,1\n"));
    assert_has(&e, &["q.csv", "line 1", "quote"]);
}

#[test]
fn truncated_gzip_is_refused() {
    let dir = Path::new(DATA).join("pbmc68k_reduced_700");
    let full = std::fs::read(dir.join("matrix.mtx.gz")).unwrap();
    let cut = InputFile::new("cut/matrix.mtx.gz", full[..full.len() / 2].to_vec());
    let e = err_text(read_mtx(&cut, None, None, &ReadOptions::default()));
    assert_has(&e, &["cut/matrix.mtx.gz", "truncated or damaged"]);
    let table = gzip(b"cell,A\nc1,1\nc2,2\n");
    let cut = InputFile::new("t.csv.gz", table[..table.len() / 2].to_vec());
    assert_has(
        &err_text(read_dense(&cut, &ReadOptions::default())),
        &["t.csv.gz", "truncated"],
    );
}

#[test]
fn mtx_bad_entries() {
    let e = err_text(mtx(&format!("{BANNER}3 2 2\n1 1 5\n4 2 1\n")));
    assert_has(
        &e,
        &["m.mtx", "line 4, field 1", "index 4 is outside 1..=3"],
    );
    let e = err_text(mtx(&format!("{BANNER}3 2 2\n1 0 5\n")));
    assert_has(&e, &["m.mtx", "line 3, field 2", "index 0"]);
    let e = err_text(mtx(&format!("{BANNER}3 2 3\n1 1 5\n2 2 1\n")));
    assert_has(&e, &["m.mtx", "says 3 entries", "only 2", "truncated"]);
    let e = err_text(mtx(&format!("{BANNER}3 2 1\n1 1 5\n2 2 1\n")));
    assert_has(&e, &["m.mtx", "line 4", "says 1 entry", "more"]);
    let e = err_text(mtx(&format!("{BANNER}3 2 1\n1 1 x\n")));
    assert_has(&e, &["m.mtx", "line 3, field 3", "'x' is not a number"]);
    let e = err_text(mtx(&format!("{BANNER}3 2 1\n1 1 2.5\n")));
    assert_has(
        &e,
        &["m.mtx", "line 3, field 3", "not an integer", "normalised"],
    );
    let e = err_text(mtx(&format!("{BANNER}3 2 1\n1 1 -3\n")));
    assert_has(&e, &["m.mtx", "line 3, field 3", "negative"]);
    let e = err_text(mtx(&format!("{BANNER}3 2 1\n1 1\n")));
    assert_has(&e, &["m.mtx", "line 3", "needs 3 fields", "has 2"]);
    let e = err_text(mtx("hello\n1 1 1\n"));
    assert_has(&e, &["m.mtx", "line 1", "not a Matrix Market file"]);
    let e = err_text(mtx(
        "%%MatrixMarket matrix array integer general\n2 2\n1\n2\n3\n4\n",
    ));
    assert_has(&e, &["m.mtx", "array"]);
    assert_has(&err_text(mtx("")), &["m.mtx", "empty"]);
    let e = err_text(mtx(BANNER));
    assert_has(&e, &["m.mtx", "size line"]);
}

#[test]
fn mtx_absurd_dimensions_fail_fast() {
    let start = std::time::Instant::now();
    let e = err_text(mtx(&format!(
        "{BANNER}1000000000000 1000000000000 5\n1 1 1\n"
    )));
    assert_has(&e, &["m.mtx", "line 2", "1000000000000 rows"]);
    let e = err_text(mtx(&format!("{BANNER}1000 1000 1999999999999\n1 1 1\n")));
    assert_has(&e, &["m.mtx", "line 2", "1999999999999 entries"]);
    let e = err_text(mtx(&format!("{BANNER}2 2 5\n1 1 1\n")));
    assert_has(&e, &["m.mtx", "5 entries for a 2 x 2 matrix"]);
    let e = err_text(mtx(&format!("{BANNER}99999999999999999999999 2 5\n")));
    assert_has(&e, &["m.mtx", "line 2", "three whole numbers"]);
    // A plausible header over a tiny file must not reserve memory for the header's nnz.
    let e = err_text(mtx(&format!(
        "{BANNER}40000000 40000000 1900000000\n1 1 1\n"
    )));
    assert_has(&e, &["m.mtx", "only 1"]);
    assert!(
        start.elapsed().as_secs_f64() < 2.0,
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn mtx_bare_pattern_real_and_crlf() {
    let m = mtx(&format!(
        "\u{feff}{}% a comment\r\n3 2 2\r\n1 1 5\r\n3 2 1",
        BANNER.replace('\n', "\r\n")
    ))
    .unwrap();
    assert_eq!((m.n_cells, m.n_genes, m.nnz()), (2, 3, 2));
    assert_eq!(m.dense_row(0), [5.0, 0.0, 0.0]);
    assert_eq!(m.dense_row(1), [0.0, 0.0, 1.0]);
    assert_eq!(m.gene_names, ["gene_1", "gene_2", "gene_3"]);
    assert_eq!(m.cell_ids, ["cell_1", "cell_2"]);
    assert_eq!(m.format, "mtx");
    assert!(
        m.notes.iter().any(|n| n.contains("gene_1"))
            && m.notes.iter().any(|n| n.contains("cell_1"))
    );
    let p = mtx("%%MatrixMarket matrix coordinate pattern general\n2 2 2\n1 1\n2 2\n").unwrap();
    assert_eq!(p.data, [1.0, 1.0]);
    let r = mtx("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 2 3.0\n").unwrap();
    assert_eq!(r.dense_row(1), [3.0, 0.0]);
}

fn triplet(features: &str, barcodes: &str) -> cellvae::Result<CountMatrix> {
    triplet_bytes(features.as_bytes(), barcodes)
}

fn triplet_bytes(features: &[u8], barcodes: &str) -> cellvae::Result<CountMatrix> {
    let features = InputFile::new("d/features.tsv", features.to_vec());
    let matrix = file(
        "d/matrix.mtx",
        &format!("{BANNER}3 2 3\n1 1 4\n2 1 1\n3 2 7\n"),
    );
    read_mtx(
        &matrix,
        Some(&features),
        Some(&file("d/barcodes.tsv", barcodes)),
        &ReadOptions::default(),
    )
}

#[test]
fn mtx_names_files() {
    let m = triplet(
        "g1\tA\tGene Expression\ng2\tA\tGene Expression\ng3\tB\tGene Expression\n",
        "AC-1\nGT-1\n",
    )
    .unwrap();
    assert_eq!(m.format, "10x-mtx");
    assert_eq!(m.gene_ids, ["g1", "g2", "g3"]);
    assert_eq!(m.gene_names, ["A", "A-1", "B"]);
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("d/features.tsv") && n.contains("duplicated gene names")),
        "{:?}",
        m.notes
    );
    assert_eq!(m.dense_row(1), [0.0, 0.0, 7.0]);
    // v2 genes.tsv (two columns), one column, CRLF + BOM, header line skipped.
    let m = triplet("\u{feff}g1\tA\r\ng2\tB\r\ng3\tC\r\n", "AC-1\r\nGT-1\r\n").unwrap();
    assert_eq!(m.gene_names, ["A", "B", "C"]);
    assert_eq!(m.cell_ids, ["AC-1", "GT-1"]);
    let m = triplet("A\nB\nC\n", "barcode\nAC-1\nGT-1\n").unwrap();
    assert_eq!(
        (m.gene_ids.clone(), m.gene_names.clone()),
        (
            vec!["A".to_string(), "B".into(), "C".into()],
            vec!["A".to_string(), "B".into(), "C".into()]
        )
    );
    assert_eq!(m.cell_ids, ["AC-1", "GT-1"]);
    // Antibody capture features are dropped, as scanpy's read_10x_mtx does.
    let m = triplet(
        "g1\tA\tGene Expression\ng2\tB\tGene Expression\np1\tCD3\tAntibody Capture\n",
        "AC-1\nGT-1\n",
    )
    .unwrap();
    assert_eq!(m.gene_names, ["A", "B"]);
    assert_eq!(m.nnz(), 2);
    assert!(
        m.notes.iter().any(|n| n.contains("Antibody Capture")),
        "{:?}",
        m.notes
    );
    // Counts that do not fit.
    let e = err_text(triplet("A\nB\n", "AC-1\nGT-1\n"));
    assert_has(
        &e,
        &["d/features.tsv", "lists 2 genes", "d/matrix.mtx", "3 genes"],
    );
    let e = err_text(triplet("A\nB\nC\n", "AC-1\nGT-1\nTT-1\nGG-1\n"));
    assert_has(
        &e,
        &[
            "d/barcodes.tsv",
            "lists 4 barcodes",
            "d/matrix.mtx",
            "2 cells",
        ],
    );
    let e = err_text(triplet_bytes(b"A\nB\xff\nC\n", "AC-1\nGT-1\n"));
    assert_has(&e, &["d/features.tsv", "line 2", "UTF-8"]);
}

#[test]
fn mtx_transposed_fits_names_files() {
    // Rows are cells (2 cells x 3 genes), as scipy.io.mmwrite(adata.X) writes.
    let matrix = file("t.mtx", &format!("{BANNER}2 3 2\n1 3 4\n2 1 1\n"));
    let f = file("f.tsv", "A\nB\nC\n");
    let b = file("b.tsv", "c1\nc2\n");
    let m = read_mtx(&matrix, Some(&f), Some(&b), &ReadOptions::default()).unwrap();
    assert_eq!((m.n_cells, m.n_genes), (2, 3));
    assert_eq!(m.dense_row(0), [0.0, 0.0, 4.0]);
    assert!(
        m.notes.iter().any(|n| n.contains("cells as rows")),
        "{:?}",
        m.notes
    );
}

#[test]
fn obs_table_join_rules_and_errors() {
    let mut m = dense("m.csv", "cell,A,B\nc1,1,0\nc2,0,2\nc3,1,1\n").unwrap();
    let obs = file(
        "obs.csv",
        "id,kind,score,note\nc1,x,1.5,alpha\nc2,x,NA,beta\nc9,y,3,gamma\n",
    );
    let (ids, table) = read_obs_table(&obs).unwrap();
    assert_eq!(ids, ["c1", "c2", "c9"]);
    join_obs(&mut m, &ids, table, "obs.csv").unwrap();
    m.validate().unwrap();
    match &m.obs.get("score").unwrap().values {
        ObsValues::Numeric(v) => {
            assert_eq!(v[0], 1.5);
            assert!(v[1].is_nan() && v[2].is_nan());
        }
        other => panic!("score is {other:?}"),
    }
    assert_eq!(m.obs.get("kind").unwrap().value_string(1), "x");
    assert_eq!(m.obs.get("kind").unwrap().value_string(2), "");
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("1 of 3 matrix cells") && n.contains("'c3'")),
        "{:?}",
        m.notes
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("1 of 3 table rows") && n.contains("'c9'")),
        "{:?}",
        m.notes
    );
    // A second table with the same column replaces it, with a note.
    let (ids, table) =
        read_obs_table(&file("o2.tsv", "cell\tkind\nc1\tz\nc2\tz\nc3\tw\n")).unwrap();
    join_obs(&mut m, &ids, table, "o2.tsv").unwrap();
    assert_eq!(m.obs.get("kind").unwrap().value_string(2), "w");
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("o2.tsv") && n.contains("replaces")),
        "{:?}",
        m.notes
    );
    // No match at all.
    let (ids, table) = read_obs_table(&file("o3.csv", "id,k\nAAAC-1,x\n")).unwrap();
    let e = err_text(join_obs(&mut m, &ids, table, "o3.csv"));
    assert_has(
        &e,
        &["none of the 1 cell ids in o3.csv", "'AAAC-1'", "'c1'"],
    );
    // Duplicate ids, ragged rows, empty tables.
    let e = err_text(read_obs_table(&file("o4.csv", "id,k\nc1,x\nc2,y\nc1,z\n")));
    assert_has(
        &e,
        &["o4.csv", "line 4", "'c1' appears again (first on line 2)"],
    );
    let e = err_text(read_obs_table(&file("o5.csv", "id,k\nc1,x,y,z\n")));
    assert_has(&e, &["o5.csv", "line 2", "4 fields"]);
    assert_has(
        &err_text(read_obs_table(&file("o6.csv", ""))),
        &["o6.csv", "empty"],
    );
    assert_has(
        &err_text(read_obs_table(&file("o7.csv", "id,k\n"))),
        &["o7.csv", "no rows"],
    );
}

/// Findings of the bad-input corpus, mended: a value that overflows f32 is refused like
/// `inf`; a table with no header row is said, not read with its first row and column
/// as names; a `.gz` inside a `.gz` is named; a small `.gz` that expands past the limit
/// is refused as too large (not damaged) before it is all in memory.
#[test]
fn corpus_findings_overflow_headerless_double_gzip() {
    let e = err_text(dense("big.csv", "cell,A,B\nc1,1,1e40\nc2,3,4\n"));
    assert_has(
        &e,
        &[
            "big.csv",
            "line 2",
            "field 3",
            "1e40",
            "too large",
            "infinity",
        ],
    );
    let e = err_text(mtx(&format!("{BANNER}2 2 2\n1 1 1e40\n2 2 3\n")));
    assert_has(&e, &["m.mtx", "line 3", "1e40", "too large"]);
    // The largest f32 is still a number (then refused only if not an integer count).
    assert!(dense("ok.csv", "cell,A\nc1,3e38\nc2,1\n").is_ok());

    let e = err_text(dense(
        "nohead.csv",
        "1,2,3,4,5\n6,7,8,9,10\n1,1,1,1,1\n2,2,2,2,2\n",
    ));
    assert_has(
        &e,
        &[
            "nohead.csv",
            "line 1",
            "only numbers",
            "no header row",
            "add a header",
        ],
    );
    // Numeric names after a named corner (Entrez ids) or an empty corner are a header.
    let m = dense("entrez.csv", "cell,7157,1956\nc1,1,2\nc2,0,3\n").unwrap();
    assert_eq!(m.gene_names, ["7157", "1956"]);
    let m = dense("corner.csv", ",7157,1956\nc1,1,2\nc2,0,3\n").unwrap();
    assert_eq!((m.n_cells, m.n_genes), (2, 2));

    let twice = InputFile::new("t.csv.gz", gzip(&gzip(b"cell,A\nc1,1\n")));
    let e = err_text(read_dense(&twice, &ReadOptions::default()));
    assert_has(&e, &["t.csv.gz", "gzip-compressed twice", "gunzip"]);
    assert!(!e.contains("\\x"), "escaped binary in: {e}");
}

#[test]
fn a_decompression_bomb_is_refused_with_the_limit() {
    // 8 MiB of a repeated row compresses to a few KB; the limit is lowered to 1 MiB so
    // that the test is fast (the default is MAX_EXPANDED_BYTES).
    let mut text = b"cell,A,B\n".to_vec();
    while text.len() < 8 << 20 {
        text.extend_from_slice(b"c,0,0\n");
    }
    let bomb = InputFile::new("bomb.csv.gz", gzip(&text));
    assert!(bomb.bytes.len() < 100_000, "{}", bomb.bytes.len());
    let opts = ReadOptions {
        max_expanded_bytes: Some(1 << 20),
        ..Default::default()
    };
    let e = err_text(read_dense(&bomb, &opts));
    assert_has(
        &e,
        &[
            "bomb.csv.gz",
            "expands to more than 1 MiB",
            "too large",
            "not damaged",
        ],
    );
    assert!(!e.contains("truncated"), "{e}");
    // A side file or metadata table is held to the default limit the same way.
    let e = err_text(bomb.decompressed_within(1 << 20));
    assert_has(&e, &["bomb.csv.gz", "more than 1 MiB"]);
    // The same file within the limit reads.
    assert_eq!(
        bomb.decompressed_within(16 << 20).unwrap().len(),
        text.len()
    );
    const { assert!(cellvae::data::MAX_EXPANDED_BYTES >= 1 << 30) };
    // Through read_inputs (what the command line and the page call) too.
    let e = err_text(cellvae::data::read_inputs(&[bomb], None, &opts));
    assert_has(&e, &["bomb.csv.gz", "more than 1 MiB"]);
}
