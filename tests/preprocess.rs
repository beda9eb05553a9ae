//! QC filters and seurat_v3 highly variable genes (`cellvae::data::preprocess`).
//!
//! The gene selection is compared with scanpy 1.11.5's on the real matrices in
//! `../shared/data`; the reference lists come from `tests/fixtures/hvg/make_reference.py`.
//! The matrices are read here by a small Matrix Market parser of the test's own, so these
//! tests do not depend on the crate's readers.

use cellvae::data::preprocess::{
    highly_variable_genes_seurat_v3, preprocess, seurat_v3, QcOptions,
};
use cellvae::data::{CountMatrix, ObsColumn, ObsTable};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hvg");

/// A 10x-style folder read independently of the crate: `matrix.mtx.gz` (genes x cells,
/// 1-based), gene names from column 2 of `features.tsv` made unique as scanpy does, and
/// every column of `cells.tsv` as a categorical obs column.
fn load(name: &str) -> CountMatrix {
    let dir = PathBuf::from(DATA).join(name);
    let gz = std::fs::read(dir.join("matrix.mtx.gz")).expect("matrix.mtx.gz");
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("gunzip");
    let mut lines = text.lines().filter(|l| !l.starts_with('%'));
    let dims: Vec<usize> = lines
        .next()
        .expect("size line")
        .split_whitespace()
        .map(|t| t.parse().expect("size"))
        .collect();
    let (n_genes, n_cells, nnz) = (dims[0], dims[1], dims[2]);
    let mut triplets = Vec::with_capacity(nnz);
    for line in lines {
        let mut it = line.split_whitespace();
        let g: u32 = it.next().unwrap().parse().unwrap();
        let c: u32 = it.next().unwrap().parse().unwrap();
        let v: f32 = it.next().unwrap().parse().unwrap();
        triplets.push((c - 1, g - 1, v));
    }
    assert_eq!(triplets.len(), nnz);
    let mut m = CountMatrix::from_triplets(n_cells, n_genes, triplets);
    let features = std::fs::read_to_string(dir.join("features.tsv")).unwrap();
    m.gene_ids = features
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    m.gene_names = make_unique(
        features
            .lines()
            .map(|l| l.split('\t').nth(1).unwrap().to_string()),
    );
    let cells = std::fs::read_to_string(dir.join("cells.tsv")).unwrap();
    let mut rows = cells.lines();
    let header: Vec<&str> = rows.next().unwrap().split('\t').collect();
    let rows: Vec<Vec<String>> = rows
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    m.cell_ids = rows.iter().map(|r| r[0].clone()).collect();
    m.obs = ObsTable {
        columns: (1..header.len())
            .map(|j| {
                let values: Vec<String> = rows.iter().map(|r| r[j].clone()).collect();
                ObsColumn::categorical_from_strings(header[j], &values)
            })
            .collect(),
    };
    assert_eq!(m.n_genes, m.gene_names.len());
    assert_eq!(m.n_cells, m.cell_ids.len());
    m.validate().unwrap();
    m
}

/// scanpy's `var_names_make_unique`, enough for these files: later duplicates get `-1`, `-2`.
fn make_unique(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    names
        .map(|n| {
            let k = seen.entry(n.clone()).or_insert(0);
            *k += 1;
            if *k == 1 {
                n
            } else {
                format!("{n}-{}", *k - 1)
            }
        })
        .collect()
}

fn reference(file: &str) -> Vec<String> {
    std::fs::read_to_string(PathBuf::from(FIXTURES).join(file))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Reference statistics: gene name -> the named columns, parsed as f64 (`nan` allowed).
fn reference_stats(file: &str) -> (Vec<String>, HashMap<String, Vec<f64>>) {
    let text = std::fs::read_to_string(PathBuf::from(FIXTURES).join(file)).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split('\t')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| {
            let mut f = l.split('\t');
            let gene = f.next().unwrap().to_string();
            (gene, f.map(|v| v.parse::<f64>().unwrap()).collect())
        })
        .collect();
    (header[1..].to_vec(), rows)
}

/// Batch codes from an obs column of the test loader.
fn codes(m: &CountMatrix, key: &str) -> Vec<u32> {
    match &m.obs.get(key).unwrap().values {
        cellvae::data::ObsValues::Categorical { codes, .. } => {
            codes.iter().map(|c| c.unwrap()).collect()
        }
        _ => unreachable!(),
    }
}

/// Compares a selection with scanpy's and returns the overlap fraction.
fn overlap(m: &CountMatrix, selected: &[usize], reference_file: &str) -> f64 {
    let want: HashSet<String> = reference(reference_file).into_iter().collect();
    let got: HashSet<String> = selected.iter().map(|&g| m.gene_names[g].clone()).collect();
    let common = want.intersection(&got).count();
    let mut missing: Vec<&String> = want.difference(&got).collect();
    let mut extra: Vec<&String> = got.difference(&want).collect();
    missing.sort();
    extra.sort();
    eprintln!(
        "{reference_file}: {common} of {} in common; only scanpy: {missing:?}; only cellvae: {extra:?}",
        want.len()
    );
    assert_eq!(got.len(), want.len(), "{reference_file}: selection size");
    common as f64 / want.len() as f64
}

#[test]
fn hvg_pbmc68k_top200_matches_scanpy() {
    let m = load("pbmc68k_reduced_700");
    let selected = highly_variable_genes_seurat_v3(&m, 200, None).unwrap();
    assert!(selected.windows(2).all(|w| w[0] < w[1]), "ascending");
    assert_eq!(
        overlap(&m, &selected, "pbmc68k_reduced_700_top200.txt"),
        1.0
    );
}

#[test]
fn hvg_pbmc68k_by_phase_matches_scanpy() {
    let m = load("pbmc68k_reduced_700");
    let batch = codes(&m, "phase");
    let hvg = seurat_v3(&m, 200, Some(&batch)).unwrap();
    assert_eq!(hvg.n_batches, 3);
    let frac = overlap(&m, &hvg.selected, "pbmc68k_reduced_700_phase_top200.txt");
    assert!(frac >= 0.98, "{frac}");
    let (cols, stats) = reference_stats("pbmc68k_reduced_700_phase_stats.tsv");
    assert_eq!(
        cols,
        [
            "variances_norm",
            "highly_variable_rank",
            "highly_variable_nbatches"
        ]
    );
    let mut worst = 0.0f64;
    let (mut same_rank, mut ranked) = (0, 0);
    for (g, name) in m.gene_names.iter().enumerate() {
        let r = &stats[name];
        worst = worst.max(rel_diff(hvg.variances_norm[g], r[0]));
        assert_eq!(
            f64::from(hvg.n_batches_highly_variable[g]),
            r[2],
            "{name} nbatches"
        );
        if !r[1].is_nan() {
            ranked += 1;
            same_rank += usize::from(hvg.rank[g] == Some(r[1]));
        }
    }
    eprintln!("phase: variances_norm worst relative difference {worst:e}; median rank equal for {same_rank} of {ranked}");
    assert!(worst < 1e-6, "{worst}");
}

/// Checks a one-batch selection against scanpy's: prints and returns the overlap, checks
/// that every gene where the two differ is tied (in scanpy's own values) with the gene at
/// the cutoff, so the difference is only the order of exact ties (numpy's argsort is not
/// stable; cellvae keeps gene order), and that the normalised variances agree.
fn check_against_scanpy(
    m: &CountMatrix,
    selected: &[usize],
    variances_norm: &[f64],
    top_file: &str,
    scanpy_norm: &HashMap<String, f64>,
) -> f64 {
    let frac = overlap(m, selected, top_file);
    let want: HashSet<String> = reference(top_file).into_iter().collect();
    let mut values: Vec<f64> = want.iter().map(|g| scanpy_norm[g]).collect();
    values.sort_by(f64::total_cmp);
    let cutoff = values[0];
    let got: HashSet<String> = selected.iter().map(|&g| m.gene_names[g].clone()).collect();
    for g in want.symmetric_difference(&got) {
        let v = scanpy_norm[g];
        assert!(
            rel_diff(v, cutoff) < 1e-9,
            "{g}: variances_norm {v} is not tied with the cutoff {cutoff}"
        );
    }
    let mut worst = 0.0f64;
    for (g, name) in m.gene_names.iter().enumerate() {
        if let Some(&v) = scanpy_norm.get(name) {
            worst = worst.max(rel_diff(variances_norm[g], v));
        }
    }
    eprintln!(
        "{top_file}: differences are ties at variances_norm = {cutoff}; variances_norm worst \
         relative difference {worst:e} over {} genes",
        scanpy_norm.len()
    );
    assert!(worst < 1e-6, "{worst}");
    assert!(frac >= 0.98, "{frac}");
    frac
}

#[test]
fn hvg_mouse_top300_matches_scanpy() {
    let m = load("mouse_10k_1000");
    let start = std::time::Instant::now();
    let hvg = seurat_v3(&m, 300, None).unwrap();
    eprintln!("mouse_10k_1000 seurat_v3: {:?}", start.elapsed());
    let (cols, stats) = reference_stats("mouse_10k_1000_stats.tsv");
    assert_eq!(
        cols,
        [
            "means",
            "variances",
            "variances_norm",
            "highly_variable_rank"
        ]
    );
    let norm: HashMap<String, f64> = stats.iter().map(|(g, r)| (g.clone(), r[2])).collect();
    check_against_scanpy(
        &m,
        &hvg.selected,
        &hvg.variances_norm,
        "mouse_10k_1000_top300.txt",
        &norm,
    );
    let (mut worst_mean, mut worst_var) = (0.0f64, 0.0f64);
    for (g, name) in m.gene_names.iter().enumerate() {
        let r = &stats[name];
        worst_mean = worst_mean.max(rel_diff(hvg.means[g], r[0]));
        worst_var = worst_var.max(rel_diff(hvg.variances[g], r[1]));
    }
    assert!(
        worst_mean < 1e-12 && worst_var < 1e-12,
        "{worst_mean} {worst_var}"
    );
}

#[test]
fn hvg_wu2020_top2000_matches_scanpy() {
    let m = load("wu2020_200");
    let hvg = seurat_v3(&m, 2000, None).unwrap();
    eprintln!(
        "wu2020: loess used a pseudoinverse at {} vertices",
        hvg.n_pseudoinverse
    );
    let (_, stats) = reference_stats("wu2020_200_stats.tsv");
    let norm: HashMap<String, f64> = stats.iter().map(|(g, r)| (g.clone(), r[0])).collect();
    check_against_scanpy(
        &m,
        &hvg.selected,
        &hvg.variances_norm,
        "wu2020_200_top2000.txt",
        &norm,
    );
}

#[test]
fn hvg_wu2020_by_tiny_batches_is_a_clear_error() {
    let m = load("wu2020_200");
    let opts = QcOptions {
        n_top_genes: Some(2000),
        hvg_batch_key: Some("batch".into()),
        ..Default::default()
    };
    let err = preprocess(&m, &opts).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("batch 'EN3': it has 1 cell"), "{err}");
    assert!(err.contains("choose a batch key"), "{err}");
    // Without the one-cell batch, small batches still leave loess undefined: more than
    // the span's share of the genes sit at one mean (scanpy fails on these too).
    let batch = codes(&m, "batch");
    let mut size = HashMap::new();
    for &b in &batch {
        *size.entry(b).or_insert(0) += 1;
    }
    let keep: Vec<usize> = (0..m.n_cells).filter(|&c| size[&batch[c]] >= 2).collect();
    let err = preprocess(&m.select_cells(&keep), &opts)
        .unwrap_err()
        .to_string();
    eprintln!("{err}");
    assert!(
        err.contains("cannot be fitted") && err.contains("(scanpy fails here too)"),
        "{err}"
    );
}

fn rel_diff(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

/// A small matrix from dense rows (cells x genes) with names `g0..`, `c0..`.
fn dense(rows: &[&[f32]]) -> CountMatrix {
    let n_genes = rows[0].len();
    let mut triplets = Vec::new();
    for (c, r) in rows.iter().enumerate() {
        for (g, &v) in r.iter().enumerate() {
            triplets.push((c as u32, g as u32, v));
        }
    }
    let mut m = CountMatrix::from_triplets(rows.len(), n_genes, triplets);
    m.gene_names = (0..n_genes).map(|g| format!("g{g}")).collect();
    m.gene_ids = m.gene_names.clone();
    m.cell_ids = (0..rows.len()).map(|c| format!("c{c}")).collect();
    m
}

#[test]
fn defaults_drop_only_all_zero_cells_and_genes() {
    // Cell 2 and gene 3 are empty.
    let m = dense(&[
        &[1.0, 0.0, 2.0, 0.0, 5.0],
        &[0.0, 3.0, 0.0, 0.0, 1.0],
        &[0.0, 0.0, 0.0, 0.0, 0.0],
        &[4.0, 1.0, 0.0, 0.0, 0.0],
    ]);
    let (out, report) = preprocess(&m, &QcOptions::default()).unwrap();
    assert_eq!(out.cell_ids, ["c0", "c1", "c3"]);
    assert_eq!(out.gene_names, ["g0", "g1", "g2", "g4"]);
    assert_eq!(report.all_zero_cells_dropped, 1);
    assert_eq!(report.all_zero_genes_dropped, 1);
    assert_eq!(
        (
            report.n_cells_before,
            report.n_genes_before,
            report.n_cells_after,
            report.n_genes_after
        ),
        (4, 5, 3, 4)
    );
    assert_eq!(out.dense_row(2), [4.0, 1.0, 0.0, 0.0]);
    out.validate().unwrap();
    let lines = report.to_lines();
    assert!(
        lines.contains(&"dropped 1 cells with no counts".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"dropped 1 genes with no counts".to_string()),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "output: 3 cells x 4 genes");
}

#[test]
fn qc_filters_drop_what_they_should_in_order() {
    // c0: 10 counts in 3 genes; c1: 1 count (dropped by min_counts = 5); c2: 12 counts in
    // 1 gene (then dropped by min_genes = 2); c3: 8 counts in 3 genes; c4: no counts.
    // Over the kept cells c0, c3: g0 and g2 are in 2 cells, g1 and g3 in 1 (dropped by
    // min_cells = 2), g4 only had counts in c1 and c2, g5 never had any.
    let m = dense(&[
        &[5.0, 3.0, 2.0, 0.0, 0.0, 0.0],
        &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        &[0.0, 0.0, 0.0, 0.0, 12.0, 0.0],
        &[4.0, 0.0, 3.0, 1.0, 0.0, 0.0],
        &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ]);
    let opts = QcOptions {
        min_counts_per_cell: 5,
        min_genes_per_cell: 2,
        min_cells_per_gene: 2,
        ..Default::default()
    };
    let (out, r) = preprocess(&m, &opts).unwrap();
    assert_eq!(out.cell_ids, ["c0", "c3"]);
    assert_eq!(out.gene_names, ["g0", "g2"]);
    assert_eq!(r.all_zero_cells_dropped, 1);
    assert_eq!(r.cells_dropped_min_counts, 1);
    assert_eq!(r.cells_dropped_min_genes, 1);
    assert_eq!(r.all_zero_genes_dropped, 1);
    assert_eq!(r.genes_emptied_by_cell_filters, 1);
    assert_eq!(r.genes_dropped_min_cells, 2); // g1 (c0 only) and g3 (c3 only)
    assert_eq!((r.n_cells_after, r.n_genes_after), (2, 2));
    assert_eq!(out.dense_row(0), [5.0, 2.0]);
    assert_eq!(out.dense_row(1), [4.0, 3.0]);
    let lines = r.to_lines().join("\n");
    assert!(
        lines.contains("dropped 1 cells with fewer than 5 counts (min_counts_per_cell)"),
        "{lines}"
    );
    assert!(
        lines.contains("dropped 1 cells with fewer than 2 detected genes"),
        "{lines}"
    );
    assert!(
        lines.contains("dropped 2 genes detected in fewer than 2 cells"),
        "{lines}"
    );
    assert!(
        lines.contains("dropped 1 genes whose only counts were in the dropped cells"),
        "{lines}"
    );
    // The report serialises for the page and the command line.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["cells_dropped_min_genes"], 1);
}

#[test]
fn filters_that_remove_everything_are_errors_naming_the_filter() {
    let m = dense(&[&[1.0, 2.0], &[3.0, 0.0]]);
    let opts = QcOptions {
        min_counts_per_cell: 100,
        ..Default::default()
    };
    let err = preprocess(&m, &opts).unwrap_err().to_string();
    assert!(err.contains("min_counts_per_cell = 100"), "{err}");
    assert!(err.contains("largest cell has 3 counts"), "{err}");
    let opts = QcOptions {
        min_genes_per_cell: 3,
        ..Default::default()
    };
    let err = preprocess(&m, &opts).unwrap_err().to_string();
    assert!(
        err.contains("min_genes_per_cell = 3") && err.contains("has 2"),
        "{err}"
    );
    let opts = QcOptions {
        min_cells_per_gene: 3,
        ..Default::default()
    };
    let err = preprocess(&m, &opts).unwrap_err().to_string();
    assert!(
        err.contains("min_cells_per_gene = 3") && err.contains("in 2 of the 2 cells"),
        "{err}"
    );
    let empty = dense(&[&[0.0, 0.0], &[0.0, 0.0]]);
    let err = preprocess(&empty, &QcOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("no counts"), "{err}");
}

#[test]
fn bad_gene_selection_settings_are_errors() {
    let mut m = dense(&[&[1.0, 2.0], &[3.0, 0.0]]);
    let opts = QcOptions {
        n_top_genes: Some(0),
        ..Default::default()
    };
    let err = preprocess(&m, &opts).unwrap_err().to_string();
    assert!(err.contains("n_top_genes is 0"), "{err}");
    m.obs.insert(ObsColumn::categorical_from_strings(
        "sample",
        &["a".into(), "b".into()],
    ));
    m.obs.insert(ObsColumn::categorical_from_strings(
        "donor",
        &["x".into(), "x".into()],
    ));
    let opts = QcOptions {
        n_top_genes: Some(1),
        hvg_batch_key: Some("batch".into()),
        ..Default::default()
    };
    let err = preprocess(&m, &opts).unwrap_err().to_string();
    assert!(
        err.contains("'batch'") && err.contains("available columns: sample, donor"),
        "{err}"
    );
    assert!(highly_variable_genes_seurat_v3(&m, 0, None).is_err());
}

#[test]
fn preprocess_selects_highly_variable_genes_and_reports_them() {
    let m = load("pbmc68k_reduced_700");
    let opts = QcOptions {
        min_genes_per_cell: 1,
        n_top_genes: Some(200),
        hvg_batch_key: Some("phase".into()),
        ..Default::default()
    };
    let (out, r) = preprocess(&m, &opts).unwrap();
    let batch = codes(&m, "phase");
    let direct = highly_variable_genes_seurat_v3(&m, 200, Some(&batch)).unwrap();
    let names: Vec<&String> = direct.iter().map(|&g| &m.gene_names[g]).collect();
    assert_eq!(
        out.gene_names.iter().collect::<Vec<_>>(),
        names,
        "original order kept"
    );
    assert_eq!(r.n_highly_variable_genes, Some(200));
    assert_eq!(r.hvg_n_batches, 3);
    assert_eq!(r.genes_dropped_not_highly_variable, 765 - 200);
    assert_eq!(r.n_cells_after + r.cells_empty_after_gene_selection, 700);
    assert_eq!(out.obs.get("phase").unwrap().len(), out.n_cells);
    out.validate().unwrap();
    let lines = r.to_lines();
    eprintln!("{}", lines.join("\n"));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("kept 200 highly variable genes")));
    // More genes asked for than exist: all kept, with a note.
    let opts = QcOptions {
        n_top_genes: Some(5000),
        ..Default::default()
    };
    let (out, r) = preprocess(&m, &opts).unwrap();
    assert_eq!(out.n_genes, 765);
    assert!(
        r.notes.iter().any(|n| n.contains("every gene was kept")),
        "{:?}",
        r.notes
    );
}

#[test]
fn cells_emptied_by_gene_filters_are_dropped_and_reported() {
    // g2 is only in c2 and is dropped by min_cells = 2, which leaves c2 with no counts.
    let m = dense(&[&[1.0, 1.0, 0.0], &[1.0, 2.0, 0.0], &[0.0, 0.0, 5.0]]);
    let opts = QcOptions {
        min_cells_per_gene: 2,
        ..Default::default()
    };
    let (out, r) = preprocess(&m, &opts).unwrap();
    assert_eq!(out.cell_ids, ["c0", "c1"]);
    assert_eq!(out.gene_names, ["g0", "g1"]);
    assert_eq!(r.genes_dropped_min_cells, 1);
    assert_eq!(r.cells_empty_after_gene_selection, 1);
    assert_eq!((r.n_cells_after, r.n_genes_after), (2, 2));
    let lines = r.to_lines();
    assert!(
        lines.contains(&"dropped 1 cells with no counts in the kept genes".to_string()),
        "{lines:?}"
    );
}
