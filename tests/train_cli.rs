//! `cellvae train` and `cellvae eval` end to end: the output files and their content,
//! every input format, with and without a batch column, and clear errors for a model
//! that does not fit the data or is damaged.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel)
        .display()
        .to_string()
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("train")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn cellvae(args: &[&str]) -> (bool, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cellvae"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn metrics(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn train_writes_every_file_and_eval_reproduces_the_metrics() {
    let out = out_dir("pbmc");
    let o = out.display().to_string();
    let pbmc = data("pbmc68k_reduced_700");
    let obs = data("pbmc68k_reduced_700/cells.tsv");
    let (ok, stdout, stderr) = cellvae(&[
        "train",
        &pbmc,
        "--obs",
        &obs,
        "--epochs",
        "3",
        "--holdout-every",
        "10",
        "--label-key",
        "cell_type",
        "--eval-samples",
        "20",
        "--out",
        &o,
    ]);
    assert!(ok, "{stderr}");
    let m = metrics(&out);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        m
    );
    for key in [
        "n_cells",
        "n_genes",
        "epochs",
        "backend",
        "adapter",
        "seconds_per_epoch",
        "heldout_elbo_per_cell",
        "heldout_log_px_iw100_per_cell",
        "heldout_reconstruction_per_cell",
        "active_units",
        "knn15_accuracy",
    ] {
        assert!(!m[key].is_null(), "metrics.json lacks {key}");
    }
    assert_eq!(m["n_cells"], 700);
    assert_eq!(m["n_heldout_cells"], 70);
    assert_eq!(m["epochs"], 3);
    assert_eq!(m["backend"], "cpu");
    let (elbo, lpx) = (
        m["heldout_elbo_per_cell"].as_f64().unwrap(),
        m["heldout_log_px_iw100_per_cell"].as_f64().unwrap(),
    );
    assert!(
        elbo < 0.0 && lpx < 0.0 && lpx >= elbo - 1.0,
        "IW bound must not be below the ELBO: {elbo} {lpx}"
    );
    let knn = m["knn15_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&knn));
    // latent.tsv: header + every cell in input order.
    let latent = std::fs::read_to_string(out.join("latent.tsv")).unwrap();
    let lines: Vec<&str> = latent.lines().collect();
    assert_eq!(lines.len(), 701);
    assert_eq!(lines[0], "cell_id\tz1\tz2\tz3\tz4\tz5\tz6\tz7\tz8\tz9\tz10");
    let barcodes = std::fs::read_to_string(data("pbmc68k_reduced_700/barcodes.tsv")).unwrap();
    for (line, bc) in lines[1..].iter().zip(barcodes.lines()) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f[0], bc);
        assert_eq!(f.len(), 11);
        assert!(f[1..].iter().all(|v| v.parse::<f32>().unwrap().is_finite()));
    }
    let losses = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    assert_eq!(
        losses.lines().next().unwrap(),
        "epoch,elbo,reconstruction,kl,kl_weight,seconds"
    );
    assert_eq!(losses.lines().count(), 4);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["gene_names"].as_array().unwrap().len(), 765);
    // eval recomputes the held-out metrics from the files, exactly.
    let (ok, stdout, stderr) = cellvae(&[
        "eval",
        &o,
        &pbmc,
        "--holdout-every",
        "10",
        "--eval-samples",
        "20",
    ]);
    assert!(ok, "{stderr}");
    let e: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(e["n_evaluated_cells"], 70);
    for key in [
        "heldout_elbo_per_cell",
        "heldout_log_px_iw100_per_cell",
        "heldout_reconstruction_per_cell",
    ] {
        let (a, b) = (e[key].as_f64().unwrap(), m[key].as_f64().unwrap());
        assert!(
            (a - b).abs() < 1e-6 * b.abs(),
            "{key}: eval {a} vs train {b}"
        );
    }
}

/// A gene list file with 50 of pbmc's genes (ids), in reverse order.
fn gene_list() -> String {
    let features = std::fs::read_to_string(data("pbmc68k_reduced_700/features.tsv")).unwrap();
    let ids: Vec<&str> = features
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .take(50)
        .collect();
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("genes50.txt");
    std::fs::write(&p, ids.iter().rev().cloned().collect::<Vec<_>>().join("\n")).unwrap();
    p.display().to_string()
}

#[test]
fn train_reads_every_format_with_and_without_batches() {
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "h5",
            vec![data("scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5")],
        ),
        (
            "h5ad-batch",
            vec![
                data("wu2020_200/wu2020_200_v0_11.h5ad"),
                "--batch-key".into(),
                "patient".into(),
                "--dispersion".into(),
                "gene-batch".into(),
            ],
        ),
        (
            "mtx-batch-zinb",
            vec![
                data("wu2020_200"),
                "--obs".into(),
                data("wu2020_200/cells.tsv"),
                "--batch-key".into(),
                "batch".into(),
                "--likelihood".into(),
                "zinb".into(),
                "--encode-batch".into(),
            ],
        ),
        (
            "poisson",
            vec![
                data("pbmc68k_reduced_700"),
                "--likelihood".into(),
                "poisson".into(),
                "--n-latent".into(),
                "2".into(),
            ],
        ),
        (
            "gene-list",
            vec![data("pbmc68k_reduced_700"), "--genes".into(), gene_list()],
        ),
    ];
    for (name, args) in cases {
        let out = out_dir(name);
        let o = out.display().to_string();
        let mut a: Vec<&str> = vec!["train"];
        a.extend(args.iter().map(String::as_str));
        a.extend([
            "--epochs",
            "2",
            "--holdout-every",
            "5",
            "--eval-samples",
            "5",
            "--out",
            &o,
        ]);
        let (ok, _, stderr) = cellvae(&a);
        assert!(ok, "{name}: {stderr}");
        let m = metrics(&out);
        assert!(
            m["heldout_elbo_per_cell"].as_f64().unwrap().is_finite(),
            "{name}"
        );
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        if name == "gene-list" {
            let names = cfg["gene_ids"].as_array().unwrap();
            assert_eq!(names.len(), 50);
            assert_eq!(names[0], "CTSS");
        }
        if name == "mtx-batch-zinb" {
            assert_eq!(cfg["model"]["encode_batch"], true);
            assert_eq!(cfg["model"]["likelihood"], "zinb");
        }
        if name.contains("batch") {
            assert!(
                cfg["batch_levels"].as_array().unwrap().len() > 1,
                "{name}: batch levels"
            );
        }
    }
}

#[test]
fn eval_refuses_mismatched_or_damaged_models() {
    let out = out_dir("small");
    let o = out.display().to_string();
    let (ok, _, stderr) = cellvae(&[
        "train",
        &data("pbmc68k_reduced_700"),
        "--epochs",
        "1",
        "--eval-samples",
        "2",
        "--out",
        &o,
    ]);
    assert!(ok, "{stderr}");
    // Other genes.
    let (ok, _, stderr) = cellvae(&[
        "eval",
        &o,
        &data("scanpy_10x_v3_chr21/filtered_feature_bc_matrix.h5"),
    ]);
    assert!(!ok);
    assert!(stderr.contains("genes"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // Batch levels that do not match the model's batches (would index out of range).
    let cfg_path = out.join("config.json");
    let original = std::fs::read_to_string(&cfg_path).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&original).unwrap();
    v["batch_levels"] = serde_json::json!(["a", "b", "c"]);
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let (ok, _, stderr) = cellvae(&["eval", &o, &data("pbmc68k_reduced_700")]);
    assert!(!ok);
    assert!(
        stderr.contains("config.json") && stderr.contains("3 batch levels"),
        "{stderr}"
    );
    std::fs::write(&cfg_path, original).unwrap();
    // A truncated model file.
    let st = out.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, stderr) = cellvae(&["eval", &o, &data("pbmc68k_reduced_700")]);
    assert!(!ok);
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    // A damaged config.
    std::fs::write(out.join("config.json"), "{ not json").unwrap();
    let (ok, _, stderr) = cellvae(&["eval", &o, &data("pbmc68k_reduced_700")]);
    assert!(!ok);
    assert!(stderr.contains("config.json"), "{stderr}");
}

/// `--backend gpu` trains on the GPU adapter (lavapipe on CI: no adapter is a failure)
/// and lands where the CPU backend does from the same seed; a lost device falls back
/// to the CPU without losing training.
#[test]
#[cfg_attr(cellvae_skip_gpu, ignore = "CELLVAE_SKIP_GPU_TESTS is set")]
fn gpu_backend_trains_like_the_cpu_backend() {
    let mut got = Vec::new();
    for backend in ["cpu", "gpu"] {
        let out = out_dir(&format!("backend-{backend}"));
        let o = out.display().to_string();
        let (ok, _, stderr) = cellvae(&[
            "train",
            &data("pbmc68k_reduced_700"),
            "--epochs",
            "1",
            "--holdout-every",
            "10",
            "--eval-samples",
            "5",
            "--backend",
            backend,
            "--out",
            &o,
        ]);
        assert!(ok, "{backend}: {stderr}");
        let m = metrics(&out);
        assert_eq!(m["backend"], backend);
        got.push((
            m["heldout_elbo_per_cell"].as_f64().unwrap(),
            m["adapter"].as_str().unwrap().to_string(),
            m["heldout_log_px_iw100_per_cell"].as_f64().unwrap(),
        ));
    }
    let (cpu, gpu) = (&got[0], &got[1]);
    // The bar is 1%; the backends agree far closer (~1e-9 measured).
    assert!(
        (cpu.0 - gpu.0).abs() <= 1e-3 * cpu.0.abs(),
        "held-out ELBO: cpu {} gpu {}",
        cpu.0,
        gpu.0
    );
    assert!(
        (cpu.2 - gpu.2).abs() <= 1e-3 * cpu.2.abs(),
        "held-out log p(x): cpu {} gpu {}",
        cpu.2,
        gpu.2
    );
    assert_ne!(cpu.1, gpu.1, "metrics.json must name the GPU adapter");
    assert!(!gpu.1.trim().is_empty(), "empty adapter name");

    // The device is lost at step 2: the run goes on on the CPU from the last state read
    // back (step 0 here), says so, and ends exactly where the CPU-only run ended.
    let out = out_dir("gpu-lost");
    let o = out.display().to_string();
    let run = Command::new(env!("CARGO_BIN_EXE_cellvae"))
        .args([
            "train",
            &data("pbmc68k_reduced_700"),
            "--epochs",
            "1",
            "--holdout-every",
            "10",
            "--eval-samples",
            "5",
            "--backend",
            "gpu",
            "--out",
            &o,
        ])
        .env("CELLVAE_TEST_LOSE_GPU_AT_STEP", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("the GPU failed") && stderr.contains("continuing on the CPU from step 0"),
        "{stderr}"
    );
    let m = metrics(&out);
    assert_eq!(m["backend"], "cpu");
    assert_eq!(m["fallback"]["from"], "gpu");
    assert_eq!(m["fallback"]["resumed_at_step"], 0);
    assert!(m["fallback"]["reason"].as_str().unwrap().contains("lost"));
    assert_eq!(m["epochs"], 1);
    assert_eq!(m["heldout_elbo_per_cell"].as_f64().unwrap(), cpu.0);
}

/// The demo shipped with the page.
fn demo() -> (String, String) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("www/demo/pbmc68k_reduced_700");
    (
        d.display().to_string(),
        d.join("cells.tsv").display().to_string(),
    )
}

/// Every number in latent.tsv, losses.csv and metrics.json is finite (JSON has no NaN:
/// serde_json would write `null`).
fn assert_outputs_finite(out: &Path) {
    let latent = std::fs::read_to_string(out.join("latent.tsv")).unwrap();
    for line in latent.lines().skip(1) {
        for v in line.split('\t').skip(1) {
            assert!(v.parse::<f32>().unwrap().is_finite(), "latent.tsv: {line}");
        }
    }
    let losses = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    for line in losses.lines().skip(1) {
        for v in line.split(',') {
            assert!(v.parse::<f64>().unwrap().is_finite(), "losses.csv: {line}");
        }
    }
    let m = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(!m.contains("null"), "metrics.json: {m}");
}

/// A learning rate far too high (a teacher showing divergence): the run goes back to a
/// state from before each divergence, lowers the rate and trains to the end with
/// finite results; each recovery is a line on stderr and an entry in metrics.json.
#[test]
fn high_learning_rates_recover_and_train_to_the_end() {
    let (demo, obs) = demo();
    for lr in ["0.1", "1", "5"] {
        let out = out_dir(&format!("lr{lr}"));
        let o = out.display().to_string();
        let (ok, _, stderr) = cellvae(&[
            "train",
            &demo,
            "--obs",
            &obs,
            "--epochs",
            "3",
            "--lr",
            lr,
            "--holdout-every",
            "10",
            "--seed",
            "0",
            "--eval-samples",
            "10",
            "--out",
            &o,
        ]);
        assert!(ok, "--lr {lr}: {stderr}");
        let m = metrics(&out);
        assert_eq!(m["epochs"], 3, "--lr {lr}");
        let lpx = m["heldout_log_px_iw100_per_cell"].as_f64().unwrap();
        assert!(lpx.is_finite() && lpx < 0.0, "--lr {lr}: {lpx}");
        let rec = m["recoveries"].as_array().unwrap();
        assert!(!rec.is_empty(), "--lr {lr}: no recovery");
        for r in rec {
            assert!(r["step"].is_u64() && r["resumed_at_step"].is_u64(), "{r}");
            assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        }
        let final_lr = m["final_lr"].as_f64().unwrap();
        let given: f64 = lr.parse().unwrap();
        assert!(final_lr < given, "--lr {lr}: final {final_lr}");
        assert_eq!(rec.last().unwrap()["new_lr"].as_f64().unwrap(), final_lr);
        assert_eq!(
            stderr.matches("warning: training diverged at step").count(),
            rec.len(),
            "--lr {lr}: {stderr}"
        );
        assert_outputs_finite(&out);
    }
}

/// A dense table written by the test: `cells` x `genes` counts from `f`.
fn table(name: &str, cells: usize, genes: usize, f: impl Fn(usize, usize) -> u32) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train");
    std::fs::create_dir_all(&dir).unwrap();
    let mut s = String::from("cell");
    for g in 0..genes {
        s.push_str(&format!(",g{g}"));
    }
    s.push('\n');
    for c in 0..cells {
        s.push_str(&format!("c{c}"));
        for g in 0..genes {
            s.push_str(&format!(",{}", f(c, g)));
        }
        s.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p.display().to_string()
}

/// Degenerate data and hard settings through the command line: a single cell is
/// refused with the reason, a single gene, minibatches of one cell and beta 100 train
/// and write only finite numbers.
#[test]
fn degenerate_data_and_hard_settings_end_cleanly() {
    let one_cell = table("one_cell.csv", 1, 6, |_, g| g as u32 + 1);
    let out = out_dir("one_cell");
    let (ok, _, stderr) = cellvae(&["train", &one_cell, "--out", &out.display().to_string()]);
    assert!(!ok);
    assert!(
        stderr.contains("1 cell") && stderr.contains("at least 2"),
        "{stderr}"
    );
    let one_gene = table("one_gene.csv", 30, 1, |c, _| (c % 9 + 1) as u32);
    let small = table("small.csv", 40, 12, |c, g| ((c * 7 + g * 3) % 6) as u32);
    for (name, input, extra) in [
        ("one_gene", &one_gene, vec![]),
        ("batch_of_one", &small, vec!["--batch-size", "1"]),
        ("beta100", &small, vec!["--beta", "100", "--kl-warmup", "0"]),
    ] {
        let out = out_dir(name);
        let o = out.display().to_string();
        let mut args = vec!["train", input, "--epochs", "3", "--eval-samples", "5"];
        args.extend(extra);
        args.extend(["--out", &o]);
        let (ok, _, stderr) = cellvae(&args);
        assert!(ok, "{name}: {stderr}");
        assert_outputs_finite(&out);
    }
}

/// Cell ids with a tab or a double quote (quoted in the input CSV) are written into
/// latent.tsv quoted (RFC 4180), so every line keeps its columns and reads back to the
/// same ids.
#[test]
fn odd_cell_ids_keep_latent_tsv_well_formed() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("train");
    std::fs::create_dir_all(&dir).unwrap();
    let ids: Vec<String> = (0..40)
        .map(|c| match c {
            0 => "a\tb".to_string(),
            1 => "say \"hi\"".to_string(),
            2 => "x,y".to_string(),
            _ => format!("c{c}"),
        })
        .collect();
    let mut csv = String::from("cell");
    for g in 0..12 {
        csv.push_str(&format!(",g{g}"));
    }
    csv.push('\n');
    for (c, id) in ids.iter().enumerate() {
        csv.push_str(&format!("\"{}\"", id.replace('"', "\"\"")));
        for g in 0..12 {
            csv.push_str(&format!(",{}", (c * 5 + g * 3) % 7));
        }
        csv.push('\n');
    }
    let input = dir.join("odd_ids.csv");
    std::fs::write(&input, csv).unwrap();
    let out = out_dir("odd_ids");
    let o = out.display().to_string();
    let (ok, _, stderr) = cellvae(&[
        "train",
        &input.display().to_string(),
        "--epochs",
        "1",
        "--eval-samples",
        "5",
        "--out",
        &o,
    ]);
    assert!(ok, "{stderr}");
    let bytes = std::fs::read(out.join("latent.tsv")).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert_eq!(text.lines().count(), 41);
    assert!(text.contains("\n\"a\tb\"\t"), "{text}");
    assert!(text.contains("\n\"say \"\"hi\"\"\"\t"), "{text}");
    assert!(text.contains("\nx,y\t"), "a comma needs no quotes in a TSV");
    let (read_ids, table) =
        cellvae::data::obs::read_obs_table(&cellvae::data::InputFile::new("latent.tsv", bytes))
            .unwrap();
    assert_eq!(read_ids, ids);
    assert_eq!(table.columns.len(), 10);
}

/// The CPU kernels' threads change nothing: one, two and three threads
/// (`CELLVAE_THREADS`) write the same latent means and losses, byte for byte, on sparse
/// data (the demo: the first layer's sparse rows) and dense data (a product; the
/// products' blocks are split over the threads too).
#[test]
fn threads_do_not_change_the_results() {
    let dense = table("dense_threads.csv", 600, 300, |c, g| {
        ((c * 7 + g * 13) % 11 + (c % 5) * (g % 3)) as u32
    });
    let (demo, _) = demo();
    for (name, input) in [("demo", demo), ("dense", dense)] {
        let mut outputs = Vec::new();
        for threads in ["1", "2", "3"] {
            let out = out_dir(&format!("threads_{name}_{threads}"));
            let o = Command::new(env!("CARGO_BIN_EXE_cellvae"))
                .env("CELLVAE_THREADS", threads)
                .args([
                    "train",
                    &input,
                    "--epochs",
                    "2",
                    "--eval-samples",
                    "5",
                    "--out",
                ])
                .arg(&out)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let losses = std::fs::read_to_string(out.join("losses.csv")).unwrap();
            // The seconds column is the machine's, not the arithmetic's.
            let losses: Vec<String> = losses
                .lines()
                .map(|l| l.rsplit_once(',').map_or(l, |(a, _)| a).to_string())
                .collect();
            outputs.push((std::fs::read(out.join("latent.tsv")).unwrap(), losses));
        }
        assert!(outputs[0] == outputs[1], "{name}: 1 and 2 threads differ");
        assert!(outputs[0] == outputs[2], "{name}: 1 and 3 threads differ");
    }
}

/// `cellvae bench` prints one row per data set with positive figures, on the CPU and on
/// the GPU (lavapipe in CI: a tiny size), the GPU row with its dispatches per step.
#[test]
fn bench_prints_its_figures_on_cpu_and_gpu() {
    let tiny = table("bench_tiny.csv", 300, 40, |c, g| {
        ((c * 3 + g * 5) % 7) as u32
    });
    for backend in ["cpu", "gpu"] {
        let (ok, out, err) = cellvae(&["bench", &tiny, "--epochs", "1", "--backend", backend]);
        assert!(ok, "{backend}: {err}");
        assert!(out.contains("matrix-product peak"), "{out}");
        let row = out
            .lines()
            .find(|l| l.contains("bench_tiny.csv"))
            .unwrap_or_else(|| panic!("no row for the data: {out}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | data | cells x genes | non-zero | backend | s/epoch | cells/s | step ms | GFLOP/s ...
        assert_eq!(cells[2], "300 x 40", "{row}");
        assert_eq!(cells[4], backend, "{row}");
        for i in [5, 6, 7] {
            let v: f64 = cells[i]
                .parse()
                .unwrap_or_else(|_| panic!("column {i} of {row}"));
            assert!(v > 0.0 && v.is_finite(), "column {i} of {row}");
        }
        let dispatches = cells[14];
        if backend == "gpu" {
            assert!(dispatches.parse::<usize>().is_ok_and(|d| d > 10), "{row}");
        } else {
            assert_eq!(dispatches, "-", "{row}");
        }
    }
}
