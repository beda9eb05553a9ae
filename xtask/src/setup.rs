//! Installing what the build and the tests need, and running commands.
//! Every check is cheap when the tool is already there.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the parent of `xtask/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs a command in the repository root, failing on a non-zero exit.
pub fn run(program: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

/// Runs cargo (the same cargo that runs xtask) in the repository root.
pub fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    run(&cargo, args, env, &repo_root())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

fn is_root() -> bool {
    output("id", &["-u"])
        .map(|s| s.trim() == "0")
        .unwrap_or(false)
}

/// The wasm-bindgen version pinned in Cargo.lock.
pub fn wasm_bindgen_version() -> Result<String, String> {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
            {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err("Cargo.lock has no wasm-bindgen entry".into())
}

fn ensure_wasm_tools() -> Result<(), String> {
    let installed = output("rustup", &["target", "list", "--installed"]).unwrap_or_default();
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        run(
            "rustup",
            &["target", "add", "wasm32-unknown-unknown"],
            &[],
            &repo_root(),
        )?;
    }
    let want = wasm_bindgen_version()?;
    let have = output("wasm-bindgen", &["--version"]).unwrap_or_default();
    let runner = output("wasm-bindgen-test-runner", &["--version"]).unwrap_or_default();
    if !have.contains(&want) || !runner.contains(&want) {
        eprintln!("xtask: installing wasm-bindgen-cli {want} (about 4 minutes, once)");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        run(
            &cargo,
            &["install", "wasm-bindgen-cli", "--version", &want, "--force"],
            &[],
            &repo_root(),
        )?;
    }
    Ok(())
}

/// Debian packages for GPU and browser tests: (package, a file it installs).
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    (
        "mesa-vulkan-drivers",
        "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json",
    ),
    ("chromium", "/usr/bin/chromium"),
    ("chromium-driver", "/usr/bin/chromedriver"),
];

fn lavapipe_present() -> bool {
    std::fs::read_dir("/usr/share/vulkan/icd.d")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("lvp_icd"))
        })
        .unwrap_or(false)
}

fn ensure_debian_packages(browser: bool) -> Result<(), String> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .filter(|(pkg, file)| {
            (browser || *pkg == "mesa-vulkan-drivers")
                && !(Path::new(file).exists()
                    || (*pkg == "mesa-vulkan-drivers" && lavapipe_present()))
        })
        .map(|(p, _)| *p)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing Debian packages: {0}; install them with `sudo apt-get install {0}` and run again",
            missing.join(" ")
        ));
    }
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    run("apt-get", &["update", "-qq"], &env, &repo_root())?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    run("apt-get", &args, &env, &repo_root())
}

/// The npm tools in `tests/e2e` (pinned in its package-lock.json): playwright-core (drives
/// Debian's Chromium) and typescript (type checks the page's modules).
fn ensure_npm_tools() -> Result<(), String> {
    let e2e = repo_root().join("tests/e2e");
    let have = |pkg: &str| {
        e2e.join("node_modules")
            .join(pkg)
            .join("package.json")
            .exists()
    };
    if have("playwright-core") && have("typescript") {
        return Ok(());
    }
    run("npm", &["ci", "--no-audit", "--no-fund"], &[], &e2e)
}

/// `tsc --noEmit` over the page's modules (`tsconfig.json`: every `www/*.js` with JSDoc
/// types, against the generated `www/pkg/cellvae.d.ts`); needs `build_web` first.
pub fn typecheck() -> Result<(), String> {
    ensure_npm_tools()?;
    let root = repo_root();
    let tsc = root.join("tests/e2e/node_modules/typescript/bin/tsc");
    run(
        "node",
        &[
            &tsc.to_string_lossy(),
            "--noEmit",
            "-p",
            &root.join("tsconfig.json").to_string_lossy(),
        ],
        &[],
        &root,
    )
}

/// Everything `cargo xtask test` needs; browser tools only when `browser`.
pub fn ensure_native_tools(browser: bool) -> Result<(), String> {
    ensure_debian_packages(browser)?;
    ensure_wasm_tools()?;
    if browser {
        ensure_threads_toolchain()?;
    }
    if browser {
        ensure_npm_tools()?;
    }
    Ok(())
}

/// A private runtime folder (silences lavapipe's warnings about XDG_RUNTIME_DIR).
fn runtime_dir() -> Result<String, String> {
    let dir = repo_root().join("target/xdg-runtime");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(dir.to_string_lossy().to_string())
}

/// Environment for native tests: GPU tests must find an adapter (they fail, not skip).
pub fn gpu_test_env() -> Result<Vec<(String, String)>, String> {
    Ok(vec![
        ("XDG_RUNTIME_DIR".into(), runtime_dir()?),
        ("CELLVAE_REQUIRE_GPU".into(), "1".into()),
    ])
}

/// Chromium flags that give headless Chromium a SwiftShader WebGPU adapter (DESIGN.md).
pub fn chromium_args(user_data_dir: &str, webgpu: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if webgpu {
        args.extend(
            [
                "--enable-unsafe-webgpu",
                "--use-angle=vulkan",
                "--enable-features=Vulkan",
                "--use-vulkan=swiftshader",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
    } else {
        args.push("--disable-gpu".into());
    }
    args.push(format!("--user-data-dir={user_data_dir}"));
    args
}

/// Environment for `cargo test --target wasm32-unknown-unknown`: wasm-bindgen-test-runner
/// drives Debian's chromedriver with the WebGPU flags from a generated webdriver.json.
pub fn wasm_test_env() -> Result<Vec<(String, String)>, String> {
    let dir = repo_root().join("target/wasm-test");
    let profile = dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile)
        .map_err(|e| format!("cannot create {}: {e}", profile.display()))?;
    let args = chromium_args(&profile.to_string_lossy(), true);
    let quoted: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    let json = format!(
        "{{\"goog:chromeOptions\": {{\"binary\": \"/usr/bin/chromium\", \"args\": [{}]}}}}\n",
        quoted.join(", ")
    );
    let path = dir.join("webdriver.json");
    std::fs::write(&path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(vec![
        ("CHROMEDRIVER".into(), "/usr/bin/chromedriver".into()),
        (
            "WASM_BINDGEN_TEST_WEBDRIVER_JSON".into(),
            path.to_string_lossy().to_string(),
        ),
        ("WASM_BINDGEN_TEST_TIMEOUT".into(), "300".into()),
        ("XDG_RUNTIME_DIR".into(), runtime_dir()?),
    ])
}

/// Builds the wasm core (release) and its JS bindings into `www/pkg` (with the TypeScript
/// declarations `cellvae.d.ts`, which the type check reads).
pub fn build_web(install: bool) -> Result<PathBuf, String> {
    if install {
        ensure_wasm_tools()?;
        ensure_threads_toolchain()?;
    }
    cargo(
        &[
            "build",
            "--lib",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--no-default-features",
        ],
        &[],
    )?;
    let root = repo_root();
    let wasm = root.join("target/wasm32-unknown-unknown/release/cellvae.wasm");
    let out = root.join("www/pkg");
    run(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--out-dir",
            &out.to_string_lossy(),
            &wasm.to_string_lossy(),
        ],
        &[],
        &root,
    )?;
    build_web_threads(&root)?;
    Ok(out)
}

/// The pinned nightly that builds the page's threaded core: wasm atomics need the
/// standard library rebuilt with them (`-Z build-std`), which only nightly does. Pinned
/// so that a fresh machine builds what was tested; `rust-src` is what build-std reads.
pub const THREADS_TOOLCHAIN: &str = "nightly-2026-05-20";
/// The threaded core's code generation: shared memory (atomics, bulk memory, mutable
/// globals), SIMD128 as in the single-threaded build, and a memory maximum (shared
/// memory must declare one: 4 GiB, wasm32's whole space).
const THREADS_RUSTFLAGS: &str =
    "-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128 \
     -C link-arg=--max-memory=4294967296";

/// The threaded core's link: its memory shared and imported (wasm-bindgen then makes it
/// a `SharedArrayBuffer` the pool's workers receive) and the thread-local storage symbols
/// wasm-bindgen initialises in each worker. Given to the last crate only (`cargo rustc`),
/// so that changing them rebuilds no dependency.
const THREADS_LINK_ARGS: &[&str] = &[
    "-C",
    "link-arg=--shared-memory",
    "-C",
    "link-arg=--import-memory",
    "-C",
    "link-arg=--export=__wasm_init_tls",
    "-C",
    "link-arg=--export=__tls_size",
    "-C",
    "link-arg=--export=__tls_align",
    "-C",
    "link-arg=--export=__tls_base",
];

/// [`THREADS_TOOLCHAIN`] with `rust-src`, installed when missing (about a minute, once).
fn ensure_threads_toolchain() -> Result<(), String> {
    let sysroot = output(
        "rustup",
        &["run", THREADS_TOOLCHAIN, "rustc", "--print", "sysroot"],
    )
    .unwrap_or_default();
    let std_src = Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/std");
    if sysroot.trim().is_empty() || !std_src.exists() {
        eprintln!(
            "xtask: installing Rust {THREADS_TOOLCHAIN} with rust-src (the page's threaded \
             build rebuilds std with atomics; about a minute, once)"
        );
        run(
            "rustup",
            &[
                "toolchain",
                "install",
                THREADS_TOOLCHAIN,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ],
            &[],
            &repo_root(),
        )?;
    }
    Ok(())
}

/// The threaded core (feature `threads`, [`THREADS_TOOLCHAIN`], its own target dir so the
/// stable builds are never invalidated) and its bindings into `www/pkg-threads`.
fn build_web_threads(root: &Path) -> Result<(), String> {
    let target = root.join("target/threads");
    let args = [
        "run",
        THREADS_TOOLCHAIN,
        "cargo",
        "rustc",
        "--lib",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "--no-default-features",
        "--features",
        "threads",
        "-Z",
        "build-std=panic_abort,std",
        "--",
    ];
    eprintln!(
        "$ rustup {} {} (RUSTFLAGS: {THREADS_RUSTFLAGS})",
        args.join(" "),
        THREADS_LINK_ARGS.join(" ")
    );
    let status = Command::new("rustup")
        .args(args)
        .args(THREADS_LINK_ARGS)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env("RUSTFLAGS", THREADS_RUSTFLAGS)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot start rustup: {e}"))?;
    if !status.success() {
        return Err(format!("the threaded wasm build failed ({status})"));
    }
    let wasm = target.join("wasm32-unknown-unknown/release/cellvae.wasm");
    let out = root.join("www/pkg-threads");
    run(
        "wasm-bindgen",
        &[
            "--target",
            "web",
            "--out-dir",
            &out.to_string_lossy(),
            &wasm.to_string_lossy(),
        ],
        &[],
        root,
    )
}

/// The nightly toolchain (minimal profile) and cargo-fuzz for the fuzz smoke step;
/// each is installed only when missing, and the step says what it installs.
pub fn ensure_fuzz_tools() -> Result<(), String> {
    let toolchains = output("rustup", &["toolchain", "list"]).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        eprintln!(
            "xtask: installing the nightly Rust toolchain (minimal profile; cargo fuzz needs it)"
        );
        run(
            "rustup",
            &["toolchain", "install", "nightly", "--profile", "minimal"],
            &[],
            &repo_root(),
        )?;
    }
    if output("cargo-fuzz", &["--version"]).is_none() {
        eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked, about 2 minutes, once)");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        run(
            &cargo,
            &["install", "cargo-fuzz", "--locked"],
            &[],
            &repo_root(),
        )?;
    }
    Ok(())
}
