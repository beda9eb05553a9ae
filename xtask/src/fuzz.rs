//! The fuzz smoke step of `cargo xtask test`: every target in `fuzz/` (cargo-fuzz,
//! nightly, its own target dir `fuzz/target`, so the stable build is never invalidated)
//! runs over its committed seeds and saved findings and then mutates for a few seconds.
//! A crash, a timeout or an out-of-memory fails the step; the long runs are by hand
//! (fuzz/README.md).

use crate::setup::{ensure_fuzz_tools, repo_root};
use std::process::Command;

/// The targets (`fuzz/Cargo.toml`'s bins).
const TARGETS: &[&str] = &["mtx", "dense", "tenx_h5", "h5ad", "obs", "codec", "model"];
/// Seconds of mutation per target after the seeds.
const SECONDS_PER_TARGET: u32 = 10;

/// `rustup run nightly cargo fuzz <args>` in `fuzz/`, without the stable toolchain's
/// environment that `cargo xtask` was started with.
fn cargo_fuzz(args: &[&str]) -> Result<(), String> {
    let dir = repo_root().join("fuzz");
    eprintln!("$ (fuzz/) cargo +nightly fuzz {}", args.join(" "));
    let status = Command::new("rustup")
        .args(["run", "nightly", "cargo", "fuzz"])
        .args(args)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTFLAGS")
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("cannot start rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo fuzz {} failed ({status})", args.join(" ")))
    }
}

/// Builds every target, then runs each over a scratch copy of its corpus for
/// [`SECONDS_PER_TARGET`] seconds.
pub fn smoke(test_env: &[(&str, &str)]) -> Result<(), String> {
    ensure_fuzz_tools()?;
    let root = repo_root();
    let h5ad_seeds = root.join("fuzz/corpus/h5ad/seed-csr.h5ad");
    if !h5ad_seeds.exists() {
        // Not committed (mostly HDF5 padding): written from the builders in the test.
        eprintln!("xtask: writing the fuzz seeds (fuzz/corpus/*/seed-*)");
        crate::setup::cargo(
            &[
                "test",
                "--test",
                "fuzz_regressions",
                "--",
                "--ignored",
                "write_fuzz_seeds",
            ],
            test_env,
        )?;
    }
    cargo_fuzz(&["build"])?;
    let max_time = format!("-max_total_time={SECONDS_PER_TARGET}");
    for target in TARGETS {
        // A scratch corpus of the committed seeds (fuzz/corpus/<t>/seed-*, not what
        // long runs added there) and the saved findings (tests/fuzz_regressions/<t>/):
        // libFuzzer adds what it finds to it, never to the committed folders.
        let scratch = root.join("fuzz/target/smoke-corpus").join(target);
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
        let seeds = root.join("fuzz/corpus").join(target);
        let findings = root.join("tests/fuzz_regressions").join(target);
        let mut n_inputs = 0;
        for (dir, only_seeds) in [(&seeds, true), (&findings, false)] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if (only_seeds && !name.starts_with("seed-")) || !entry.path().is_file() {
                    continue;
                }
                std::fs::copy(entry.path(), scratch.join(&name))
                    .map_err(|e| format!("cannot copy {}: {e}", entry.path().display()))?;
                n_inputs += 1;
            }
        }
        eprintln!("xtask: fuzz target {target}: {n_inputs} seeds and findings, then {SECONDS_PER_TARGET} s of mutation");
        let scratch_s = scratch.to_string_lossy().to_string();
        cargo_fuzz(&[
            "run",
            target,
            &scratch_s,
            "--",
            &max_time,
            "-rss_limit_mb=2048",
            "-timeout=10",
            "-print_final_stats=1",
        ])
        .map_err(|e| {
            format!("{e}; the input that failed is in fuzz/artifacts/{target}/ (replay it with `cargo +nightly fuzz run {target} <file>`)")
        })?;
    }
    Ok(())
}
