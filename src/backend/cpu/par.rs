//! Rows of a kernel split over threads (natively, and in the page's threaded build,
//! feature `threads`, on [`super::pool`]'s kept workers; in the single-threaded wasm32
//! build one thread), so that results
//! do not depend on the number of threads: each output element is computed by one thread
//! in the order the serial loop uses, and sums across rows are left to the caller, made
//! in row order after the parallel part (`counts::drive` and its likelihoods), or split
//! by output element instead (`linear::backward_sparse_weights`, the blocks of
//! `gemm`). `CELLVAE_THREADS` sets the number of threads (default: the machine's
//! cores, at most 8).

use std::ops::Range;

/// The number of threads the kernels use.
pub fn threads() -> usize {
    #[cfg(all(target_arch = "wasm32", feature = "threads"))]
    {
        // The page's threaded build: the Web Workers of the pool the page started
        // (`initThreadPool`, each hosting one of [`super::pool`]'s workers) and the
        // engine's worker, which calls the kernels and takes jobs too.
        (rayon::current_num_threads() + 1).clamp(1, 8)
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    {
        1
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *N.get_or_init(|| {
            std::env::var("CELLVAE_THREADS")
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .clamp(1, 8)
        })
    }
}

/// Work (in element operations) below which a kernel stays on one thread: starting a
/// thread costs about as much as this.
const MIN_WORK_PER_THREAD: usize = 1 << 16;

/// `0..n` in at most [`threads`] contiguous ranges of near-equal length, fewer when the
/// `work` of all `n` items is small.
pub fn ranges(n: usize, work: usize) -> Vec<Range<usize>> {
    even(n, threads().min(work / MIN_WORK_PER_THREAD).min(n))
}

/// `0..n` in `parts` (at least 1) contiguous ranges of near-equal length.
pub fn even(n: usize, parts: usize) -> Vec<Range<usize>> {
    let parts = parts.max(1);
    (0..parts)
        .map(|p| (n * p / parts)..(n * (p + 1) / parts))
        .collect()
}

/// Splits row-major `s` (rows of `row_len`) at the row ranges `parts` (contiguous, from 0).
pub fn split_rows<'a, T>(
    mut s: &'a mut [T],
    parts: &[Range<usize>],
    row_len: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(parts.len());
    for r in parts {
        let n = (r.len() * row_len).min(s.len());
        let (a, rest) = std::mem::take(&mut s).split_at_mut(n);
        out.push(a);
        s = rest;
    }
    out
}

/// Runs the jobs and returns when all have finished: on the kept workers of
/// [`super::pool`] and this thread together (natively, and in the page's threaded build,
/// feature `threads`); in the single-threaded wasm32 build one after the other.
pub fn run<F: FnOnce() + Send>(jobs: Vec<F>) {
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    jobs.into_iter().for_each(|j| j());
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    super::pool::run(jobs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_row_once() {
        for n in [0usize, 1, 2, 3, 7, 128, 1000] {
            for work in [0usize, 1 << 10, 1 << 20, 1 << 30] {
                let r = ranges(n, work);
                assert!(!r.is_empty() && r.len() <= threads().max(1));
                assert_eq!(r[0].start, 0);
                assert_eq!(r.last().map(|x| x.end), Some(n));
                assert!(r.windows(2).all(|w| w[0].end == w[1].start));
            }
        }
    }

    #[test]
    fn split_rows_gives_each_range_its_rows() {
        let mut v: Vec<u32> = (0..12).collect();
        let parts = [0..1, 1..4, 4..6];
        let s = split_rows(&mut v, &parts, 2);
        assert_eq!(s.iter().map(|x| x.len()).collect::<Vec<_>>(), [2, 6, 4]);
        assert_eq!(s[1][0], 2);
    }
}
