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

fn values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + salt) * 7919) % 1013) as f32 / 1013.0 - 0.5)
        .collect()
}

/// The page's matrix products (this build's SIMD128 kernel, src/backend/cpu/gemm_simd128.rs)
/// against f64 sums, through the layer functions that use them: `y = x W + bias`,
/// `dx = dy W^T`, `dw = x^T dy` (transposes by strides), at shapes that are not
/// multiples of the register tile, longer than its k block and its row block, and long
/// enough in k to be cut into chunks; and the rows of a product computed apart give the
/// bits of the whole (what splitting a product over threads relies on).
#[wasm_bindgen_test]
fn matrix_products_match_f64_in_the_browser() {
    for &(b, n_in, n_out) in &[
        (1, 1, 1),
        (5, 3, 7),
        (37, 300, 29),
        (130, 70, 9),
        (128, 128, 765),
        (20, 2100, 12),
        (67, 513, 130),
    ] {
        let (x, w, bias, dy) = (
            values(b * n_in, 1),
            values(n_in * n_out, 2),
            values(n_out, 3),
            values(b * n_out, 4),
        );
        let mut y = vec![f32::NAN; b * n_out];
        cpu::linear::forward(&x, &w, &bias, b, n_in, n_out, &mut y);
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; b * n_in],
            vec![f32::NAN; n_in * n_out],
            vec![f32::NAN; n_out],
        );
        cpu::linear::backward(&x, &w, &dy, b, n_in, n_out, Some(&mut dx), &mut dw, &mut db);
        let f = |v: f32| f64::from(v);
        let close = |got: f32, want: f64, terms: usize, what: &str| {
            let tol = 2e-5 * (terms as f64).sqrt().max(1.0);
            assert!(
                (f(got) - want).abs() <= tol,
                "{what} of {b} x {n_in} x {n_out}: {got} against {want}"
            );
        };
        for r in 0..b {
            for o in 0..n_out {
                let want = f(bias[o])
                    + (0..n_in)
                        .map(|i| f(x[r * n_in + i]) * f(w[i * n_out + o]))
                        .sum::<f64>();
                close(y[r * n_out + o], want, n_in, "y");
            }
            for i in 0..n_in {
                let want: f64 = (0..n_out)
                    .map(|o| f(dy[r * n_out + o]) * f(w[i * n_out + o]))
                    .sum();
                close(dx[r * n_in + i], want, n_out, "dx");
            }
        }
        for i in 0..n_in {
            for o in 0..n_out {
                let want: f64 = (0..b)
                    .map(|r| f(x[r * n_in + i]) * f(dy[r * n_out + o]))
                    .sum();
                close(dw[i * n_out + o], want, b, "dw");
            }
        }
        for o in 0..n_out {
            let want: f64 = (0..b).map(|r| f(dy[r * n_out + o])).sum();
            close(db[o], want, b, "dbias");
        }
        // The first rows and the rest apart give the bits of the whole.
        let cut = b / 2;
        let mut parts = vec![f32::NAN; b * n_out];
        let (top, bottom) = parts.split_at_mut(cut * n_out);
        cpu::linear::forward(&x[..cut * n_in], &w, &bias, cut, n_in, n_out, top);
        cpu::linear::forward(&x[cut * n_in..], &w, &bias, b - cut, n_in, n_out, bottom);
        assert_eq!(parts, y, "rows apart, {b} x {n_in} x {n_out}");
    }
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

/// A few training steps on the browser's WebGPU adapter land where the CPU backend does,
/// in the same page (the real demo cells, a small model), for every likelihood and with
/// batch covariates: between them these configurations run every kernel of the training
/// step (linear, one-hot, batch norm with its ReLU + dropout epilogue, reparameterisation
/// with the KL fused, softmax, NB, ZINB, Poisson, step guard, Adam) in Chromium against
/// its CPU twin (the standalone relu_dropout and kl entry points, no longer in the step,
/// are checked natively in tests/gpu_kernels).
async fn gpu_steps_match_cpu(cfg: cellvae::model::ModelConfig, what: &str) {
    use cellvae::model::{Backend, CpuBackend, GpuBackend, Minibatch, Params};
    use cellvae::model::{StepHyper, TrainState};
    let files = vec![
        InputFile::new("demo/matrix.mtx.gz", DEMO_MATRIX.to_vec()),
        InputFile::new("demo/features.tsv", DEMO_FEATURES.to_vec()),
        InputFile::new("demo/barcodes.tsv", DEMO_BARCODES.to_vec()),
    ];
    let m = read_inputs(&files, None, &ReadOptions::default()).unwrap();
    assert_eq!(cfg.n_genes, m.n_genes);
    let codes: Vec<u32> = (0..m.n_cells as u32)
        .map(|c| c % cfg.n_batches.max(1) as u32)
        .collect();
    let state = TrainState::new(Params::init(&cfg, 3).unwrap());
    let mut cpu = CpuBackend::new();
    cpu.load(&state).await.unwrap();
    let mut gpu = GpuBackend::create()
        .await
        .expect("headless Chromium must expose a WebGPU adapter (SwiftShader flags)");
    gpu.load(&state).await.unwrap();
    for step in 0..3u32 {
        let rows: Vec<usize> = (0..24)
            .map(|i| (i * 7 + step as usize * 3) % m.n_cells)
            .collect();
        let mb = Minibatch::gather(&m, &codes, &rows);
        let hyper = StepHyper {
            step,
            seed: 5,
            lr: 1e-3,
            kl_weight: 0.5,
            adam_eps: 1e-2,
            weight_decay: 1e-6,
        };
        let a = cpu.train_step(&mb, &hyper).await.unwrap();
        let b = gpu.train_step(&mb, &hyper).await.unwrap();
        assert!(a.finite && b.finite, "{what}");
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * a.loss.abs(),
            "{what} step {step}: cpu {} gpu {}",
            a.loss,
            b.loss
        );
    }
    let (pc, pg) = (cpu.save().await.unwrap(), gpu.save().await.unwrap());
    let worst = pc
        .params
        .values
        .iter()
        .zip(&pg.params.values)
        .map(|(x, y)| (x - y).abs() / (1e-5 + 1e-3 * x.abs()))
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1.0,
        "{what}: parameters differ beyond 1e-5 + 1e-3*|cpu| (worst ratio {worst})"
    );
}

fn small_config(n_batches: usize) -> cellvae::model::ModelConfig {
    let mut cfg = cellvae::model::ModelConfig::scvi_defaults(765, n_batches);
    cfg.n_hidden = 16;
    cfg.n_latent = 3;
    cfg
}

#[wasm_bindgen_test]
async fn gpu_training_steps_match_cpu_in_the_browser() {
    gpu_steps_match_cpu(small_config(1), "nb").await;
}

#[wasm_bindgen_test]
async fn gpu_zinb_batches_two_layers_match_cpu_in_the_browser() {
    use cellvae::model::{Dispersion, Likelihood};
    let mut cfg = small_config(3);
    cfg.likelihood = Likelihood::Zinb;
    cfg.dispersion = Dispersion::GeneBatch;
    cfg.n_layers = 2;
    cfg.encode_batch = true;
    gpu_steps_match_cpu(cfg, "zinb, gene-batch, 2 layers, encode batch").await;
}

#[wasm_bindgen_test]
async fn gpu_poisson_batches_match_cpu_in_the_browser() {
    let mut cfg = small_config(2);
    cfg.likelihood = cellvae::model::Likelihood::Poisson;
    gpu_steps_match_cpu(cfg, "poisson, 2 batches").await;
}

/// The page's GPU training loop (Trainer<GpuBackend> awaited: queued groups of steps, async readback)
/// follows the CPU Trainer step for step on the demo cells, across an epoch's end.
#[wasm_bindgen_test]
async fn gpu_trainer_follows_the_cpu_trainer_in_the_browser() {
    use cellvae::model::{CpuBackend, GpuBackend, ModelConfig, Params, TrainState};
    use cellvae::train::{TrainConfig, Trainer};
    let files = vec![
        InputFile::new("demo/matrix.mtx.gz", DEMO_MATRIX.to_vec()),
        InputFile::new("demo/features.tsv", DEMO_FEATURES.to_vec()),
        InputFile::new("demo/barcodes.tsv", DEMO_BARCODES.to_vec()),
    ];
    let m = read_inputs(&files, None, &ReadOptions::default()).unwrap();
    let mut cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    cfg.n_hidden = 16;
    cfg.n_latent = 2;
    let state = TrainState::new(Params::init(&cfg, 4).unwrap());
    let cells: Vec<usize> = (0..200).collect();
    let mut tc = TrainConfig::scvi_defaults(cells.len());
    tc.batch_size = 64;
    tc.epochs = 3;
    fn clock() -> f64 {
        0.0
    }
    let gpu = GpuBackend::create().await.expect("a WebGPU adapter");
    let mut g = Trainer::new_async(gpu, tc.clone(), state.clone(), cells.clone(), vec![], clock)
        .await
        .unwrap();
    let mut c = Trainer::new(CpuBackend::new(), tc, state, cells, vec![], clock).unwrap();
    // 200 cells in 64s: 4 steps per epoch; 10 steps cross two epoch ends.
    let got = g.run_steps_async(&m, 10).await.unwrap();
    assert_eq!(got.len(), 10);
    for (i, (lg, _)) in got.iter().enumerate() {
        let (lc, _) = c.step(&m).unwrap();
        assert!(
            (lg.loss - lc.loss).abs() <= 1e-4 * lc.loss.abs(),
            "step {i}: gpu {} cpu {}",
            lg.loss,
            lc.loss
        );
    }
    assert_eq!(g.schedule.epoch(), 2);
    assert_eq!(g.schedule.history.len(), c.history.len());
    let z = g.backend.latent(&m, &[], &[0, 1, 2, 3]).await.unwrap();
    assert_eq!(z.len(), 8);
    assert!(z.iter().all(|v| v.is_finite()));
}

/// The page's file reader (`FileBytes`): pieces appended up to the declared size, a file
/// that grows past it refused with its name, and what was read parsed by `read_files`.
#[wasm_bindgen_test]
fn file_bytes_take_pieces_up_to_the_declared_size() {
    use cellvae::web::{read_files, FileBytes};
    let piece = |f: &mut FileBytes, b: &[u8]| f.push(b).is_ok();
    let mut grown = FileBytes::new("grown.tsv".into(), 4.0).expect("4 bytes");
    assert!(piece(&mut grown, b"ab"));
    assert!(piece(&mut grown, b"cd"));
    assert!(
        !piece(&mut grown, b"e"),
        "a fifth byte is past the declared 4"
    );
    let file = |name: &str, bytes: &[u8]| {
        let mut f = FileBytes::new(name.into(), bytes.len() as f64).expect("room");
        for chunk in bytes.chunks(4096) {
            f.push(chunk).expect("within the size");
        }
        f
    };
    let files = vec![
        file("demo/matrix.mtx.gz", DEMO_MATRIX),
        file("demo/features.tsv", DEMO_FEATURES),
        file("demo/barcodes.tsv", DEMO_BARCODES),
    ];
    let d = read_files(files, Some(file("demo/cells.tsv", DEMO_CELLS))).expect("the demo reads");
    let (cells, genes, _, _) = mtx_facts(DEMO_MATRIX);
    assert_eq!((d.n_cells(), d.n_genes()), (cells, genes));
}
