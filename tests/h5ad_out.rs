//! `.h5ad` output (`cellvae::data::h5ad_out`): what cellvae writes, cellvae's own reader
//! reads back exactly (counts, cell ids, genes, every metadata column), and the latent
//! means and settings are where anndata puts them. anndata itself read the file written
//! by `cellvae encode --out-h5ad` in tests/fixtures/h5ad_out/check_anndata.py (recorded in
//! its README).
#![cfg(not(target_arch = "wasm32"))]

mod common;
use common::demo;

use cellvae::data::h5ad_out::{write_h5ad, H5adContent};
use cellvae::data::obs::ObsValues;
use cellvae::data::{read_inputs, InputFile, ReadOptions};

#[test]
fn an_h5ad_written_reads_back_the_same() {
    let mut m = demo();
    // A numeric and a text column besides the categorical ones, a missing category.
    m.obs.insert(cellvae::data::obs::ObsColumn {
        name: "score".into(),
        values: ObsValues::Numeric((0..700).map(|i| i as f64 / 7.0).collect()),
    });
    m.obs.insert(cellvae::data::obs::ObsColumn {
        name: "note".into(),
        values: ObsValues::Text((0..700).map(|i| format!("n{i} <b>\"x\"</b>")).collect()),
    });
    let latent: Vec<f32> = (0..700 * 3).map(|i| i as f32 * 0.5 - 3.0).collect();
    let bytes = write_h5ad(&H5adContent {
        matrix: &m,
        keep_counts: true,
        obsm: vec![("X_cellvae", &latent, 3)],
        uns: vec![("cellvae", "{\"n_latent\": 3}".into())],
    })
    .unwrap();
    let back = read_inputs(
        &[InputFile::new("out.h5ad", bytes.clone())],
        None,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!(back.format, "h5ad");
    assert_eq!((back.n_cells, back.n_genes), (700, m.n_genes));
    assert_eq!(back.indptr, m.indptr);
    assert_eq!(back.indices, m.indices);
    assert_eq!(back.data, m.data);
    assert_eq!(back.cell_ids, m.cell_ids);
    assert_eq!(back.gene_names, m.gene_names);
    assert_eq!(back.gene_ids, m.gene_ids);
    for col in &m.obs.columns {
        let b = back
            .obs
            .get(&col.name)
            .unwrap_or_else(|| panic!("column {} lost", col.name));
        for i in [0, 1, 350, 699] {
            assert_eq!(
                b.value_string(i),
                col.value_string(i),
                "{} row {i}",
                col.name
            );
        }
    }
    // obsm and uns where anndata keeps them.
    let f = hdf5_pure::File::from_bytes(bytes).unwrap();
    let d = f.dataset("obsm/X_cellvae").unwrap();
    assert_eq!(d.shape().unwrap(), vec![700, 3]);
    assert_eq!(d.read_f32().unwrap(), latent);
    assert_eq!(
        f.dataset("uns/cellvae").unwrap().read_string().unwrap(),
        vec!["{\"n_latent\": 3}".to_string()]
    );

    // Minified: no X, the rest kept; cellvae then says it has no counts.
    let small = write_h5ad(&H5adContent {
        matrix: &m,
        keep_counts: false,
        obsm: vec![("X_cellvae", &latent, 3)],
        uns: vec![],
    })
    .unwrap();
    let f = hdf5_pure::File::from_bytes(small.clone()).unwrap();
    assert!(f.dataset("obsm/X_cellvae").is_ok());
    assert!(f.group("X").is_err() && f.dataset("X").is_err());
    let e = read_inputs(
        &[InputFile::new("small.h5ad", small)],
        None,
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("small.h5ad"), "{e}");
}

/// `cellvae train --out-h5ad` and `cellvae encode --out-h5ad [--drop-counts]`: files
/// cellvae reads back, with the latent means of latent.tsv.
#[test]
fn the_command_line_writes_h5ad() {
    use std::process::Command;
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pbmc68k_reduced_700");
    let cells = format!("{demo}/cells.tsv");
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("h5ad_out");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let p = |n: &str| tmp.join(n).display().to_string();
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_cellvae"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "train",
        demo,
        "--obs",
        &cells,
        "--epochs",
        "2",
        "--top-genes",
        "100",
        "--out",
        &p("model"),
        "--out-h5ad",
        &p("train.h5ad"),
    ]);
    let model = p("model");
    run(&[
        "encode",
        &model,
        demo,
        "--obs",
        &cells,
        "--out",
        &p("latent.tsv"),
        "--out-h5ad",
        &p("small.h5ad"),
        "--drop-counts",
    ]);
    let bytes = std::fs::read(p("train.h5ad")).unwrap();
    let back = read_inputs(
        &[InputFile::new("train.h5ad", bytes.clone())],
        None,
        &ReadOptions::default(),
    )
    .unwrap();
    assert_eq!((back.n_cells, back.n_genes), (700, 100));
    assert!(back.obs.get("cell_type").is_some());
    let latent: Vec<f32> = std::fs::read_to_string(tmp.join("model/latent.tsv"))
        .unwrap()
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split('\t')
                .skip(1)
                .map(|v| v.parse::<f32>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let f = hdf5_pure::File::from_bytes(bytes).unwrap();
    assert_eq!(
        f.dataset("obsm/X_cellvae").unwrap().read_f32().unwrap(),
        latent
    );
    let settings = f.dataset("uns/cellvae").unwrap().read_string().unwrap();
    let v: serde_json::Value = serde_json::from_str(&settings[0]).unwrap();
    assert_eq!(v["model"]["n_genes"], 100);
    // encode's minified file: the same latent means, no counts.
    let f = hdf5_pure::File::from_bytes(std::fs::read(p("small.h5ad")).unwrap()).unwrap();
    assert_eq!(
        f.dataset("obsm/X_cellvae").unwrap().read_f32().unwrap(),
        latent
    );
    assert!(f.group("X").is_err());
}
