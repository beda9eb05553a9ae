//! Tests of the wasm32 build in headless Chromium (wasm-bindgen-test-runner drives it
//! through chromedriver with the WebGPU flags; see `cargo xtask test`): the readers on
//! the built-in demo, and a WGSL kernel on the browser's WebGPU adapter against its CPU
//! twin. No adapter is a failure.
#![cfg(target_arch = "wasm32")]

use cellvae::backend::{cpu, gpu};
use cellvae::data::{read_inputs, InputFile, ReadOptions};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const DEMO_MATRIX: &[u8] = include_bytes!("../www/demo/pbmc68k_reduced_700/matrix.mtx.gz");
const DEMO_FEATURES: &[u8] = include_bytes!("../www/demo/pbmc68k_reduced_700/features.tsv");
const DEMO_BARCODES: &[u8] = include_bytes!("../www/demo/pbmc68k_reduced_700/barcodes.tsv");
const DEMO_CELLS: &[u8] = include_bytes!("../www/demo/pbmc68k_reduced_700/cells.tsv");

/// Shape and total from the Matrix Market text itself (independent of the reader).
fn mtx_facts(gz: &[u8]) -> (usize, usize, usize, f64) {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('%'));
    let dims: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let total: f64 = lines
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<f64>().unwrap())
        .sum();
    (dims[1], dims[0], dims[2], total)
}

#[wasm_bindgen_test]
fn reads_the_demo_in_the_browser() {
    let files = vec![
        InputFile::new("demo/matrix.mtx.gz", DEMO_MATRIX.to_vec()),
        InputFile::new("demo/features.tsv", DEMO_FEATURES.to_vec()),
        InputFile::new("demo/barcodes.tsv", DEMO_BARCODES.to_vec()),
    ];
    let obs = InputFile::new("demo/cells.tsv", DEMO_CELLS.to_vec());
    let m = read_inputs(&files, Some(&obs), &ReadOptions::default()).unwrap();
    let (cells, genes, nnz, total) = mtx_facts(DEMO_MATRIX);
    assert_eq!((m.n_cells, m.n_genes, m.nnz()), (cells, genes, nnz));
    assert_eq!(m.total_counts(), total);
    let cell_type = m.obs.get("cell_type").expect("cell_type joined");
    assert_eq!(cell_type.summary().n_levels, 10);
}

#[wasm_bindgen_test]
async fn log1p_on_webgpu_matches_cpu() {
    let ctx = gpu::GpuContext::new()
        .await
        .expect("headless Chromium must expose a WebGPU adapter (SwiftShader flags)");
    let x: Vec<f32> = (0..5000)
        .map(|i| (i % 331) as f32 * 0.731 + 1e-6 * i as f32)
        .collect();
    let got = gpu::kernels::log1p(&ctx, &x).await.unwrap();
    let mut want = vec![0.0; x.len()];
    cpu::log1p::log1p(&x, &mut want);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
            "[{i}] gpu {g} cpu {w}"
        );
    }
}
