//! Build tooling for cellvae (the xtask pattern of wgpu, vello and burn).
//!
//! - `cargo xtask serve`: build the wasm core and the page, serve them on 127.0.0.1
//!   (`PORT`, default 8080) with the built-in demo data.
//! - `cargo xtask test`: every check CI runs: fmt, clippy (native and wasm32), native
//!   tests (GPU tests on the software Vulkan adapter), a short run of every fuzz target
//!   (nightly cargo fuzz, fuzz/README.md), wasm tests in headless Chromium
//!   with WebGPU, the page's type check (`tsc --noEmit` over www/, JSDoc types) and
//!   Playwright tests of the served page with WebGPU on and off.
//!
//! - `cargo xtask fuzz-smoke`: only the fuzz step of `test` (each target in `fuzz/` for 10 s).
//!
//! Both install what is missing on a fresh Debian machine (the wasm32 target,
//! wasm-bindgen-cli at the Cargo.lock version, Debian's mesa-vulkan-drivers, chromium
//! and chromium-driver when run as root, the npm test tools) and skip what is there.

mod fuzz;
mod serve;
mod setup;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("serve") => serve::serve_command(),
        Some("build-web") => setup::build_web(true).map(|_| ()),
        Some("test") => test(&args[1..]),
        Some("fuzz-smoke") => setup::gpu_test_env().and_then(|env| {
            let refs: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            fuzz::smoke(&refs)
        }),
        _ => {
            eprintln!(
                "usage: cargo xtask serve | test [--skip-browser] | build-web | fuzz-smoke\n\
                 \n  serve       build the web app and serve it on 127.0.0.1:$PORT (default 8080)\
                 \n  test        run every check (fmt, clippy, native, wasm, type check and browser tests)\
                 \n  build-web   build the wasm core and bindings into www/pkg\
                 \n  fuzz-smoke  only the fuzz step of `test`: each fuzz target for 10 s (nightly)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test(args: &[String]) -> Result<(), String> {
    let skip_browser = args.iter().any(|a| a == "--skip-browser");
    let started = std::time::Instant::now();
    setup::ensure_native_tools(!skip_browser)?;
    let mut steps: Vec<(&str, f64)> = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<(), String>| {
        let t = std::time::Instant::now();
        eprintln!("\n=== xtask test: {name} ===");
        let r = f();
        steps.push((name, t.elapsed().as_secs_f64()));
        r.map_err(|e| format!("{name}: {e}"))
    };
    step("cargo fmt --check", &mut || {
        setup::cargo(&["fmt", "--all", "--check"], &[])
    })?;
    step("clippy (native)", &mut || {
        setup::cargo(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    step("clippy (wasm32)", &mut || {
        setup::cargo(
            &[
                "clippy",
                "--lib",
                "--test",
                "wasm",
                "--target",
                "wasm32-unknown-unknown",
                "--no-default-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    })?;
    let gpu_env = setup::gpu_test_env()?;
    let env_refs: Vec<(&str, &str)> = gpu_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    step("native tests", &mut || {
        setup::cargo(&["test", "--workspace"], &env_refs)
    })?;
    step(
        "fuzz smoke (nightly cargo fuzz, 10 s per target)",
        &mut || fuzz::smoke(&env_refs),
    )?;
    if !skip_browser {
        let wasm_env = setup::wasm_test_env()?;
        let wasm_refs: Vec<(&str, &str)> = wasm_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        step("wasm tests (headless Chromium, WebGPU)", &mut || {
            setup::cargo(
                &[
                    "test",
                    "--target",
                    "wasm32-unknown-unknown",
                    "--no-default-features",
                    "--test",
                    "wasm",
                ],
                &wasm_refs,
            )
        })?;
        step("web build (www/pkg)", &mut || {
            setup::build_web(false).map(|_| ())
        })?;
        step("type check of www/ (tsc --noEmit)", &mut setup::typecheck)?;
        step("browser tests (Playwright)", &mut serve::run_browser_tests)?;
    } else {
        eprintln!(
            "\nxtask test: --skip-browser given: wasm tests, the www/ type check and browser tests NOT run"
        );
    }
    eprintln!(
        "\n=== xtask test: all steps passed in {:.0} s ===",
        started.elapsed().as_secs_f64()
    );
    for (name, secs) in steps {
        eprintln!("  {secs:>7.1} s  {name}");
    }
    Ok(())
}
