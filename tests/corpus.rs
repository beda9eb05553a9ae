//! The bad-input corpus (`tests/corpus/`, listed with what is wrong in each file in its
//! README.md and `expected.tsv`) through the command line: `cellvae inspect` on every
//! entry exits as expected, names the file, the place and the problem in the words
//! `expected.tsv` gives, never panics, and ends within a time limit. The gzip bombs are
//! built here (a bomb past the 4 GiB native limit is 4 MB): refused as too large, with
//! the limit stated, before memory is set aside for them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// One line of `expected.tsv`.
struct Case {
    file: String,
    ok: bool,
    words: Vec<String>,
}

fn cases() -> Vec<Case> {
    let table = std::fs::read_to_string(Path::new(CORPUS).join("expected.tsv")).unwrap();
    table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "expected.tsv: {l:?}");
            assert!(f[1] == "ok" || f[1] == "error", "expected.tsv: {l:?}");
            Case {
                file: f[0].to_string(),
                ok: f[1] == "ok",
                words: f[3].split(" | ").map(str::to_string).collect(),
            }
        })
        .collect()
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    seconds: f64,
    /// Peak resident memory of the child (kB), from its /proc status while it ran.
    peak_kb: u64,
}

/// The built-in demo's counts, which a metadata table of the corpus (`obs_*`) is given with.
const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/demo/pbmc68k_reduced_700");

/// `cellvae inspect <path>` (`obs_*`: `cellvae inspect <the demo> --obs <path>`), killed
/// after `limit`.
fn inspect(path: &Path, limit: Duration) -> Outcome {
    let start = Instant::now();
    let is_obs = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("obs_"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellvae"));
    cmd.arg("inspect");
    if is_obs {
        for f in ["matrix.mtx.gz", "features.tsv", "barcodes.tsv"] {
            cmd.arg(Path::new(DEMO).join(f));
        }
        cmd.arg("--obs");
    }
    let mut child = cmd
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = s
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{}: still running after {limit:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        seconds: start.elapsed().as_secs_f64(),
        peak_kb,
    }
}

#[test]
fn every_corpus_file_is_refused_or_read_as_expected_by_the_command_line() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let path = Path::new(CORPUS).join(&case.file);
        assert!(path.exists(), "{} is listed but missing", path.display());
        let out = inspect(&path, Duration::from_secs(60));
        let both = format!("{}{}", out.stdout, out.stderr);
        let mut wrong = Vec::new();
        if both.contains("panicked") || out.code == Some(101) {
            wrong.push("panicked".to_string());
        }
        if case.ok {
            if out.code != Some(0) {
                wrong.push(format!("exit {:?}, expected 0", out.code));
            }
        } else {
            if out.code != Some(1) {
                wrong.push(format!("exit {:?}, expected 1", out.code));
            }
            // One line, starting with the file the user gave (a folder's error names
            // the file inside it).
            let line = out.stderr.trim_end();
            if line.lines().count() != 1 {
                wrong.push("stderr is not one line".into());
            }
            let named = format!("error: {}", path.display());
            if !line.starts_with(&named) {
                wrong.push(format!("stderr does not start with {named:?}"));
            }
        }
        for w in &case.words {
            if !both.contains(w.as_str()) {
                wrong.push(format!("missing {w:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n  stdout: {}\n  stderr: {}",
                case.file,
                wrong.join("; "),
                out.stdout.trim(),
                out.stderr.trim()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A gzip stream of `expanded` bytes of `pattern` repeated, built from one sync-flushed
/// raw deflate chunk repeated (each chunk byte-aligned and self-contained), so a 4 GiB
/// expansion is written in a moment. The trailer's CRC is left zero: a reader that
/// enforces its limit never reaches it.
fn gzip_bomb(prefix: &[u8], pattern: &[u8], expanded: u64) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    const CHUNK: usize = 1 << 20;
    let deflate = |data: &[u8], flush: FlushCompress| {
        let mut c = Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() / 100 + 1024);
        c.compress_vec(data, &mut out, flush).unwrap();
        assert_eq!(c.total_in() as usize, data.len());
        out
    };
    let chunk: Vec<u8> = pattern.iter().copied().cycle().take(CHUNK).collect();
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend(deflate(prefix, FlushCompress::Sync));
    let body = deflate(&chunk, FlushCompress::Sync);
    let n = expanded.div_ceil(CHUNK as u64);
    for _ in 0..n {
        gz.extend_from_slice(&body);
    }
    gz.extend_from_slice(&[0x03, 0x00]); // a final empty fixed-Huffman block
    gz.extend_from_slice(&0u32.to_le_bytes());
    let isize = (prefix.len() as u64 + n * CHUNK as u64) as u32;
    gz.extend_from_slice(&isize.to_le_bytes());
    gz
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cellvae-corpus-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn a_gzip_bomb_is_refused_as_too_large_with_the_limit_before_memory_is_set_aside() {
    let dir = temp_dir("bomb");
    // 4 GiB + 1 MiB of "c,0\n" rows under a header: 4.2 MB on disk.
    let bomb = gzip_bomb(b"cell,G0\n", b"c,0\n", (4 << 30) + (1 << 20));
    assert!(bomb.len() < 6 << 20, "{} bytes", bomb.len());
    let path = dir.join("bomb.csv.gz");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bomb)
        .unwrap();
    let out = inspect(&path, Duration::from_secs(240));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let e = out.stderr.trim();
    assert!(e.starts_with(&format!("error: {}:", path.display())), "{e}");
    for w in ["expands to more than 4 GiB", "not damaged", "at most 4 GiB"] {
        assert!(e.contains(w), "{w:?} missing: {e}");
    }
    // Counted, not kept: the process never holds the expansion.
    assert!(
        out.peak_kb < 512 << 10,
        "peak memory {} MiB while refusing the bomb",
        out.peak_kb >> 10
    );
    eprintln!(
        "bomb: {} bytes refused in {:.1} s, peak {} MiB",
        bomb.len(),
        out.seconds,
        out.peak_kb >> 10
    );
}

#[test]
fn a_small_gzip_bomb_under_the_limit_is_read() {
    // The same construction under the limit is a valid file: the builder is right.
    let dir = temp_dir("small");
    let rows: Vec<u8> = b"c,1\n".repeat(1 << 18);
    let mut gz = gzip_bomb(b"cell,G0\n", b"c,1\n", 1 << 20);
    // A real trailer this time (the reader checks the CRC at the end).
    let mut crc = flate2::Crc::new();
    crc.update(b"cell,G0\n");
    crc.update(&rows);
    let n = gz.len();
    gz[n - 8..n - 4].copy_from_slice(&crc.sum().to_le_bytes());
    let path = dir.join("small.csv.gz");
    std::fs::write(&path, &gz).unwrap();
    let out = inspect(&path, Duration::from_secs(120));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("262144"), "{}", out.stdout);
}
