//! Peak heap at each stage of the page's loading path, natively (the same allocations as
//! the wasm core's, `usize` aside): the file's bytes, the read matrix, the bytes kept in
//! the browser, a new session. `cargo run --release --example load_memory -- FILE`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let n = NOW.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(n, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        NOW.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // Counted as the allocator sees it: both blocks live during the copy.
        let n = NOW.fetch_add(new, Relaxed) + new;
        PEAK.fetch_max(n, Relaxed);
        let q = unsafe { System.realloc(p, l, new) };
        NOW.fetch_sub(l.size(), Relaxed);
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fn mb(n: usize) -> f64 {
    n as f64 / (1u64 << 20) as f64
}

fn stage(what: &str) {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let t = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64();
    println!(
        "{what:<28} now {:>8.1} MB   peak {:>8.1} MB   at {t:>6.2} s",
        mb(NOW.load(Relaxed)),
        mb(PEAK.load(Relaxed))
    );
    PEAK.store(NOW.load(Relaxed), Relaxed);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("give a file")?;
    stage("start");
    let bytes = std::fs::read(&path)?;
    stage("file read");
    let file = cellvae::InputFile::new(path, bytes);
    let m = cellvae::data::read_inputs(&[file], None, &cellvae::ReadOptions::default())?;
    stage("read (file dropped)");
    let kept = cellvae::session::codec::encode_matrix(&m);
    drop(kept);
    stage("encoded to keep");
    let opts = cellvae::session::SessionOptions::default();
    let prep_opts = opts.prepare_options(&m, cellvae::session::Words::Page)?;
    let prep = cellvae::pipeline::prepare(&m, &prep_opts)?;
    stage("prepared (held)");
    drop(prep);
    stage("prepared (dropped)");
    let s = cellvae::session::Session::new(&m, &opts, || 0.0)?;
    stage("session made");
    drop(s);
    Ok(())
}
