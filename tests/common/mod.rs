//! Helpers shared by the test binaries: the built-in demo data set; for the GPU tests
//! (`tests/gpu_kernels/`, `tests/gpu_parity.rs`) the context, seeded inputs, and llm.c's
//! `validate_result` comparison. Each binary uses a part of them.
#![allow(dead_code)]

use cellvae::backend::gpu::GpuContext;

/// The built-in demo: 700 PBMCs with cell types and phases (www/demo), read as the page
/// reads it.
pub fn demo() -> cellvae::CountMatrix {
    use cellvae::data::{read_inputs, InputFile, ReadOptions};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pbmc68k_reduced_700/");
    let read = |f: &str| InputFile::new(f, std::fs::read(format!("{dir}{f}")).unwrap());
    let files: Vec<InputFile> = ["matrix.mtx.gz", "features.tsv", "barcodes.tsv"]
        .iter()
        .map(|f| read(f))
        .collect();
    read_inputs(&files, Some(&read("cells.tsv")), &ReadOptions::default()).unwrap()
}
use cellvae::block_on;

/// The GPU context of a test. No adapter is a failure (the GPU tests are marked ignored
/// instead when `CELLVAE_SKIP_GPU_TESTS` is set at build time; see `build.rs`).
pub fn gpu_context() -> GpuContext {
    match block_on(GpuContext::new()) {
        Ok(ctx) => ctx,
        Err(e) => panic!(
            "{e}\nGPU tests need an adapter: on Debian install mesa-vulkan-drivers (lavapipe), \
             or build the tests with CELLVAE_SKIP_GPU_TESTS=1 to mark them ignored locally"
        ),
    }
}

/// llm.c's validate_result: |gpu - cpu| <= atol + rtol * |cpu|, reporting the first mismatches.
pub fn assert_close(name: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{name}: length differs");
    let max_abs = gpu
        .iter()
        .zip(cpu)
        .map(|(&g, &c)| (g - c).abs())
        .fold(0f32, f32::max);
    let worst = gpu
        .iter()
        .zip(cpu)
        .map(|(&g, &c)| (g - c).abs() / (atol + rtol * c.abs()))
        .fold(0f32, f32::max);
    eprintln!(
        "{name}: max |gpu - cpu| = {max_abs:e}; worst error / (atol + rtol*|ref|) = {worst:.3}"
    );
    let mut bad = Vec::new();
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let close = (g - c).abs() <= atol + rtol * c.abs();
        if !close {
            bad.push(format!("[{i}] gpu {g} cpu {c}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {} of {} values differ beyond {atol} + {rtol}*|ref|; first: {}",
        bad.len(),
        cpu.len(),
        bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
    );
}

/// A small seeded generator for test inputs (SplitMix64).
pub fn seeded_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 * scale
        })
        .collect()
}

/// Seeded values in [-scale, scale).
pub fn signed_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    seeded_values(seed, n, 2.0 * scale)
        .into_iter()
        .map(|v| v - scale)
        .collect()
}
