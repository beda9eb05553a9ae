//! GPU-vs-CPU tests of every WGSL kernel, on whatever adapter wgpu finds (on CI the
//! software Vulkan adapter, lavapipe). No adapter is a failure, not a skip; set
//! `CELLVAE_SKIP_GPU_TESTS=1` to skip them locally (it says so loudly).
#![cfg(not(target_arch = "wasm32"))]

use cellvae::backend::cpu;
use cellvae::backend::gpu::{block_on, kernels, GpuContext};

fn context() -> Option<GpuContext> {
    if std::env::var("CELLVAE_SKIP_GPU_TESTS").as_deref() == Ok("1") {
        eprintln!(
            "!!! CELLVAE_SKIP_GPU_TESTS=1: GPU tests are SKIPPED, nothing on the GPU was checked"
        );
        return None;
    }
    match block_on(GpuContext::new()) {
        Ok(ctx) => Some(ctx),
        Err(e) => panic!(
            "{e}\nGPU tests need an adapter: on Debian install mesa-vulkan-drivers (lavapipe), \
             or set CELLVAE_SKIP_GPU_TESTS=1 to skip them locally"
        ),
    }
}

/// llm.c's validate_result: |gpu - cpu| <= atol + rtol * |cpu|, reporting the first mismatches.
fn assert_close(name: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{name}: length differs");
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
fn seeded_values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
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

#[test]
fn every_shader_passes_naga_validation() {
    assert!(!kernels::SHADERS.is_empty());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("shaders/ exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    for file in &on_disk {
        let name = file.trim_end_matches(".wgsl");
        assert!(
            kernels::SHADERS.iter().any(|(n, _)| *n == name),
            "shaders/{file} is not listed in kernels::SHADERS"
        );
    }
    for (name, source) in kernels::SHADERS {
        let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| {
            panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source))
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
    }
}

#[test]
fn log1p_gpu_matches_cpu() {
    let Some(ctx) = context() else { return };
    let summary = ctx.adapter_summary();
    eprintln!("adapter: {summary:?}");
    // Counts-like values, tiny values (where ln(1+x) loses precision naively) and a size
    // that is not a multiple of the workgroup.
    let mut x = seeded_values(7, 10_007, 500.0);
    x.extend([0.0, 1e-7, 3e-4, 1.0, 65_535.0]);
    let got = block_on(kernels::log1p(&ctx, &x)).expect("log1p runs");
    let mut want = vec![0.0; x.len()];
    cpu::log1p::log1p(&x, &mut want);
    assert_close("log1p", &got, &want, 1e-6, 1e-5);
}

#[test]
fn grid_stays_within_dispatch_limits() {
    for n in [1u32, 256, 257, 65_535 * 256, 65_535 * 256 + 1, u32::MAX] {
        let (x, y) = kernels::grid_for(n);
        assert!(x <= 65_535 && y <= 65_535, "n={n}: grid {x}x{y}");
        assert!(
            u64::from(x) * u64::from(y) * 256 >= u64::from(n),
            "n={n}: grid too small"
        );
    }
}

#[test]
fn a_broken_shader_is_a_clear_error() {
    let Some(ctx) = context() else { return };
    let broken = kernels::shader_source("log1p")
        .unwrap()
        .replace("log(u)", "log(u, u)");
    let err = block_on(kernels::log1p_with_source(&ctx, &[1.0, 2.0], &broken))
        .expect_err("a shader that does not compile must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("log1p") && msg.contains("compile"),
        "unclear error: {msg}"
    );
}

#[test]
fn a_destroyed_device_is_reported() {
    let Some(ctx) = context() else { return };
    ctx.device.destroy();
    let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
    let err = block_on(kernels::log1p(&ctx, &[1.0, 2.0])).expect_err("a lost device must fail");
    assert!(err.to_string().contains("GPU"), "unclear error: {err}");
}
