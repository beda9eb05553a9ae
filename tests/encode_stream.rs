//! Streaming the cells of a data set (`cellvae::data::stream`, `cellvae encode`): the
//! windows of an `.h5ad`, a 10x `.h5` and a Matrix Market folder, put together, are the
//! matrix the whole-file readers read; the streamed encoder writes what the whole one
//! writes whatever the window size, on the CPU and the GPU; files that cannot be
//! streamed are read whole; damage found mid-stream is named.

mod common;

use cellvae::data::h5ad_out::{write_h5ad, H5adContent};
use cellvae::data::stream::CellStream;
use cellvae::data::{load_paths, read_inputs, CountMatrix, ReadOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn tmp(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("encode_stream")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn h5ad_bytes(m: &CountMatrix) -> Vec<u8> {
    write_h5ad(&H5adContent {
        matrix: m,
        keep_counts: true,
        obsm: Vec::new(),
        uns: Vec::new(),
    })
    .unwrap()
}

fn tenx_h5_bytes(m: &CountMatrix) -> Vec<u8> {
    cellvae::data::synthetic::tenx_h5_bytes(m).unwrap()
}

/// All windows of `paths` of at most `window` cells, put back together.
fn streamed(paths: &[PathBuf], window: usize) -> (CountMatrix, bool) {
    let mut s = CellStream::open(paths, None, &ReadOptions::default()).unwrap();
    let n = s.n_cells();
    let mut all: Option<CountMatrix> = None;
    let mut windows = 0;
    while let Some(c) = s.next_chunk(window).unwrap() {
        assert!(
            c.n_cells <= window && c.n_cells > 0,
            "a window of {} cells",
            c.n_cells
        );
        c.validate().unwrap();
        windows += 1;
        match &mut all {
            None => all = Some(c),
            Some(a) => a.append(c).unwrap(),
        }
    }
    assert_eq!(windows, n.div_ceil(window), "windows of {window} cells");
    (all.unwrap(), s.streamed())
}

fn whole(paths: &[PathBuf]) -> CountMatrix {
    read_inputs(&load_paths(paths).unwrap(), None, &ReadOptions::default()).unwrap()
}

fn assert_same(what: &str, a: &CountMatrix, b: &CountMatrix) {
    assert_eq!(a.n_cells, b.n_cells, "{what}: cells");
    assert_eq!(a.n_genes, b.n_genes, "{what}: genes");
    assert_eq!(a.indptr, b.indptr, "{what}: indptr");
    assert_eq!(a.indices, b.indices, "{what}: indices");
    assert_eq!(a.data, b.data, "{what}: values");
    assert_eq!(a.cell_ids, b.cell_ids, "{what}: cell ids");
    assert_eq!(a.gene_ids, b.gene_ids, "{what}: gene ids");
    assert_eq!(a.gene_names, b.gene_names, "{what}: gene names");
    assert_eq!(a.obs, b.obs, "{what}: metadata");
}

/// The demo (700 cells, cell types and phases) written as an .h5ad, a 10x .h5 and the
/// 10x folder it ships as: every window size gives back what the whole-file reader reads.
#[test]
fn windows_put_together_are_the_whole_matrix() {
    let dir = tmp("formats");
    let demo = common::demo();
    let h5ad = dir.join("demo.h5ad");
    std::fs::write(&h5ad, h5ad_bytes(&demo)).unwrap();
    let h5 = dir.join("demo.h5");
    std::fs::write(&h5, tenx_h5_bytes(&demo)).unwrap();
    let folder = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/www/demo/pbmc68k_reduced_700"
    ));
    let mtx = dir.join("mtx");
    std::fs::create_dir_all(&mtx).unwrap();
    for f in ["matrix.mtx.gz", "features.tsv", "barcodes.tsv"] {
        std::fs::copy(folder.join(f), mtx.join(f)).unwrap();
    }
    for (what, path) in [("h5ad", &h5ad), ("10x h5", &h5), ("mtx folder", &mtx)] {
        let paths = vec![path.clone()];
        let reference = whole(&paths);
        assert_eq!(reference.n_cells, 700);
        for window in [1, 7, 256, 700, 10_000] {
            let (m, was_streamed) = streamed(&paths, window);
            assert!(was_streamed, "{what} is streamed");
            assert_same(&format!("{what}, windows of {window}"), &m, &reference);
        }
    }
}

/// What cannot be streamed is read whole, and gives the same cells: an .h5ad stored by
/// gene (CSC), a gzip-compressed .h5ad, and a metadata table to join.
#[test]
fn what_cannot_be_streamed_is_read_whole() {
    let dir = tmp("whole");
    let mut fb = hdf5_pure::FileBuilder::new();
    let mut x = fb.create_group("X");
    x.set_attr(
        "encoding-type",
        hdf5_pure::AttrValue::VarLenString("csc_matrix".into()),
    );
    x.set_attr(
        "encoding-version",
        hdf5_pure::AttrValue::VarLenString("0.1.0".into()),
    );
    x.set_attr("shape", hdf5_pure::AttrValue::I64Array(vec![3, 2]));
    x.create_dataset("data").with_f32_data(&[1.0, 2.0, 3.0]);
    x.create_dataset("indices").with_i32_data(&[0, 2, 1]);
    x.create_dataset("indptr").with_i64_data(&[0, 2, 3]);
    fb.add_group(x.finish());
    let csc = dir.join("csc.h5ad");
    std::fs::write(&csc, fb.finish().unwrap()).unwrap();
    let (m, was_streamed) = streamed(std::slice::from_ref(&csc), 2);
    assert!(!was_streamed);
    assert_same("csc", &m, &whole(&[csc]));
    assert_eq!(m.dense_row(2), vec![2.0, 0.0]);

    let demo = common::demo();
    let gz = dir.join("demo.h5ad.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, &h5ad_bytes(&demo)).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let (m, was_streamed) = streamed(std::slice::from_ref(&gz), 100);
    assert!(!was_streamed);
    assert_same("gzip", &m, &whole(&[gz]));
}

/// A matrix whose first cells hold counts and a later one does not stops there, naming
/// the dataset, the element and the cell; an .h5ad whose X is not counts from the start
/// is read from layers/counts as the whole-file reader reads it.
#[test]
fn a_value_that_is_not_a_count_is_named_mid_stream() {
    let dir = tmp("noncount");
    let n = 5000; // more than the first window the matrix is chosen by
    let mut m = CountMatrix {
        n_cells: n,
        n_genes: 2,
        indptr: (0..=n).collect(),
        indices: vec![1; n],
        data: vec![3.0; n],
        gene_ids: vec!["a".into(), "b".into()],
        gene_names: vec!["a".into(), "b".into()],
        cell_ids: (0..n).map(|c| format!("c{c}")).collect(),
        ..Default::default()
    };
    m.data[4500] = 0.5;
    let p = dir.join("late.h5ad");
    std::fs::write(&p, h5ad_bytes(&m)).unwrap();
    let mut s = CellStream::open(&[p], None, &ReadOptions::default()).unwrap();
    let mut err = None;
    while err.is_none() {
        match s.next_chunk(1000) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => err = Some(e.to_string()),
        }
    }
    let err = err.expect("the value 0.5 is refused");
    assert!(
        err.contains("/X/data, element 4500 (cell 4500, gene 1)") && err.contains("raw UMI counts"),
        "{err}"
    );
}

/// A Matrix Market file not ordered by cell is refused at the first entry that goes
/// back (with the line and what to do); a truncated one as the whole reader refuses it.
#[test]
fn matrix_market_out_of_order_or_truncated_is_named() {
    let dir = tmp("mtx");
    let unordered = dir.join("matrix.mtx");
    std::fs::write(
        &unordered,
        "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 2 4\n2 1 1\n3 2 2\n",
    )
    .unwrap();
    let mut s = CellStream::open(&[unordered], None, &ReadOptions::default()).unwrap();
    let e = s.next_chunk(10).unwrap_err().to_string();
    assert!(
        e.contains("line 4") && e.contains("cell 1 after entries for cell 2") && e.contains("sort"),
        "{e}"
    );

    let truncated = dir.join("t.mtx");
    std::fs::write(
        &truncated,
        "%%MatrixMarket matrix coordinate integer general\n3 2 3\n1 1 4\n2 1 1\n",
    )
    .unwrap();
    let mut s = CellStream::open(&[truncated], None, &ReadOptions::default()).unwrap();
    let e = s.next_chunk(10).unwrap_err().to_string();
    assert!(
        e.contains("says 3 entries but the file holds only 2"),
        "{e}"
    );
}

fn cellvae(args: &[&str]) -> (String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cellvae"))
        .args(args)
        .output()
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{args:?}: {err}");
    (out, err)
}

fn latent_values(tsv: &str) -> Vec<f32> {
    tsv.lines()
        .skip(1)
        .flat_map(|l| l.split('\t').skip(1).map(|v| v.parse::<f32>().unwrap()))
        .collect()
}

/// `cellvae encode` streams: windows of 3 cells write the latent.tsv of one window of
/// all of them, byte for byte, equal to what training wrote; `--backend gpu` writes the
/// same means within 1e-4; `--out-h5ad` holds every cell, gathered from the windows.
#[test]
fn encode_streams_on_cpu_and_gpu() {
    let dir = tmp("cli");
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pbmc68k_reduced_700");
    let p = |n: &str| dir.join(n).display().to_string();
    cellvae(&[
        "train",
        demo,
        "--epochs",
        "2",
        "--top-genes",
        "200",
        "--out",
        &p("model"),
    ]);
    let trained = std::fs::read_to_string(dir.join("model/latent.tsv")).unwrap();
    let (small, err) = cellvae(&["encode", &p("model"), demo, "--chunk-cells", "3"]);
    assert!(
        err.contains("streamed from disk") && err.contains("3 cells at a time"),
        "{err}"
    );
    let (big, _) = cellvae(&["encode", &p("model"), demo, "--chunk-cells", "100000"]);
    assert_eq!(small, big, "windows of 3 and of all cells");
    // Training keeps the model's genes of cells with counts in them: the same cells here.
    assert_eq!(small.lines().count(), trained.lines().count());
    assert_eq!(latent_values(&small), latent_values(&trained));

    let (gpu, err) = cellvae(&[
        "encode",
        &p("model"),
        demo,
        "--backend",
        "gpu",
        "--chunk-cells",
        "250",
        "--out-h5ad",
        &p("cells.h5ad"),
    ]);
    assert!(err.contains("on the GPU"), "{err}");
    common::assert_close(
        "gpu latent",
        &latent_values(&gpu),
        &latent_values(&small),
        1e-4,
        1e-4,
    );
    let back = whole(&[dir.join("cells.h5ad")]);
    assert_eq!((back.n_cells, back.n_genes), (700, 200));
    let ids: Vec<&str> = small
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(back.cell_ids, ids);
    assert!(back.obs.get("louvain").is_none(), "no metadata was given");
}
