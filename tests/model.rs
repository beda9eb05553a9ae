//! The whole VAE on the CPU: a finite-difference check of every parameter tensor's
//! gradient through the full loss (all likelihoods, batch covariates, two layers), and a
//! golden test of the first training steps on a small real matrix.
#![cfg(not(target_arch = "wasm32"))]

use cellvae::block_on;
use cellvae::data::{read_inputs, CountMatrix, InputFile, ReadOptions};
use cellvae::model::cpu_model::{CpuModel, Workspace};
use cellvae::model::{Backend, CpuBackend, TrainState};
use cellvae::model::{Dispersion, Likelihood, Minibatch, ModelConfig, Params};
use cellvae::rng;
use cellvae::train::{TrainConfig, Trainer};

/// `b` cells of `g` genes in `k` batches, about `density` of the counts non-zero (the
/// first layer reads a minibatch of 30% or more as a dense product, sparser as rows).
fn synthetic(b: usize, g: usize, k: u32, seed: u64, density: f32) -> Minibatch {
    let (m, codes) = synthetic_matrix(b, g, k, seed, density);
    let rows: Vec<usize> = (0..b).collect();
    Minibatch::gather(&m, &codes, &rows)
}

/// The matrix and batch codes that [`synthetic`] gathers.
fn synthetic_matrix(
    b: usize,
    g: usize,
    k: u32,
    seed: u64,
    density: f32,
) -> (CountMatrix, Vec<u32>) {
    let mut trip = Vec::new();
    for c in 0..b {
        for j in 0..g {
            let u = rng::uniform(seed, 9, c as u32, j as u32);
            if u < density {
                trip.push((c as u32, j as u32, (1.0 + 20.0 * u * u) as u32 as f32));
            }
        }
        trip.push((c as u32, (c % g) as u32, 3.0));
    }
    let mut m = CountMatrix::from_triplets(b, g, trip);
    m.gene_ids = (0..g).map(|j| format!("g{j}")).collect();
    m.gene_names = m.gene_ids.clone();
    m.cell_ids = (0..b).map(|c| format!("c{c}")).collect();
    let codes: Vec<u32> = (0..b as u32).map(|c| c % k).collect();
    (m, codes)
}

fn loss(p: &mut Params, ws: &mut Workspace, mb: &Minibatch, w: f32) -> f64 {
    let (r, k) = CpuModel::forward_backward(p, ws, mb, 11, 3, w);
    r as f64 + w as f64 * k as f64
}

fn gradcheck(cfg: ModelConfig, label: &str) {
    gradcheck_at(cfg, label, 0.6);
}

fn gradcheck_at(cfg: ModelConfig, label: &str, density: f32) {
    let mb = synthetic(7, cfg.n_genes, cfg.n_batches as u32, 5, density);
    let share = mb.values.len() as f32 / (mb.n_rows * mb.n_genes) as f32;
    assert_eq!(
        share >= 0.3,
        density >= 0.3,
        "{label}: {share} of the counts non-zero"
    );
    let mut p = Params::init(&cfg, 3).unwrap();
    // Move batch-norm scales and log-theta away from their symmetric start.
    for (i, v) in p.values.iter_mut().enumerate() {
        *v += 0.05 * (rng::normal(1, 7, 0, i as u32));
    }
    let mut ws = Workspace::default();
    let w = 0.7;
    loss(&mut p, &mut ws, &mb, w);
    let analytic = ws.grads[..p.values.len()].to_vec();
    let layout = p.layout.clone();
    let (mut checked, mut bad) = (0, Vec::new());
    let (mut dot, mut na, mut nf) = (0.0f64, 0.0f64, 0.0f64);
    for t in &layout.tensors {
        let n = t.len();
        let picks: Vec<usize> = (0..n.min(6)).map(|i| t.offset + (i * 7919) % n).collect();
        for idx in picks {
            let h = 1e-2f32;
            let orig = p.values[idx];
            p.values[idx] = orig + h;
            let up = loss(&mut p, &mut ws, &mb, w);
            p.values[idx] = orig - h;
            let down = loss(&mut p, &mut ws, &mb, w);
            p.values[idx] = orig;
            let fd = (up - down) / (2.0 * h as f64);
            let an = analytic[idx] as f64;
            dot += fd * an;
            na += an * an;
            nf += fd * fd;
            checked += 1;
            if (fd - an).abs() > 2e-2 + 5e-2 * an.abs() {
                bad.push(format!(
                    "{}[{}]: fd {fd:.5} analytic {an:.5}",
                    t.name,
                    idx - t.offset
                ));
            }
        }
    }
    let cosine = dot / (na.sqrt() * nf.sqrt());
    assert!(
        cosine > 0.999,
        "{label}: gradient direction off (cosine {cosine}); mismatches: {bad:?}"
    );
    // ReLU kinks can spoil an occasional central difference; more than 3% is a bug.
    assert!(
        bad.len() * 33 <= checked,
        "{label}: {} of {checked} gradients differ: {bad:?}",
        bad.len()
    );
}

fn small(
    likelihood: Likelihood,
    dispersion: Dispersion,
    n_batches: usize,
    n_layers: usize,
    encode_batch: bool,
) -> ModelConfig {
    let mut c = ModelConfig::scvi_defaults(9, n_batches);
    c.n_hidden = 6;
    c.n_latent = 3;
    c.n_layers = n_layers;
    c.likelihood = likelihood;
    c.dispersion = dispersion;
    c.encode_batch = encode_batch;
    c
}

#[test]
fn full_model_gradients_nb() {
    gradcheck(small(Likelihood::Nb, Dispersion::Gene, 1, 1, false), "nb");
}

#[test]
fn full_model_gradients_zinb_gene_batch_two_layers() {
    gradcheck(
        small(Likelihood::Zinb, Dispersion::GeneBatch, 3, 2, true),
        "zinb gene-batch",
    );
}

/// Sparse counts: the first layer's gradients through its sparse rows (the tests above
/// go through the dense product).
#[test]
fn full_model_gradients_sparse_input() {
    gradcheck_at(
        small(Likelihood::Zinb, Dispersion::GeneBatch, 3, 2, true),
        "sparse zinb gene-batch",
        0.15,
    );
}

#[test]
fn full_model_gradients_poisson_batch() {
    gradcheck(
        small(Likelihood::Poisson, Dispersion::Gene, 2, 1, false),
        "poisson",
    );
}

/// Models and input densities that cover the step's paths: every likelihood, batch
/// covariates on and off, one and two layers, dense (60%) and sparse (15%) input, in
/// turns (so a reused minibatch goes dense to sparse and back).
fn step_configs() -> [(ModelConfig, f32); 5] {
    [
        (small(Likelihood::Nb, Dispersion::Gene, 1, 1, false), 0.6),
        (
            small(Likelihood::Zinb, Dispersion::GeneBatch, 3, 2, true),
            0.6,
        ),
        (
            small(Likelihood::Zinb, Dispersion::GeneBatch, 3, 2, true),
            0.15,
        ),
        (
            small(Likelihood::Poisson, Dispersion::Gene, 2, 1, false),
            0.6,
        ),
        (
            small(Likelihood::Nb, Dispersion::GeneBatch, 2, 2, false),
            0.15,
        ),
    ]
}

/// The bits of a workspace's first `n` gradients.
fn grad_bits(ws: &Workspace, n: usize) -> Vec<u32> {
    ws.grads[..n].iter().map(|v| v.to_bits()).collect()
}

/// Every gradient is written by each step: a workspace whose gradients hold NaN from
/// before gives the bits of a fresh one (the step does not clear them first), for every
/// likelihood, batch covariates on and off, one and two layers, dense and sparse input.
#[test]
fn every_gradient_is_written_by_each_step() {
    for (i, (cfg, density)) in step_configs().into_iter().enumerate() {
        let mb = synthetic(7, cfg.n_genes, cfg.n_batches as u32, 5, density);
        let mut p = Params::init(&cfg, 3).unwrap();
        let n = p.values.len();
        let mut fresh = Workspace::default();
        loss(&mut p.clone(), &mut fresh, &mb, 0.7);
        let mut used = Workspace::default();
        loss(&mut p.clone(), &mut used, &mb, 0.7);
        used.grads[..n].fill(f32::NAN);
        loss(&mut p, &mut used, &mb, 0.7);
        assert!(fresh.grads[..n].iter().all(|v| v.is_finite()), "config {i}");
        assert_eq!(
            grad_bits(&used, n),
            grad_bits(&fresh, n),
            "config {i}: a gradient left unwritten"
        );
    }
}

/// A training minibatch dense enough to leave out its sparse rows
/// (`Minibatch::gather_for_training`) gives the step of the whole minibatch, bit for
/// bit; a sparse one keeps them. One buffer reused, dense and sparse in turn.
#[test]
fn training_minibatches_without_sparse_rows_give_the_same_step() {
    let mut lean = Minibatch::default();
    for (i, (cfg, density)) in step_configs().into_iter().enumerate() {
        let (m, codes) = synthetic_matrix(9, cfg.n_genes, cfg.n_batches as u32, 5, density);
        let rows = [4, 0, 8, 2, 6, 1, 7];
        let full = Minibatch::gather(&m, &codes, &rows);
        lean.gather_for_training(&m, &codes, &rows);
        assert_eq!(lean.without_csr, density >= 0.3, "config {i}");
        if lean.without_csr {
            assert!(lean.indptr.is_empty() && lean.indices.is_empty());
            assert!(lean.values.is_empty() && lean.log1p_values.is_empty());
            assert_eq!(
                (&lean.counts, &lean.library, &lean.batch),
                (&full.counts, &full.library, &full.batch)
            );
        } else {
            assert_eq!(lean, full, "config {i}");
        }
        let p = Params::init(&cfg, 3).unwrap();
        let n = p.values.len();
        let (mut a, mut b) = (Workspace::default(), Workspace::default());
        let la = loss(&mut p.clone(), &mut a, &full, 0.7);
        let lb = loss(&mut p.clone(), &mut b, &lean, 0.7);
        assert_eq!(la.to_bits(), lb.to_bits(), "config {i}");
        assert_eq!(grad_bits(&a, n), grad_bits(&b, n), "config {i}");
    }
}

/// A snapshot copied into a spare state (`clone_from`, `Backend::save_into`: the
/// buffers of a state the ring dropped, of any size) is the state, every field.
#[test]
fn a_state_saved_into_a_spare_is_the_state() {
    let mut state = TrainState::new(Params::init(&ModelConfig::scvi_defaults(50, 1), 2).unwrap());
    for (i, (m, v)) in state.adam_m.iter_mut().zip(&mut state.adam_v).enumerate() {
        (*m, *v) = (i as f32 * 0.5, 1.0 / (1.0 + i as f32));
    }
    state.params.buffers.iter_mut().for_each(|b| *b += 0.25);
    (state.steps, state.epochs) = (17, 3);
    for genes in [20, 50, 300] {
        let spare =
            TrainState::new(Params::init(&ModelConfig::scvi_defaults(genes, 2), 9).unwrap());
        let mut copy = spare.clone();
        copy.clone_from(&state);
        assert_eq!(copy, state, "{genes} genes");
        let mut backend = CpuBackend::new();
        block_on(backend.load(&state)).unwrap();
        assert_eq!(block_on(backend.save_into(spare)).unwrap(), state);
    }
}

fn pbmc() -> CountMatrix {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/pbmc68k_reduced_700/"
    );
    let files: Vec<InputFile> = ["matrix.mtx.gz", "features.tsv", "barcodes.tsv"]
        .iter()
        .map(|f| {
            InputFile::new(
                format!("{dir}{f}"),
                std::fs::read(format!("{dir}{f}")).unwrap(),
            )
        })
        .collect();
    read_inputs(&files, None, &ReadOptions::default()).unwrap()
}

/// The first steps' losses on 256 real cells with seed 0 (scvi-tools' architecture).
/// Regenerate with CELLVAE_BLESS=1 only when a change of the arithmetic is intended.
#[test]
fn golden_first_steps() {
    let m = pbmc();
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(256);
    tc.seed = 0;
    let cells: Vec<usize> = (0..256).collect();
    let state = TrainState::new(Params::init(&cfg, 0).unwrap());
    let mut t = Trainer::new(CpuBackend::new(), tc, state, cells, vec![], || 0.0).unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        let (l, _) = t.step(&m).unwrap();
        assert!(l.finite);
        got.push((l.reconstruction as f64, l.kl as f64));
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/golden_losses.json"
    );
    if std::env::var("CELLVAE_BLESS").as_deref() == Ok("1") {
        std::fs::write(path, serde_json::to_string_pretty(&got).unwrap()).unwrap();
    }
    let want: Vec<(f64, f64)> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    for (i, ((gr, gk), (wr, wk))) in got.iter().zip(&want).enumerate() {
        assert!(
            (gr - wr).abs() <= 1e-4 * wr.abs(),
            "step {i}: reconstruction {gr} != golden {wr}"
        );
        assert!(
            (gk - wk).abs() <= 1e-4 * wk.abs() + 1e-5,
            "step {i}: kl {gk} != golden {wk}"
        );
    }
    // The reconstruction must fall over the first steps (Adam is doing its job).
    assert!(got[5].0 < got[0].0, "no progress: {got:?}");
}

#[test]
fn training_is_reproducible_and_improves() {
    let m = pbmc();
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let run = || {
        let mut tc = TrainConfig::scvi_defaults(300);
        tc.epochs = 8;
        tc.seed = 42;
        let state = TrainState::new(Params::init(&cfg, 42).unwrap());
        let mut t = Trainer::new(
            CpuBackend::new(),
            tc,
            state,
            (0..300).collect(),
            vec![],
            || 0.0,
        )
        .unwrap();
        t.run_epochs(&m, 8, |_| {}).unwrap();
        (t.history.clone(), t.params().unwrap())
    };
    let (h1, p1) = run();
    let (h2, p2) = run();
    assert_eq!(p1.values, p2.values, "same seed, different parameters");
    assert_eq!(h1.len(), 8);
    assert!(h1[7].reconstruction < h1[0].reconstruction - 50.0, "{h1:?}");
    assert_eq!(h1[3].elbo, h2[3].elbo);
}

#[test]
fn a_non_finite_step_is_recovered() {
    let m = pbmc();
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(200);
    tc.epochs = 3;
    let mut p = Params::init(&cfg, 1).unwrap();
    // Poison the state the trainer starts from, then let it restore the last good one.
    let mut t = Trainer::new(
        CpuBackend::new(),
        tc,
        TrainState::new(p.clone()),
        (0..200).collect(),
        vec![],
        || 0.0,
    )
    .unwrap();
    t.run_epochs(&m, 1, |_| {}).unwrap();
    let checkpoint = t.checkpoint().unwrap();
    let idx = p.layout.scale.weight.start;
    p = checkpoint.params.clone();
    p.values[idx] = f32::NAN;
    let mut poisoned = checkpoint.clone();
    poisoned.params = p;
    block_on(t.backend.load(&poisoned)).unwrap();
    let lr_before = t.config.lr;
    let (l, _) = t.step(&m).unwrap();
    assert!(!l.finite, "a NaN parameter must give a non-finite step");
    assert_eq!(t.recoveries.len(), 1);
    assert!(t.config.lr < lr_before);
    // Restored to the epoch's checkpoint exactly: parameters, batch-norm statistics,
    // Adam moments, step and epoch.
    let restored = t.checkpoint().unwrap();
    assert_eq!(
        restored.params.values, checkpoint.params.values,
        "parameters"
    );
    assert_eq!(
        restored.params.buffers, checkpoint.params.buffers,
        "BN stats"
    );
    assert_eq!(restored.adam_m, checkpoint.adam_m, "Adam first moments");
    assert_eq!(restored.adam_v, checkpoint.adam_v, "Adam second moments");
    assert_eq!(
        (restored.steps, restored.epochs),
        (checkpoint.steps, checkpoint.epochs),
        "step and epoch"
    );
    assert_eq!(restored, checkpoint);
    let (l, _) = t.step(&m).unwrap();
    assert!(l.finite);
}

#[test]
fn a_checkpoint_file_continues_training_exactly() {
    use cellvae::model::io::{checkpoint_from_safetensors, checkpoint_to_safetensors};
    let m = pbmc();
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(260);
    tc.epochs = 4;
    tc.seed = 7;
    let cells: Vec<usize> = (0..260).collect();
    let fresh = || TrainState::new(Params::init(&cfg, 7).unwrap());
    let mut straight = Trainer::new(
        CpuBackend::new(),
        tc.clone(),
        fresh(),
        cells.clone(),
        vec![],
        || 0.0,
    )
    .unwrap();
    straight.run_epochs(&m, 4, |_| {}).unwrap();
    let mut first = Trainer::new(
        CpuBackend::new(),
        tc.clone(),
        fresh(),
        cells.clone(),
        vec![],
        || 0.0,
    )
    .unwrap();
    first.run_epochs(&m, 2, |_| {}).unwrap();
    let bytes = checkpoint_to_safetensors(&first.checkpoint().unwrap()).unwrap();
    let restored = checkpoint_from_safetensors(&bytes, &cfg, "checkpoint.safetensors").unwrap();
    let again = first.checkpoint().unwrap();
    assert_eq!(
        (restored.steps, restored.epochs),
        (again.steps, again.epochs)
    );
    assert!(
        restored.params.values == again.params.values,
        "parameters differ after the file"
    );
    assert!(
        restored.params.buffers == again.params.buffers,
        "buffers differ after the file"
    );
    assert!(
        restored.adam_m == again.adam_m && restored.adam_v == again.adam_v,
        "Adam moments differ"
    );
    assert_eq!(restored.epochs, 2);
    let mut second = Trainer::new(CpuBackend::new(), tc, restored, cells, vec![], || 0.0).unwrap();
    second.run_epochs(&m, 2, |_| {}).unwrap();
    assert_eq!(second.epoch(), 4);
    assert_eq!(
        second.params().unwrap().values,
        straight.params().unwrap().values,
        "a resumed run must equal an uninterrupted one"
    );
    // A model file is not a checkpoint.
    let model_only = cellvae::model::io::to_safetensors(&straight.params().unwrap()).unwrap();
    let err = checkpoint_from_safetensors(&model_only, &cfg, "model.safetensors").unwrap_err();
    assert!(
        err.to_string().contains("not a training checkpoint"),
        "{err}"
    );
}

#[test]
fn lr_and_beta_change_mid_run_and_steps_are_countable() {
    let m = pbmc();
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(200);
    tc.epochs = 2;
    let mut t = Trainer::new(
        CpuBackend::new(),
        tc,
        TrainState::new(Params::init(&cfg, 2).unwrap()),
        (0..200).collect(),
        vec![],
        || 0.0,
    )
    .unwrap();
    let done = t.run_steps(&m, 1).unwrap();
    assert!(done.is_empty());
    assert_eq!(t.steps(), 1);
    t.set_lr(5e-3).unwrap();
    t.set_beta(0.5).unwrap();
    assert!(t.set_lr(-1.0).is_err());
    assert!(t.set_beta(f32::NAN).is_err());
    let done = t.run_steps(&m, 100).unwrap();
    assert_eq!(
        done.len(),
        2,
        "two epochs of 2 steps each (200 cells, 128 per step)"
    );
    assert!(t.finished());
    assert_eq!(t.steps(), 4);
    assert_eq!(t.config.lr, 5e-3);
}

/// The demo's first `n` cells (the data set shipped with the page).
fn demo(n: usize) -> (CountMatrix, Vec<usize>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pbmc68k_reduced_700/");
    let files: Vec<InputFile> = ["matrix.mtx.gz", "features.tsv", "barcodes.tsv"]
        .iter()
        .map(|f| {
            InputFile::new(
                format!("{dir}{f}"),
                std::fs::read(format!("{dir}{f}")).unwrap(),
            )
        })
        .collect();
    let m = read_inputs(&files, None, &ReadOptions::default()).unwrap();
    (m, (0..n).collect())
}

fn all_finite(s: &TrainState) -> bool {
    [&s.params.values, &s.params.buffers, &s.adam_m, &s.adam_v]
        .iter()
        .all(|v| v.iter().all(|x| x.is_finite()))
}

/// A NaN put into the parameters as a step begins (fault injection): the step changes
/// nothing, the run goes back to the last snapshot, lowers the rate and trains to the
/// end with finite parameters, and the recovery says where and why.
#[test]
fn an_injected_nan_is_recovered_and_training_finishes() {
    let (m, cells) = demo(300);
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(cells.len());
    tc.epochs = 4;
    tc.batch_size = 64;
    let mut cpu = CpuBackend::new();
    // 300 cells in 64s: 5 steps per epoch; step 12 is inside epoch 2.
    cpu.poison_at_step(12);
    let state = TrainState::new(Params::init(&cfg, 2).unwrap());
    let mut t = Trainer::new(cpu, tc.clone(), state, cells, vec![], || 0.0).unwrap();
    t.run_epochs(&m, 4, |_| {}).unwrap();
    assert!(t.finished());
    assert_eq!(t.recoveries.len(), 1, "{:?}", t.recoveries);
    let r = &t.recoveries[0];
    assert_eq!(r.step, 12);
    assert!(r.reason.contains("non-finite"), "{r:?}");
    assert_eq!(r.resumed_at_step, 10, "the snapshot at the end of epoch 1");
    assert!(!r.moments_reset, "the first restore of a snapshot is exact");
    assert_eq!(r.new_lr, tc.lr * 0.5);
    assert_eq!(t.config.lr, tc.lr * 0.5);
    assert_eq!(t.history.len(), 4);
    assert!(t.history.iter().all(|h| h.elbo.is_finite()));
    assert!(all_finite(&t.checkpoint().unwrap()));
    let text = t.last_recovery().unwrap();
    assert!(
        text.contains("step 12") && text.contains("step 10"),
        "{text}"
    );
}

/// A learning rate of 1 on real cells: the run diverges, goes back to a snapshot from
/// before the divergence (however often it must), lowers the rate and trains to the
/// end with finite parameters and losses.
#[test]
fn a_learning_rate_of_one_recovers_and_trains_to_the_end() {
    let (m, cells) = demo(300);
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(cells.len());
    tc.epochs = 3;
    tc.lr = 1.0;
    let state = TrainState::new(Params::init(&cfg, 0).unwrap());
    let mut t = Trainer::new(CpuBackend::new(), tc, state, cells, vec![], || 0.0).unwrap();
    t.run_epochs(&m, 3, |_| {}).unwrap();
    assert!(t.finished());
    assert!(!t.recoveries.is_empty());
    assert!(t.config.lr < 1.0);
    assert!(
        t.history.iter().all(|h| h.elbo.is_finite()),
        "{:?}",
        t.history
    );
    assert!(all_finite(&t.checkpoint().unwrap()));
    // Each recovery lowered the rate once; the last one is the rate now.
    assert_eq!(t.recoveries.last().unwrap().new_lr, t.config.lr);
}

/// Snapshots only read the state: a run that takes one after every step computes
/// exactly what a run that takes them only at epoch ends computes.
#[test]
fn snapshots_do_not_change_the_arithmetic() {
    let (m, cells) = demo(200);
    let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
    let mut tc = TrainConfig::scvi_defaults(cells.len());
    tc.epochs = 3;
    tc.batch_size = 50;
    let run = |every: u32| {
        let state = TrainState::new(Params::init(&cfg, 4).unwrap());
        let mut t = Trainer::new(
            CpuBackend::new(),
            tc.clone(),
            state,
            cells.clone(),
            vec![],
            || 0.0,
        )
        .unwrap();
        t.snapshot_every = every;
        t.run_epochs(&m, 3, |_| {}).unwrap();
        assert!(t.recoveries.is_empty());
        (t.history.clone(), t.checkpoint().unwrap())
    };
    let (h0, s0) = run(0);
    let (h1, s1) = run(1);
    assert_eq!(h0, h1);
    assert_eq!(s0, s1);
}

/// Edge cases of the data and the settings: beta 100 without warm-up, a single gene,
/// minibatches of one cell, all-zero cells. Training ends and nothing non-finite is
/// kept.
#[test]
fn hard_settings_and_degenerate_data_train_without_non_finite_values() {
    let (m, _) = demo(120);
    let run = |m: &CountMatrix, cells: Vec<usize>, batch: usize, beta: f32, what: &str| {
        let cfg = ModelConfig::scvi_defaults(m.n_genes, 1);
        let mut tc = TrainConfig::scvi_defaults(cells.len());
        tc.epochs = 2;
        tc.batch_size = batch;
        tc.max_kl_weight = beta;
        tc.kl_warmup_epochs = 0;
        let state = TrainState::new(Params::init(&cfg, 1).unwrap());
        let mut t = Trainer::new(CpuBackend::new(), tc, state, cells, vec![], || 0.0).unwrap();
        t.run_epochs(m, 2, |_| {})
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(t.finished(), "{what}");
        assert!(
            all_finite(&t.checkpoint().unwrap()),
            "{what}: non-finite state"
        );
        assert!(
            t.history.iter().all(|h| h.elbo.is_finite()),
            "{what}: {:?}",
            t.history
        );
    };
    let cells: Vec<usize> = (0..120).collect();
    run(&m, cells.clone(), 128, 100.0, "beta 100");
    run(&m, (0..20).collect(), 1, 1.0, "minibatches of one cell");
    // One gene: the first with counts in most cells.
    let one_gene = m.select_genes(&[0]);
    run(&one_gene, cells.clone(), 32, 1.0, "a single gene");
    // All-zero cells (the command line removes them; a library user may not): a
    // minibatch made only of them, and one mixed with real cells.
    let zero = CountMatrix::from_triplets(8, m.n_genes, vec![]);
    run(&zero, (0..8).collect(), 4, 1.0, "all-zero minibatches");
    let mut trip = Vec::new();
    for c in 0..40u32 {
        if c % 2 == 0 {
            trip.push((c, c % 7, 3.0));
        }
    }
    let half = CountMatrix::from_triplets(40, 7, trip);
    run(&half, (0..40).collect(), 8, 1.0, "half the cells all zero");
}
