//! Matrix products for [`super::linear`]: `matrixmultiply::sgemm` (cache-blocked SIMD,
//! one thread per call; on x86-64 with AVX-512 [`super::gemm_avx512`], which gives its
//! bits without packing A; in wasm32 with SIMD128 [`super::gemm_simd128`]) on blocks of
//! the output split over the kernels' threads ([`super::par`]).
//!
//! matrixmultiply's own threads split only its row loop and synchronise once per block
//! of 256 along k, which left the thin products of a training step (128 x 128 x 4,000
//! in every arrangement) on one core. Here the output is split instead, along its
//! longer side: each element is still the one sgemm computes (the same blocking along
//! k, the same kernel), so the results do not depend on the split nor on the number of
//! threads. When both sides are short and k is long, k is cut into fixed chunks (by
//! the shape alone, never by the thread count), each chunk's product is made alone and
//! the chunks are added in order.
#![allow(clippy::too_many_arguments)] // BLAS-style signature

use super::par;
use std::cell::RefCell;

/// Output sides at least this long are split over threads.
const SPLIT_MIN: usize = 256;
/// k is cut into chunks of this length when neither output side reaches
/// [`SPLIT_MIN`] and k is at least twice it.
const K_CHUNK: usize = 1024;
/// Split points are multiples of this (16 lanes: a split never cuts an AVX-512 vector).
const ALIGN: usize = 16;

/// A pointer into the output that crosses to the jobs; each writes its own block.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: the jobs of one product write disjoint blocks of the output (rows or
// columns), and the output outlives them (`par::run` joins before returning).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

thread_local! {
    /// The k-chunks' partial products (reused between calls).
    static PARTIALS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// One single-threaded sgemm: C (m x n at `c`, row stride `ldc`) = A B + beta C.
///
/// # Safety
/// A, B and C must cover every element the strides reach, and C must not alias A or B
/// nor be written by anything else meanwhile.
unsafe fn one(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (usize, usize),
    b: *const f32,
    (rsb, csb): (usize, usize),
    beta: f32,
    c: *mut f32,
    ldc: usize,
) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return super::gemm_simd128::sgemm(m, k, n, a, (rsa, csa), b, (rsb, csb), beta, c, ldc);
    #[cfg(target_arch = "x86_64")]
    if k > 0 && super::gemm_avx512::takes((rsa, csa), (rsb, csb)) && super::fastmath::avx512() {
        // SAFETY: the CPU has AVX-512 (checked just above); the rest is this function's.
        return super::gemm_avx512::sgemm(m, k, n, a, (rsa, csa), b, (rsb, csb), beta, c, ldc);
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    matrixmultiply::sgemm(
        m,
        k,
        n,
        1.0,
        a,
        rsa as isize,
        csa as isize,
        b,
        rsb as isize,
        csb as isize,
        beta,
        c,
        ldc as isize,
        1,
    );
}

/// `0..len` in `parts` ranges whose starts are multiples of [`ALIGN`].
fn aligned(len: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let blocks = len.div_ceil(ALIGN);
    par::even(blocks, parts)
        .into_iter()
        .map(|r| (r.start * ALIGN).min(len)..(r.end * ALIGN).min(len))
        .filter(|r| !r.is_empty())
        .collect()
}

/// What C holds before the product is added: `Beta(beta)` C, or `Rows(bias)`: `bias`
/// (n values) in every row. With `Rows`, where the output is split over threads, each
/// thread sets its own block just before its product (in its cache, not 2 MB copied on
/// one thread before the product starts); with k in chunks (both sides short, C small)
/// the caller sets C first. The same bits as setting the rows, then beta 1.
#[derive(Clone, Copy)]
pub(super) enum Start<'a> {
    Beta(f32),
    Rows(&'a [f32]),
}

/// Sets columns `cols` of rows `rows` of C (row stride `ldc`) to `bias[cols]`.
///
/// # Safety
/// C must cover those elements, and no one else may touch them meanwhile.
unsafe fn set_rows(
    c: *mut f32,
    ldc: usize,
    rows: std::ops::Range<usize>,
    bias: &[f32],
    cols: std::ops::Range<usize>,
) {
    let src = &bias[cols.clone()];
    for i in rows {
        std::ptr::copy_nonoverlapping(src.as_ptr(), c.add(i * ldc + cols.start), src.len());
    }
}

/// C (m x n, row stride `ldc`) = A B + `start` (see [`Start`]), with A (m x k) and B
/// (k x n) given by element strides. Checks that every slice covers its last element.
pub(super) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    start: Start<'_>,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        c.len() >= (m - 1) * ldc + n && ldc >= n,
        "gemm: output too short"
    );
    if let Start::Rows(bias) = start {
        assert!(bias.len() >= n, "gemm: bias too short");
    }
    if k > 0 {
        assert!(
            a.len() > (m - 1) * sa.0 + (k - 1) * sa.1,
            "gemm: A too short"
        );
        assert!(
            b.len() > (k - 1) * sb.0 + (n - 1) * sb.1,
            "gemm: B too short"
        );
    }
    let beta = match start {
        Start::Beta(beta) => beta,
        Start::Rows(_) => 1.0,
    };
    if m.max(n) < SPLIT_MIN && k >= 2 * K_CHUNK {
        if let Start::Rows(bias) = start {
            // SAFETY: the assert above covers C's m rows of n.
            unsafe { set_rows(c.as_mut_ptr(), ldc, 0..m, bias, 0..n) };
        }
        return k_chunks(m, k, n, a, sa, b, sb, beta, c, ldc);
    }
    let (a_ptr, b_ptr, out) = (
        a.as_ptr() as usize,
        b.as_ptr() as usize,
        OutPtr(c.as_mut_ptr()),
    );
    let by_rows = m >= n;
    let side = if by_rows { m } else { n };
    let threads = par::ranges(side.div_ceil(ALIGN), m * n * k / 16).len();
    let jobs: Vec<_> = aligned(side, threads)
        .into_iter()
        .map(|r| {
            move || {
                let out = out;
                let (a, b) = (a_ptr as *const f32, b_ptr as *const f32);
                // SAFETY: the asserts above cover A, B and C; rows (or columns) `r` of C
                // are this job's alone; A and B are only read.
                unsafe {
                    if by_rows {
                        if let Start::Rows(bias) = start {
                            set_rows(out.0, ldc, r.clone(), bias, 0..n);
                        }
                        let a = a.add(r.start * sa.0);
                        let c = out.0.add(r.start * ldc);
                        one(r.len(), k, n, a, sa, b, sb, beta, c, ldc);
                    } else {
                        if let Start::Rows(bias) = start {
                            set_rows(out.0, ldc, 0..m, bias, r.clone());
                        }
                        let b = b.add(r.start * sb.1);
                        let c = out.0.add(r.start);
                        one(m, k, r.len(), a, sa, b, sb, beta, c, ldc);
                    }
                }
            }
        })
        .collect();
    par::run(jobs);
}

/// [`sgemm`] with k cut into chunks of [`K_CHUNK`]: chunk 0 into C (with `beta`), the
/// others into partial products over threads, then added to C in order.
fn k_chunks(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    sa: (usize, usize),
    b: &[f32],
    sb: (usize, usize),
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let chunks = k.div_ceil(K_CHUNK);
    let kr = |i: usize| i * k / chunks..(i + 1) * k / chunks;
    let mn = m * n;
    PARTIALS.with(|p| {
        let mut partials = p.borrow_mut();
        if partials.len() < (chunks - 1) * mn {
            partials.resize((chunks - 1) * mn, 0.0);
        }
        let (a_ptr, b_ptr) = (a.as_ptr() as usize, b.as_ptr() as usize);
        let out = OutPtr(c.as_mut_ptr());
        let parts = OutPtr(partials.as_mut_ptr());
        let jobs: Vec<_> = par::even(chunks, par::ranges(chunks, m * n * k / 16).len())
            .into_iter()
            .map(|idx| {
                move || {
                    let (out, parts) = (out, parts);
                    let (a, b) = (a_ptr as *const f32, b_ptr as *const f32);
                    for i in idx {
                        let r = kr(i);
                        // SAFETY: the asserts in `sgemm` cover A, B and C, `partials`
                        // holds (chunks - 1) m x n blocks; chunk i writes C (i = 0) or
                        // its own block, nothing else.
                        unsafe {
                            let (a, b) = (a.add(r.start * sa.1), b.add(r.start * sb.0));
                            if i == 0 {
                                one(m, r.len(), n, a, sa, b, sb, beta, out.0, ldc);
                            } else {
                                let c = parts.0.add((i - 1) * mn);
                                one(m, r.len(), n, a, sa, b, sb, 0.0, c, n);
                            }
                        }
                    }
                }
            })
            .collect();
        par::run(jobs);
        for part in partials[..(chunks - 1) * mn].chunks_exact(mn) {
            add_rows(c, part, n, ldc);
        }
    });
}

/// C (rows of `n`, row stride `ldc`) += `part` (rows of `n`, contiguous).
#[inline(always)]
fn add_rows_body(c: &mut [f32], part: &[f32], n: usize, ldc: usize) {
    for (row, prow) in c.chunks_mut(ldc).zip(part.chunks_exact(n)) {
        for (o, &v) in row[..n].iter_mut().zip(prow) {
            *o += v;
        }
    }
}

super::fastmath::wide_kernel!(
    /// [`add_rows_body`] compiled for the baseline, AVX2 and AVX-512.
    fn add_rows(c: &mut [f32], part: &[f32], n: usize, ldc: usize) -> () => add_rows_body
);

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + salt) * 7919) % 1013) as f32 / 1013.0 - 0.5)
            .collect()
    }

    /// Every split of the output gives the bits of one whole call, and chunked k is
    /// within rounding of the f64 product.
    #[test]
    fn splits_give_the_same_bits() {
        for &(m, k, n) in &[(300, 70, 37), (37, 70, 300), (128, 2500, 96), (1, 5, 1)] {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let mut whole = values(m * n, 3);
            let mut want = whole.clone();
            unsafe {
                one(
                    m,
                    k,
                    n,
                    a.as_ptr(),
                    (k, 1),
                    b.as_ptr(),
                    (n, 1),
                    0.5,
                    whole.as_mut_ptr(),
                    n,
                )
            };
            sgemm(
                m,
                k,
                n,
                &a,
                (k, 1),
                &b,
                (n, 1),
                Start::Beta(0.5),
                &mut want,
                n,
            );
            if m.max(n) >= SPLIT_MIN || k < 2 * K_CHUNK {
                assert_eq!(whole, want, "{m} x {k} x {n}");
            }
            for (i, w) in want.iter().enumerate() {
                let (r, col) = (i / n, i % n);
                let exact: f64 = 0.5 * f64::from(values(m * n, 3)[i])
                    + (0..k)
                        .map(|j| f64::from(a[r * k + j]) * f64::from(b[j * n + col]))
                        .sum::<f64>();
                assert!(
                    (f64::from(*w) - exact).abs() < 1e-4,
                    "{m} x {k} x {n} at {i}"
                );
            }
            // Blocks by hand, as threads would take them.
            for parts in [2, 3, 5] {
                let mut got = values(m * n, 3);
                let out = got.as_mut_ptr();
                for r in aligned(m, parts) {
                    unsafe {
                        one(
                            r.len(),
                            k,
                            n,
                            a.as_ptr().add(r.start * k),
                            (k, 1),
                            b.as_ptr(),
                            (n, 1),
                            0.5,
                            out.add(r.start * n),
                            n,
                        );
                    }
                }
                assert_eq!(got, whole, "rows in {parts}");
                let mut got = values(m * n, 3);
                let out = got.as_mut_ptr();
                for r in aligned(n, parts) {
                    unsafe {
                        one(
                            m,
                            k,
                            r.len(),
                            a.as_ptr(),
                            (k, 1),
                            b.as_ptr().add(r.start),
                            (n, 1),
                            0.5,
                            out.add(r.start),
                            n,
                        );
                    }
                }
                assert_eq!(got, whole, "columns in {parts}");
            }
        }
    }

    /// The product `one` takes (on x86-64 with AVX-512: `gemm_avx512`, which packs no
    /// A) gives matrixmultiply's own bits: tiles cut at every edge, k across blocks of
    /// 256, A and B in both layouts (B's rows short, long, or its columns contiguous),
    /// beta 0 (C never read: NaN there stays unseen), 1 and 0.5, C with a longer row.
    #[test]
    fn the_products_give_matrixmultiplys_bits() {
        let shapes = [
            (1, 1, 1),
            (7, 300, 70),
            (128, 1000, 128),
            (13, 513, 200),
            (300, 70, 37),
            (6, 256, 64),
            (5, 257, 65),
            (64, 128, 700),
            (700, 300, 20),
        ];
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        // Comparisons the AVX-512 kernel made (none where the CPU lacks it: then `one`
        // is matrixmultiply itself and this test checks only the dispatch).
        let mut ours = 0;
        for &(m, k, n) in &shapes {
            let a = values(m * k, 1);
            for (sa, sb, ldb_len) in [
                ((k, 1), (n, 1), k * n),
                ((1, m), (n, 1), k * n),
                ((k, 1), (1, k), k * n),
                ((1, m), (n + 600, 1), k * (n + 600)),
            ] {
                let b = values(ldb_len, 2);
                for beta in [0.0f32, 1.0, 0.5] {
                    let ldc = n + 3;
                    let mut start = values(m * ldc, 3);
                    if beta == 0.0 {
                        start[0] = f32::NAN;
                    }
                    let (mut got, mut want) = (start.clone(), start);
                    unsafe {
                        one(
                            m,
                            k,
                            n,
                            a.as_ptr(),
                            sa,
                            b.as_ptr(),
                            sb,
                            beta,
                            got.as_mut_ptr(),
                            ldc,
                        );
                        matrixmultiply::sgemm(
                            m,
                            k,
                            n,
                            1.0,
                            a.as_ptr(),
                            sa.0 as isize,
                            sa.1 as isize,
                            b.as_ptr(),
                            sb.0 as isize,
                            sb.1 as isize,
                            beta,
                            want.as_mut_ptr(),
                            ldc as isize,
                            1,
                        );
                    }
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{m} x {k} x {n}, A {sa:?}, B {sb:?}, beta {beta}"
                    );
                    #[cfg(target_arch = "x86_64")]
                    if super::super::fastmath::avx512() && super::super::gemm_avx512::takes(sa, sb)
                    {
                        ours += 1;
                    }
                }
            }
        }
        // At least the three layouts with B row-major, each beta, for every shape whose
        // A has at most 512 rows (the 700-row one's columns are too long for it).
        #[cfg(target_arch = "x86_64")]
        if super::super::fastmath::avx512() {
            let short = shapes.iter().filter(|s| s.0 <= 512).count();
            assert!(ours >= 3 * 3 * short, "the kernel took {ours} products");
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = ours;
    }

    /// C started at the bias rows inside the threads' blocks is C set to them first,
    /// then the product added with beta 1: by rows, by columns and with k in chunks.
    #[test]
    fn bias_rows_give_the_bits_of_rows_set_first() {
        for &(m, k, n) in &[(300, 70, 37), (37, 70, 300), (128, 2500, 96), (3, 5, 2)] {
            let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(n, 4));
            let ldc = n + 3;
            let mut want = values(m * ldc, 3);
            for row in want.chunks_exact_mut(ldc) {
                row[..n].copy_from_slice(&bias);
            }
            sgemm(
                m,
                k,
                n,
                &a,
                (k, 1),
                &b,
                (n, 1),
                Start::Beta(1.0),
                &mut want,
                ldc,
            );
            let mut got = values(m * ldc, 3);
            sgemm(
                m,
                k,
                n,
                &a,
                (k, 1),
                &b,
                (n, 1),
                Start::Rows(&bias),
                &mut got,
                ldc,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "{m} x {k} x {n}");
            // The partial sums of k's chunks added wide: the baseline's bits.
            let (mut wide, mut base, part) = (want.clone(), want.clone(), values(m * n, 5));
            add_rows(&mut wide, &part, n, ldc);
            add_rows_body(&mut base, &part, n, ldc);
            assert_eq!(bits(&wide), bits(&base));
        }
    }
}
