//! GPU-vs-CPU tests of every WGSL kernel, one module per kernel (`<k>.rs` tests
//! `shaders/<k>.wgsl` against `backend::cpu::<k>`), on whatever adapter wgpu finds (on
//! CI the software Vulkan adapter, lavapipe), plus the checks of every shader (naga)
//! and of the dispatch grid. One test binary: each one links wgpu.
//!
//! No adapter is a failure. With `CELLVAE_SKIP_GPU_TESTS=1` at build time the GPU tests
//! are marked ignored (see `build.rs`), so a skip shows as `ignored`, never as `ok`.
#![cfg(not(target_arch = "wasm32"))]

#[path = "../common/mod.rs"]
mod common;

mod adam;
mod batchnorm;
mod kl;
mod linear;
mod log1p;
mod nb_loglik;
mod onehot;
mod poisson_loglik;
mod relu_dropout;
mod reparam;
mod softmax;
mod step_guard;
mod zinb_loglik;

use cellvae::backend::cpu;
use cellvae::backend::gpu::kernels;
use cellvae::block_on;
use common::{assert_close, gpu_context, seeded_values, signed_values};

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

#[allow(clippy::type_complexity)]
pub(crate) fn count_inputs(
    b: usize,
    g: usize,
    k: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<u32>, Vec<f32>) {
    let logits = signed_values(71, b * g, 3.0);
    let mut rho = vec![0.0; b * g];
    cpu::softmax::forward(&logits, b, g, &mut rho);
    let library: Vec<f32> = seeded_values(72, b, 4000.0)
        .into_iter()
        .map(|l| (l + 500.0).round())
        .collect();
    let raw = seeded_values(73, b * g, 1.0);
    let x: Vec<f32> = raw
        .iter()
        .enumerate()
        .map(|(i, &u)| {
            if u < 0.4 {
                0.0
            } else if u < 0.85 {
                (u * 20.0).floor() - 7.0
            } else {
                (l_of(&library, g, i) * rho[i] * (u * 4.0)).round() + 17.0
            }
        })
        .collect();
    let log_theta = signed_values(74, k * g, 3.0);
    let theta_row: Vec<u32> = (0..b as u32).map(|r| r % k as u32).collect();
    let weight = vec![-1.0 / b as f32; b];
    (x, library, rho, log_theta, theta_row, weight)
}

/// The library size of the cell that holds element `i` of a B x G matrix.
pub(crate) fn l_of(library: &[f32], g: usize, i: usize) -> f32 {
    library[i / g]
}
