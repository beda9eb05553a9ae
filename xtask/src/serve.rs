//! A small static file server for the page (std only, loopback only) and the
//! Playwright browser tests that run against it.

use crate::setup::{build_web, repo_root, run};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

/// The page's Content Security Policy: nothing leaves the machine (`connect-src 'self'`),
/// no third-party script, style or font; wasm may compile.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; \
    object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

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
    println!("cellvae is served at http://127.0.0.1:{port}/  (Ctrl-C stops)");
    serve_forever(listener, repo_root());
    Ok(())
}

/// Serves files under `root` until the process ends.
pub fn serve_forever(listener: TcpListener, root: PathBuf) {
    for stream in listener.incoming().flatten() {
        let root = root.clone();
        std::thread::spawn(move || {
            let _ = handle(stream, &root);
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

fn handle(stream: TcpStream, root: &Path) -> std::io::Result<()> {
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
            "200 OK",
            content_type(&file),
            &body,
            method == "HEAD",
        ),
        _ => respond(
            &mut out,
            "404 Not Found",
            "text/plain",
            b"not found\n",
            method == "HEAD",
        ),
    }
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    head: bool,
) -> std::io::Result<()> {
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: {CSP}\r\nX-Content-Type-Options: nosniff\r\n\
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
    if !repo_root().join("www/pkg/cellvae_bg.wasm").exists() {
        build_web(false)?;
    }
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("cannot listen: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let root = repo_root();
    let served = root.clone();
    std::thread::spawn(move || serve_forever(listener, served));
    let base = format!("http://127.0.0.1:{port}/");
    let artifacts = root.join("tests/e2e/artifacts");
    std::fs::create_dir_all(&artifacts).map_err(|e| e.to_string())?;
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
        ],
        &root,
    )
}
