//! A small static file server for the page (std only, loopback only) and the
//! Playwright browser tests that run against it.

use crate::setup::{build_web, repo_root, run};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// The directives a `<meta>` policy cannot carry, added to the header.
pub const HEADER_ONLY: &str = "frame-ancestors 'none'";

/// The page's Content Security Policy, from one source: the
/// `<meta http-equiv="Content-Security-Policy">` of `index.html` (so the page keeps it on
/// any static host), plus [`HEADER_ONLY`] for the header this server sends.
pub fn csp_header(root: &Path) -> Result<String, String> {
    let html = std::fs::read_to_string(root.join("index.html"))
        .map_err(|e| format!("cannot read index.html: {e}"))?;
    let meta = meta_policy(&html).ok_or(
        "index.html has no <meta http-equiv=\"Content-Security-Policy\" content=\"...\">: \
         the page must carry its own policy",
    )?;
    Ok(format!("{meta}; {HEADER_ONLY}"))
}

/// The `content` of the page's CSP `<meta>` element, if it has one.
pub fn meta_policy(html: &str) -> Option<String> {
    let at = html.find("http-equiv=\"Content-Security-Policy\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_start + html[tag_start..].find('>')?];
    let content = tag.find("content=\"")? + "content=\"".len();
    let len = tag[content..].find('"')?;
    let policy = tag[content..content + len]
        .trim()
        .trim_end_matches(';')
        .trim();
    (!policy.is_empty()).then(|| policy.to_string())
}

/// `cargo xtask serve`.
pub fn serve_command() -> Result<(), String> {
    build_web(true)?;
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT={p} is not a port number"))?,
        Err(_) => 8080,
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        format!("cannot listen on 127.0.0.1:{port}: {e} (set PORT to another port)")
    })?;
    let root = repo_root();
    let csp = csp_header(&root)?;
    println!("cellvae is served at http://127.0.0.1:{port}/  (Ctrl-C stops)");
    serve_forever(listener, root, csp);
    Ok(())
}

/// Serves files under `root` with the policy `csp` until the process ends.
pub fn serve_forever(listener: TcpListener, root: PathBuf, csp: String) {
    let csp = std::sync::Arc::new(csp);
    for stream in listener.incoming().flatten() {
        let root = root.clone();
        let csp = csp.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &root, &csp);
        });
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "tsv" | "txt" | "csv" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn handle(stream: TcpStream, root: &Path, csp: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut out,
            csp,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
            method == "HEAD",
        );
    }
    let relative = if path == "/" {
        "index.html"
    } else {
        path.trim_start_matches('/')
    };
    let rel_path = Path::new(relative);
    let safe = rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    let allowed = relative == "index.html" || relative.starts_with("www/");
    let file = root.join(rel_path);
    match (safe && allowed).then(|| std::fs::read(&file)).transpose() {
        Ok(Some(body)) => respond(
            &mut out,
            csp,
            "200 OK",
            content_type(&file),
            &body,
            method == "HEAD",
        ),
        _ => respond(
            &mut out,
            csp,
            "404 Not Found",
            "text/plain",
            b"not found\n",
            method == "HEAD",
        ),
    }
}

/// One response. Every one is cross-origin isolated (COOP same-origin, COEP require-corp):
/// the page may then use SharedArrayBuffer, which the threaded wasm core needs
/// (www/wasm.js); on a host that does not send these, the page runs single-threaded.
fn respond(
    out: &mut TcpStream,
    csp: &str,
    status: &str,
    ctype: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: {csp}\r\nX-Content-Type-Options: nosniff\r\n\
         Cross-Origin-Opener-Policy: same-origin\r\n\
         Cross-Origin-Embedder-Policy: require-corp\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(header.as_bytes())?;
    if !head {
        out.write_all(body)?;
    }
    out.flush()
}

/// Serves the page (built by `build_web` before) on a free loopback port and runs the
/// Playwright tests (`node --test tests/e2e/`) against it, with WebGPU on and off.
pub fn run_browser_tests() -> Result<(), String> {
    let root = repo_root();
    if !root.join("www/pkg/cellvae_bg.wasm").exists()
        || !root.join("www/pkg-threads/cellvae_bg.wasm").exists()
    {
        build_web(false)?;
    }
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("cannot listen: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let served = root.clone();
    let csp = csp_header(&root)?;
    std::thread::spawn(move || serve_forever(listener, served, csp));
    let base = format!("http://127.0.0.1:{port}/");
    let artifacts = root.join("tests/e2e/artifacts");
    std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
    // The native command line (built by the native tests before this step): the lessons
    // test compares the page's evaluation panel with `cellvae eval`.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/cellvae");
    run(
        "node",
        &["--test", "--test-concurrency=1", "tests/e2e/"],
        &[
            ("CELLVAE_BASE_URL", base.as_str()),
            ("CELLVAE_ARTIFACTS", &artifacts.to_string_lossy()),
            (
                "CELLVAE_SHARED_DATA",
                &root.join("../shared/data").to_string_lossy(),
            ),
            ("CELLVAE_BIN", &bin.to_string_lossy()),
        ],
        &root,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_pages_meta_policy_plus_frame_ancestors() {
        let csp = csp_header(&repo_root()).expect("index.html carries its policy");
        let meta =
            meta_policy(&std::fs::read_to_string(repo_root().join("index.html")).unwrap()).unwrap();
        assert_eq!(csp, format!("{meta}; frame-ancestors 'none'"));
        for d in [
            "default-src 'self'",
            "connect-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval'",
            // blob: for the threaded core's pool: wasm-bindgen-rayon starts each worker
            // from a blob of its own same-origin script (www/wasm.js).
            "worker-src 'self' blob:",
            "object-src 'none'",
        ] {
            assert!(meta.split("; ").any(|x| x == d), "{d} missing from {meta}");
        }
        assert!(!meta.contains("'unsafe-inline'") && !meta.contains("'unsafe-eval'"));
        assert!(!meta.contains("http:") && !meta.contains("https:") && !meta.contains('*'));
    }

    #[test]
    fn meta_policy_reads_the_content_attribute() {
        let html = r#"<head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'self'; connect-src 'self';"></head>"#;
        assert_eq!(
            meta_policy(html).as_deref(),
            Some("default-src 'self'; connect-src 'self'")
        );
        assert_eq!(meta_policy("<head></head>"), None);
    }
}
