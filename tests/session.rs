//! The page's session core (`cellvae::session`), natively: preparing the built-in demo,
//! training, lr and beta held in one place, errors in the page's words, latent means and
//! their caches, KL per dimension against the evaluation's, decoding and the nearest
//! cells' profile, saving and loading a model, keeping a run (checkpoint + run record)
//! and resuming it bit for bit as if never interrupted (damaged or mismatched files
//! refused), and the GPU run (on lavapipe) following the CPU step for step, falling back
//! to the CPU without losing training and kept from the state last read back.

use cellvae::data::{read_inputs, InputFile, ReadOptions};

mod common;
use cellvae::eval::evaluate;
use cellvae::explore::Explorer;
use cellvae::session::{Run, Session, SessionOptions};
use cellvae::CountMatrix;
use common::demo;

fn clock() -> f64 {
    0.0
}

fn options(json: &str) -> SessionOptions {
    serde_json::from_str(json).unwrap()
}

#[test]
fn a_new_session_prepares_and_trains_the_demo() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 300, "epochs": 3}"#), clock).unwrap();
    assert_eq!(s.data().matrix.n_genes, 300);
    assert_eq!(s.data().matrix.n_cells, 700);
    assert_eq!(
        s.label_key(),
        Some("cell_type"),
        "cell_type is the default label"
    );
    assert_eq!(
        s.model_config().n_latent,
        2,
        "the page's default latent space is 2-D"
    );
    let f = s.facts();
    assert_eq!(
        (f.n_cells, f.n_genes, f.n_latent, f.n_train),
        (700, 300, 2, 700)
    );
    assert_eq!(f.gene_names.len(), 300);
    assert_eq!(f.cell_ids, m.cell_ids);
    let col = f.columns.iter().find(|c| c.name == "cell_type").unwrap();
    assert_eq!(col.codes.len(), 700);
    assert_eq!(col.levels.len(), 10);
    // Library sizes over the modelled genes, and their median over the training cells.
    let total: f32 = f.library_sizes.iter().sum();
    assert!((f64::from(total) - s.data().matrix.total_counts()).abs() < 1.0);
    let mut sorted = f.library_sizes.clone();
    sorted.sort_by(f32::total_cmp);
    assert_eq!(f.median_library, 0.5 * (sorted[349] + sorted[350]));
    assert_eq!((f.origin.as_str(), f.batch_key.as_deref()), ("new", None));
    assert!(!f.preprocess_report.is_empty());
    let before = s.status();
    assert_eq!((before.epoch, before.step, before.elbo), (0, 0, None));
    assert_eq!(before.training_backend, "cpu");
    // 700 cells, minibatch 128: 6 steps per epoch (the last minibatch of 60 kept).
    let after = s.step(7).unwrap();
    assert_eq!((after.epoch, after.step), (1, 7));
    let h = s.history();
    assert_eq!(h.len(), 1);
    assert_eq!(
        after.elbo,
        Some(h[0].elbo),
        "the status reports the last epoch"
    );
    assert!(h[0].elbo < 0.0 && h[0].elbo.is_finite());
    // Training stops at the configured epochs.
    let done = s.step(1000).unwrap();
    assert!(done.finished && done.epoch == 3, "{done:?}");
    assert_eq!(s.step(5).unwrap().step, done.step);
}

#[test]
fn errors_speak_the_pages_words() {
    let m = demo();
    let bad = |json: &str| {
        Session::new(&m, &options(json), clock)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let e = bad(r#"{"lr": 0}"#);
    assert!(e.contains("learning rate") && !e.contains("--"), "{e}");
    let e = bad(r#"{"batch_size": 0}"#);
    assert!(e.contains("minibatch size") && !e.contains("--"), "{e}");
    let e = bad(r#"{"batch_key": "tissue"}"#);
    assert!(
        e.contains("batch column") && e.contains("cell_type") && !e.contains("--"),
        "{e}"
    );
    let e = bad(r#"{"encode_batch": true}"#);
    assert!(
        e.contains("batch in the encoder") && !e.contains("--"),
        "{e}"
    );
    let e = bad(r#"{"top_genes": 100000}"#);
    assert!(
        e.contains("highly variable genes") && !e.contains("--"),
        "{e}"
    );
    let e = bad(r#"{"n_latent": 0}"#);
    assert!(e.contains("latent dimensions") && !e.contains("--"), "{e}");
    // A misspelt setting is refused, never ignored.
    assert!(serde_json::from_str::<SessionOptions>(r#"{"n_latnet": 3}"#).is_err());
}

#[test]
fn lr_and_beta_live_in_one_place() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 200}"#), clock).unwrap();
    s.set_lr(0.004).unwrap();
    s.set_beta(0.25).unwrap();
    let st = s.status();
    assert_eq!((st.lr, st.beta), (0.004, 0.25));
    let e = s.set_lr(-1.0).unwrap_err().to_string();
    assert!(e.contains("learning rate"), "{e}");
    let e = s.set_beta(f32::NAN).unwrap_err().to_string();
    assert!(e.contains("beta"), "{e}");
    // A refused value leaves the settings as they were.
    let st = s.status();
    assert_eq!((st.lr, st.beta), (0.004, 0.25));
    // The steps use them: the same run with the values given at the start agrees.
    s.step(3).unwrap();
    let mut t = Session::new(
        &m,
        &options(r#"{"top_genes": 200, "lr": 0.004, "beta": 0.25}"#),
        clock,
    )
    .unwrap();
    t.step(3).unwrap();
    assert_eq!(s.latent().unwrap(), t.latent().unwrap());
}

#[test]
fn latent_means_kl_and_profiles_match_the_core() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 200, "n_latent": 3}"#), clock).unwrap();
    s.step(12).unwrap();
    let d = 3;
    let all = s.latent().unwrap();
    assert_eq!(all.len(), 700 * d);
    // A slice re-encoded with the same parameters is the same rows.
    let slice = s.latent_range(100, 50).unwrap();
    assert_eq!(slice, all[100 * d..150 * d]);
    assert_eq!(s.latent_range(690, 50).unwrap().len(), 10 * d, "clamped");
    // KL per dimension is the evaluation's (same kernel, same cells).
    let params = s.params().unwrap();
    let data = s.data().clone();
    let metrics = evaluate(
        &params,
        &data.matrix,
        &data.batch_codes,
        &data.train_cells,
        1,
        0,
    );
    let kl = s.kl_per_dim().unwrap();
    for (a, b) in kl.iter().zip(&metrics.kl_per_dim) {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs().max(1.0),
            "{kl:?} vs {:?}",
            metrics.kl_per_dim
        );
    }
    // Decoding is the explorer's on the current parameters, for any batch and library.
    let z = [0.3f32, -0.2, 0.1, 1.0, 0.0, -1.0];
    let got = s.decode(&z, 0, 1500.0).unwrap();
    let want = Explorer::new(params)
        .decode(&z, 0, 1500.0)
        .unwrap()
        .expected;
    assert_eq!(got, want);
    let cols = s.decode_genes(&z, 0, 1500.0, &[5, 0]).unwrap();
    let g = data.matrix.n_genes;
    assert_eq!(cols, vec![got[5], got[0], got[g + 5], got[g]]);
    assert!(s.decode_genes(&z, 0, 1.0, &[g as u32]).is_err());
    // The nearest cells to a cell's own latent mean start with that cell.
    let c = data.train_cells[10];
    let p = s
        .nearest_profile(&all[c * d..(c + 1) * d], 15, 1000.0)
        .unwrap();
    assert_eq!(p.cells[0], c);
    assert_eq!(p.cells.len(), 15);
    let total: f32 = p.mean.iter().sum();
    assert!(
        (total - 1000.0).abs() < 0.5,
        "proportions scaled to the library: {total}"
    );
    assert!(
        s.nearest_profile(&[0.0], 5, 1.0).is_err(),
        "wrong dimension"
    );
}

#[test]
fn caches_follow_the_parameters() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 200}"#), clock).unwrap();
    let v0 = s.params_version();
    let a = s.latent().unwrap();
    let da = s.decode(&[0.5, 0.5], 0, 1000.0).unwrap();
    s.step(2).unwrap();
    assert_ne!(s.params_version(), v0);
    let b = s.latent().unwrap();
    let db = s.decode(&[0.5, 0.5], 0, 1000.0).unwrap();
    assert_ne!(a, b, "latent means follow the steps");
    assert_ne!(da, db, "the decoder follows the steps");
}

#[test]
fn a_saved_model_loads_back_onto_the_data() {
    let m = demo();
    let mut s = Session::new(
        &m,
        &options(
            r#"{"top_genes": 250, "n_latent": 4, "likelihood": "zinb", "batch_key": "phase"}"#,
        ),
        clock,
    )
    .unwrap();
    s.step(8).unwrap();
    let st = s.model_safetensors().unwrap();
    let cfg = s.model_config_json().unwrap();
    let files: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(files["format"], "cellvae-model");
    assert_eq!(files["batch_key"], "phase");
    assert_eq!(files["gene_names"].as_array().unwrap().len(), 250);
    assert_eq!(files["model"]["n_latent"], 4);
    let mut t = Session::from_model(&m, &st, &cfg, &SessionOptions::default(), clock).unwrap();
    assert!(
        t.origin().contains("config.json") && t.origin().contains("4-D"),
        "{}",
        t.origin()
    );
    assert_eq!(t.model_config(), s.model_config());
    assert_eq!(t.batch_key(), Some("phase"));
    assert_eq!(t.data().batch_levels, s.data().batch_levels);
    assert_eq!(
        t.latent().unwrap(),
        s.latent().unwrap(),
        "the same model on the same cells"
    );
    assert_eq!(
        t.status().kl_warmup_epochs,
        0,
        "a trained model continues at full beta"
    );
    // It keeps training.
    assert_eq!(t.step(2).unwrap().step, 2);
    // Data without the model's genes is refused, naming the problem.
    let few = m.select_genes(&[0, 1, 2]);
    let e = Session::from_model(&few, &st, &cfg, &SessionOptions::default(), clock)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("genes"), "{e}");
    // A damaged file is an error, not a panic.
    assert!(Session::from_model(
        &m,
        &st[..st.len() / 2],
        &cfg,
        &SessionOptions::default(),
        clock
    )
    .is_err());
}

fn on_gpu(s: &mut Session) {
    let start = s.gpu_start().unwrap();
    let (run, version) = pollster::block_on(start.open()).expect("a GPU adapter (lavapipe)");
    assert!(!run.adapter.is_empty(), "the adapter is named");
    eprintln!("GPU session on {}", run.adapter);
    s.adopt_gpu(run, version).unwrap();
    assert_eq!(s.training_backend(), "webgpu");
}

fn gpu_steps(s: &mut Session, n: u32) {
    let run = s.gpu_run().expect("on the GPU");
    pollster::block_on(run.step(n)).unwrap();
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn the_gpu_run_follows_the_cpu_and_falls_back_without_losing_training() {
    let m = demo();
    let opts = options(r#"{"top_genes": 100, "n_hidden": 32}"#);
    let mut cpu = Session::new(&m, &opts, clock).unwrap();
    let mut gpu = Session::new(&m, &opts, clock).unwrap();
    // Both take 3 CPU steps; then one continues on the GPU mid-epoch.
    cpu.step(3).unwrap();
    gpu.step(3).unwrap();
    gpu.set_lr(0.002).unwrap();
    cpu.set_lr(0.002).unwrap();
    on_gpu(&mut gpu);
    assert_eq!(
        gpu.status().lr,
        0.002,
        "lr set before the GPU opened carries over"
    );
    gpu_steps(&mut gpu, 5);
    cpu.step(5).unwrap();
    let (a, b) = (gpu.status(), cpu.status());
    assert_eq!((a.epoch, a.step), (b.epoch, b.step));
    assert_eq!(a.training_backend, "webgpu");
    let rel = (a.elbo.unwrap() - b.elbo.unwrap()).abs() / b.elbo.unwrap().abs();
    assert!(rel < 1e-4, "GPU {:?} vs CPU {:?}", a.elbo, b.elbo);
    let (za, zb) = (gpu.latent().unwrap(), cpu.latent().unwrap());
    let worst = za
        .iter()
        .zip(&zb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "latent means differ by {worst}");
    // lr set while on the GPU applies to the GPU run, and is reported from it.
    gpu.set_beta(0.5).unwrap();
    cpu.set_beta(0.5).unwrap();
    assert_eq!(gpu.status().beta, 0.5);
    // The device is lost at step 10: the CPU takes over from the last state read back
    // and replays the steps since, so the run ends where a CPU-only run does.
    gpu.test_lose_gpu_at_step(10);
    gpu_steps(&mut gpu, 4);
    let why = gpu.take_gpu_fallback().expect("the GPU was left");
    assert!(why.contains("lost"), "{why}");
    assert!(gpu.take_gpu_fallback().is_none(), "told once");
    assert!(matches!(gpu.run(), Run::Cpu(_)));
    assert_eq!(gpu.training_backend(), "cpu");
    let at = gpu.status().step;
    cpu.step(4).unwrap();
    gpu.step(12 - at).unwrap();
    let (a, b) = (gpu.status(), cpu.status());
    assert_eq!((a.step, a.lr, a.beta), (b.step, b.lr, b.beta));
    let (za, zb) = (gpu.latent().unwrap(), cpu.latent().unwrap());
    let worst = za
        .iter()
        .zip(&zb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "after the fallback the latent means differ by {worst}"
    );
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn a_gpu_opened_after_the_cpu_moved_on_is_refused() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 50, "n_hidden": 16}"#), clock).unwrap();
    let start = s.gpu_start().unwrap();
    s.step(1).unwrap();
    let (run, version) = pollster::block_on(start.open()).unwrap();
    let e = s.adopt_gpu(run, version).unwrap_err().to_string();
    assert!(e.contains("moved on"), "{e}");
    assert_eq!(s.training_backend(), "cpu");
    assert_eq!(s.step(1).unwrap().step, 2, "the CPU run goes on");
}

/// A session kept (checkpoint + run record + config.json) and resumed on the data.
fn kept_and_resumed(s: &mut Session, m: &CountMatrix) -> Session {
    let bytes = s.checkpoint().unwrap();
    let record = s.run_record().unwrap();
    let config = s.model_config_json().unwrap();
    Session::resume(m, &bytes, &config, &record, clock).unwrap()
}

#[test]
fn a_resumed_run_continues_exactly_where_it_stopped() {
    let m = demo();
    // A KL warm-up, lr and beta changed mid-run, a batch column: everything the next
    // steps depend on. 700 cells, minibatch 128: 6 steps per epoch.
    let opts = options(
        r#"{"top_genes": 200, "n_latent": 3, "kl_warmup_epochs": 4, "batch_key": "phase", "seed": 7}"#,
    );
    for (n, m_more) in [(0, 4), (9, 10), (12, 7), (17, 1)] {
        let mut straight = Session::new(&m, &opts, clock).unwrap();
        let mut first = Session::new(&m, &opts, clock).unwrap();
        for s in [&mut straight, &mut first] {
            s.step(n.min(5)).unwrap();
            s.set_lr(0.003).unwrap();
            s.set_beta(0.7).unwrap();
            s.step(n - n.min(5)).unwrap();
        }
        let mut resumed = kept_and_resumed(&mut first, &m);
        assert_eq!(
            resumed.status(),
            first.status(),
            "after {n} steps: the same epoch, step, losses, lr, beta"
        );
        assert_eq!(resumed.history(), first.history());
        assert_eq!(resumed.origin(), first.origin());
        assert_eq!(resumed.label_key(), first.label_key());
        assert_eq!(resumed.facts(), first.facts(), "the page's facts too");
        assert_eq!(resumed.latent().unwrap(), first.latent().unwrap());
        straight.step(m_more).unwrap();
        resumed.step(m_more).unwrap();
        let (a, b) = (resumed.status(), straight.status());
        assert_eq!(a, b, "{n} + {m_more} steps");
        assert_eq!(resumed.history(), straight.history());
        assert_eq!(
            resumed.latent().unwrap(),
            straight.latent().unwrap(),
            "{n} + {m_more} steps: latent means bit for bit"
        );
        assert_eq!(
            resumed.model_safetensors().unwrap(),
            straight.model_safetensors().unwrap()
        );
        // Kept again after the resume: still the same run.
        let mut again = kept_and_resumed(&mut resumed, &m);
        again.step(6).unwrap();
        straight.step(6).unwrap();
        assert_eq!(again.status(), straight.status());
        assert_eq!(again.latent().unwrap(), straight.latent().unwrap());
    }
    // To the end: a resumed run finishes where the straight one does.
    let opts = options(r#"{"top_genes": 100, "n_hidden": 16, "epochs": 3}"#);
    let mut straight = Session::new(&m, &opts, clock).unwrap();
    let mut first = Session::new(&m, &opts, clock).unwrap();
    first.step(8).unwrap();
    let mut resumed = kept_and_resumed(&mut first, &m);
    straight.step(1000).unwrap();
    let done = resumed.step(1000).unwrap();
    assert!(done.finished && done.step == 18, "{done:?}");
    assert_eq!(done, straight.status());
    assert_eq!(resumed.latent().unwrap(), straight.latent().unwrap());
}

#[test]
fn a_damaged_or_mismatched_kept_run_is_refused() {
    let m = demo();
    let opts = options(r#"{"top_genes": 150, "n_hidden": 32}"#);
    let mut s = Session::new(&m, &opts, clock).unwrap();
    assert!(s.run_record().is_err(), "no record before a checkpoint");
    s.step(3).unwrap();
    let bytes = s.checkpoint().unwrap();
    let record = s.run_record().unwrap();
    let config = s.model_config_json().unwrap();
    let refused = |m: &CountMatrix, b: &[u8], c: &str, r: &str| {
        Session::resume(m, b, c, r, clock)
            .err()
            .map(|e| e.to_string())
            .expect("refused")
    };
    assert!(Session::resume(&m, &bytes, &config, &record, clock).is_ok());
    // One flipped bit in the checkpoint.
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x10;
    let e = refused(&m, &flipped, &config, &record);
    assert!(
        e.contains("checkpoint.safetensors") && e.contains("damaged"),
        "{e}"
    );
    let e = refused(&m, &bytes[..bytes.len() / 2], &config, &record);
    assert!(e.contains("checkpoint.safetensors"), "{e}");
    // A checkpoint of a later moment with the earlier record.
    s.step(1).unwrap();
    let later = s.checkpoint().unwrap();
    let e = refused(&m, &later, &config, &record);
    assert!(e.contains("not the checkpoint this run record"), "{e}");
    // config.json of another model.
    let mut other =
        Session::new(&m, &options(r#"{"top_genes": 150, "n_hidden": 16}"#), clock).unwrap();
    let e = refused(&m, &bytes, &other.model_config_json().unwrap(), &record);
    assert!(
        e.contains("config.json") && e.contains("another model"),
        "{e}"
    );
    let other_bytes = other.checkpoint().unwrap();
    let e = refused(&m, &other_bytes, &config, &record);
    assert!(e.contains("checkpoint.safetensors"), "{e}");
    // A damaged record, or one edited to another position.
    let e = refused(&m, &bytes, &config, &record[..record.len() - 5]);
    assert!(e.contains("run.json"), "{e}");
    let e = refused(&m, &bytes, &config, "{}");
    assert!(e.contains("run.json"), "{e}");
    let moved = record.replace("\"position\":384", "\"position\":256");
    assert_ne!(moved, record);
    let e = refused(&m, &bytes, &config, &moved);
    assert!(e.contains("does not fit"), "{e}");
    let stepped = record.replace("\"steps\":3,", "\"steps\":4,");
    assert_ne!(stepped, record);
    let e = refused(&m, &bytes, &config, &stepped);
    assert!(e.contains("step 3") && e.contains("step 4"), "{e}");
    // Other data: fewer cells, or changed counts.
    let fewer = m.select_cells(&(0..600).collect::<Vec<_>>());
    let e = refused(&fewer, &bytes, &config, &record);
    assert!(e.contains("data"), "{e}");
    // (One more count in every stored value: some are in the modelled genes.)
    let mut changed = m.clone();
    changed.data.iter_mut().for_each(|v| *v += 1.0);
    let e = refused(&changed, &bytes, &config, &record);
    assert!(e.contains("not the data"), "{e}");
}

#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn a_gpu_run_is_kept_from_the_state_read_back() {
    let m = demo();
    let opts = options(r#"{"top_genes": 100, "n_hidden": 32}"#);
    let mut gpu = Session::new(&m, &opts, clock).unwrap();
    gpu.step(2).unwrap();
    on_gpu(&mut gpu);
    // Steps 2..10 in one group: the whole state was last read at the end of epoch 0
    // (step 6), so that is what is kept; the resumed run takes steps 6.. again.
    gpu_steps(&mut gpu, 8);
    assert_eq!(gpu.status().step, 10);
    let mid = kept_and_resumed(&mut gpu, &m);
    let st = mid.status();
    assert_eq!((st.epoch, st.step), (1, 6), "{st:?}");
    assert_eq!(mid.history(), gpu.history());
    // A read-back with no steps (the page's after a pause or a step) reads the whole
    // state: kept as it is now.
    gpu_steps(&mut gpu, 1);
    gpu_steps(&mut gpu, 0);
    let mut now = kept_and_resumed(&mut gpu, &m);
    assert_eq!(now.status().step, 11);
    assert_eq!(
        (now.status().lr, now.status().beta),
        (gpu.status().lr, gpu.status().beta)
    );
    assert_eq!(now.history(), gpu.history());
    assert_eq!(now.latent().unwrap(), gpu.latent().unwrap());
    // It goes on (on the CPU) as a CPU run of the same steps does, to the GPU's accuracy.
    let mut cpu = Session::new(&m, &opts, clock).unwrap();
    cpu.step(14).unwrap();
    now.step(3).unwrap();
    assert_eq!(now.status().step, 14);
    let (za, zb) = (now.latent().unwrap(), cpu.latent().unwrap());
    let worst = za
        .iter()
        .zip(&zb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "latent means differ by {worst}");
}

/// Out of memory on a buffer allocation and a shader that fails validation, injected at
/// step 10 of a GPU run: the session says what happened, keeps the parameters and goes
/// on on the CPU from the last state read back, ending where a CPU-only run ends.
#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn out_of_memory_and_an_invalid_shader_on_the_gpu_fall_back_without_losing_training() {
    let m = demo();
    let opts = options(r#"{"top_genes": 100, "n_hidden": 32}"#);
    let mut cpu = Session::new(&m, &opts, clock).unwrap();
    cpu.step(12).unwrap();
    let want = cpu.latent().unwrap();
    for (kind, said) in [
        ("oom", "out of GPU memory allocating a minibatch"),
        ("shader", "failed to compile"),
    ] {
        let mut gpu = Session::new(&m, &opts, clock).unwrap();
        let e = gpu.test_gpu_fault(kind, 10).unwrap_err().to_string();
        assert!(e.contains("does not run on the GPU"), "{e}");
        gpu.step(3).unwrap();
        on_gpu(&mut gpu);
        let e = gpu.test_gpu_fault("melt", 10).unwrap_err().to_string();
        assert!(e.contains("unknown GPU fault 'melt'"), "{e}");
        gpu_steps(&mut gpu, 5);
        gpu.test_gpu_fault(kind, 10).unwrap();
        gpu_steps(&mut gpu, 4);
        let why = gpu.take_gpu_fallback().expect("the GPU was left");
        assert!(why.contains(said), "{kind}: {why}");
        assert!(matches!(gpu.run(), Run::Cpu(_)), "{kind}");
        let at = gpu.status().step;
        assert!((3..=10).contains(&at), "{kind}: resumed at step {at}");
        gpu.step(12 - at).unwrap();
        let s = gpu.status();
        assert_eq!(s.step, 12, "{kind}");
        let z = gpu.latent().unwrap();
        assert!(z.iter().all(|v| v.is_finite()), "{kind}");
        let worst = z
            .iter()
            .zip(&want)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-3, "{kind}: latent means differ by {worst}");
        eprintln!("{kind}: resumed on the CPU at step {at}: {why}");
    }
}

/// A comparison in the page is the core's `differential_expression` on the same cells
/// and parameters (the numbers `cellvae de` prints), with the genes named, "the rest"
/// as every other cell, and the CSV the page exports.
#[test]
fn comparisons_are_the_cores_differential_expression() {
    use cellvae::de::{differential_expression, DeOptions};
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 200, "n_latent": 4}"#), clock).unwrap();
    s.step(150).unwrap();
    let data = s.data().clone();
    let col = data.matrix.obs.get("cell_type").unwrap();
    let (codes, levels) = cellvae::pipeline::column_codes(col);
    let mono = levels.iter().position(|l| l == "CD14+ Monocyte").unwrap() as u32;
    let g1: Vec<u32> = (0..700u32)
        .filter(|&c| codes[c as usize] == Some(mono))
        .collect();
    let opts: DeOptions =
        serde_json::from_str(r#"{"n_samples": 500, "n_pairs": 1000, "seed": 3}"#).unwrap();
    assert_eq!(opts.delta, 0.25, "options left out take their defaults");
    let c = s.compare(&g1, None, &opts).unwrap();
    assert_eq!((c.n_cells1, c.n_cells2), (g1.len(), 700 - g1.len()));
    let rest: Vec<usize> = (0..700).filter(|c| codes[*c] != Some(mono)).collect();
    let g1u: Vec<usize> = g1.iter().map(|&c| c as usize).collect();
    let core = differential_expression(
        &s.params().unwrap(),
        &data.matrix,
        &data.batch_codes,
        &g1u,
        &rest,
        &opts,
    )
    .unwrap();
    assert_eq!(c.genes.len(), core.genes.len());
    for (row, de) in c.genes.iter().zip(&core.genes) {
        assert_eq!(&row.de, de);
        assert_eq!(row.name, data.matrix.gene_names[de.gene]);
    }
    assert_eq!(c.n_de, core.n_de);
    assert_eq!(c.csv.lines().count(), 201);
    assert!(c
        .csv
        .lines()
        .nth(1)
        .unwrap()
        .starts_with(&format!("{},", c.genes[0].id)));
    // Monocytes against B cells: a real difference, so genes are called (against the
    // mixed rest, as in scvi-tools, few or none may be).
    let b = levels.iter().position(|l| l == "CD19+ B").unwrap() as u32;
    let g2: Vec<u32> = (0..700u32)
        .filter(|&c| codes[c as usize] == Some(b))
        .collect();
    let two = s.compare(&g1, Some(&g2), &opts).unwrap();
    assert_eq!(two.n_cells2, g2.len());
    assert!(two.n_de > 0, "no gene called between monocytes and B cells");
    // The page's words for a bad request.
    let e = s.compare(&[], None, &opts).unwrap_err().to_string();
    assert!(e.contains("group 1 has no cells"), "{e}");
    let e = s
        .compare(&[1], Some(&[5000]), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("group 2 names cell 5000"), "{e}");
}

/// The page's .h5ad is the session's cells and latent means, read back by cellvae's
/// reader (what `cellvae train --out-h5ad` writes, tests/h5ad_out.rs).
#[test]
fn the_session_saves_an_h5ad() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 150, "n_latent": 3}"#), clock).unwrap();
    s.step(5).unwrap();
    let bytes = s.h5ad(true).unwrap();
    let back = read_inputs(
        &[InputFile::new("cellvae.h5ad", bytes.clone())],
        None,
        &ReadOptions::default(),
    )
    .unwrap();
    let data = s.data().clone();
    assert_eq!((back.n_cells, back.n_genes), (700, 150));
    assert_eq!(back.data, data.matrix.data);
    assert_eq!(back.gene_names, data.matrix.gene_names);
    assert!(back.obs.get("cell_type").is_some());
    let f = hdf5_pure::File::from_bytes(bytes).unwrap();
    assert_eq!(
        f.dataset("obsm/X_cellvae").unwrap().read_f32().unwrap(),
        s.latent().unwrap()
    );
    let small = s.h5ad(false).unwrap();
    assert!(hdf5_pure::File::from_bytes(small)
        .unwrap()
        .group("X")
        .is_err());
}

/// The page's model.pt for scvi-tools is cellvae's writer on the session's parameters:
/// a session opened on it has the same latent means.
#[test]
fn the_session_saves_an_scvi_tools_model() {
    let m = demo();
    let mut s = Session::new(&m, &options(r#"{"top_genes": 150, "n_latent": 3}"#), clock).unwrap();
    s.step(5).unwrap();
    let pt = s.scvi_model().unwrap();
    let mut back = Session::from_model(&m, &pt, "", &options("{}"), clock).unwrap();
    assert!(back.origin().contains("scvi-tools"), "{}", back.origin());
    assert_eq!(back.latent().unwrap(), s.latent().unwrap());
}
