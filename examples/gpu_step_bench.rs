//! Steps per second of the CPU and GPU backends on synthetic minibatches, one step at a
//! time and queued in groups of 8 (`Backend::train_steps`). Prints figures; nothing is
//! asserted (timings on shared machines are noisy: compare ratios within one run).
//!
//! `cargo run --release --example gpu_step_bench [genes] [hidden] [batch] [steps]`

use cellvae::block_on;
use cellvae::model::{Backend, CpuBackend, GpuBackend, StepHyper, TrainState};
use cellvae::model::{Minibatch, ModelConfig, Params};
use std::time::Instant;

fn minibatch(b: usize, g: usize, seed: u64) -> Minibatch {
    let mut mb = Minibatch {
        n_rows: b,
        n_genes: g,
        counts: vec![0.0; b * g],
        indptr: vec![0],
        ..Default::default()
    };
    for r in 0..b {
        let mut total = 0.0;
        for j in 0..g {
            let u = cellvae::rng::uniform(seed, 9, r as u32, j as u32);
            if u < 0.3 {
                let c = (1.0 + 10.0 * u).floor();
                mb.counts[r * g + j] = c;
                mb.indices.push(j as u32);
                mb.values.push(c);
                total += c;
            }
        }
        mb.indptr.push(mb.indices.len());
        mb.library.push(total.max(1.0));
        mb.batch.push(0);
    }
    mb
}

fn hyper(step: u32) -> StepHyper {
    StepHyper {
        step,
        seed: 1,
        lr: 1e-3,
        kl_weight: 0.5,
        adam_eps: 0.01,
        weight_decay: 1e-6,
    }
}

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let (g, h, b, n) = (arg(1, 765), arg(2, 128), arg(3, 128), arg(4, 48));
    let mut cfg = ModelConfig::scvi_defaults(g, 1);
    cfg.n_hidden = h;
    let state = TrainState::new(Params::init(&cfg, 1).unwrap());
    let batches: Vec<Minibatch> = (0..8).map(|i| minibatch(b, g, i)).collect();
    println!(
        "model: {g} genes, {h} hidden, {} latent; minibatch {b}; {n} steps",
        cfg.n_latent
    );

    let mut cpu = CpuBackend::new();
    block_on(cpu.load(&state)).unwrap();
    let t = Instant::now();
    for s in 0..n {
        block_on(cpu.train_step(&batches[s % 8], &hyper(s as u32))).unwrap();
    }
    let cpu_rate = n as f64 / t.elapsed().as_secs_f64();
    println!("cpu:                 {cpu_rate:8.1} steps/s");

    let mut gpu = block_on(GpuBackend::create()).expect("a GPU adapter");
    println!("adapter: {:?}", gpu.context().adapter_summary());
    block_on(gpu.load(&state)).unwrap();
    block_on(gpu.train_step(&batches[0], &hyper(0))).unwrap(); // warm-up: allocation, tape
    let t = Instant::now();
    for s in 0..n {
        block_on(gpu.train_step(&batches[s % 8], &hyper(s as u32))).unwrap();
    }
    let single = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "gpu, one at a time:  {single:8.1} steps/s ({} dispatches per step)",
        gpu.last_dispatches
    );
    let hypers: Vec<StepHyper> = (0..8).map(hyper).collect();
    let t = Instant::now();
    let groups = n.div_ceil(8);
    for _ in 0..groups {
        block_on(gpu.train_steps(&batches, &hypers)).unwrap();
    }
    let grouped = (groups * 8) as f64 / t.elapsed().as_secs_f64();
    println!("gpu, groups of 8:    {grouped:8.1} steps/s");
    println!(
        "ratios: gpu/cpu {:.2} (one at a time), {:.2} (groups); groups/single {:.2}",
        single / cpu_rate,
        grouped / cpu_rate,
        grouped / single
    );
}
