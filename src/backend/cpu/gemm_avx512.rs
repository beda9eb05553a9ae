//! The native matrix product on CPUs with AVX-512: C = A B + beta C without packing A,
//! with the bits of matrixmultiply's AVX-512 kernel.
//!
//! Dimension legend: C is m x n (row stride `ldc`), A is m x k and B is k x n, both by
//! element strides (transposes are strides). A register tile is up to [`MR`] rows of C
//! by [`NR`] columns (four 16-lane vectors): for each k, one value of A per row
//! broadcast from where it lies, times a row of B's panel.
//!
//! Why: matrixmultiply packs both operands for every block. Its A packing copies 16
//! values at a time only where A's columns are contiguous; the products of a training
//! step whose A is row-major (`log1p(x) W`, `h W`, and `dy W^T`, which stays with it:
//! its B is column-major) had it copying one value at a time, and packing was 18% of
//! the products' time on the wide set (docs/SPEED.md, "Products without packing A").
//! Broadcasting A from memory needs no packing at all;
//! B's panel (k in blocks of [`KC`], [`NR`] columns) is read in place where B's rows are
//! short, and copied into a buffer otherwise. Other layouts stay with matrixmultiply
//! ([`takes`]).
//!
//! The same bits as matrixmultiply's AVX-512 kernel (`gemm`'s tests compare them): k is
//! cut into blocks of [`KC`] from 0; in a block each element's products are added in k
//! order with fused multiply-adds into a sum that starts at zero, and the block's sum
//! is added to C once: C = sum + (beta C) for the first block (the sum alone when beta
//! is 0, where C is never read), C = sum + C for the others. An element's value depends
//! only on k and its own inputs, so any split of C over threads gives the same bits.
#![allow(clippy::too_many_arguments)] // BLAS-style signature

use std::arch::x86_64::{
    __m512, __mmask16, _mm512_add_ps, _mm512_fmadd_ps, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_setzero_ps,
};
use std::cell::RefCell;

/// k per block: matrixmultiply's `S_KC`, which the bits depend on.
const KC: usize = 256;
/// Rows of a register tile.
const MR: usize = 6;
/// Columns of a register tile and of B's panel (four vectors of 16).
const NR: usize = 64;
/// B is read in place when row-major with rows at most this long (its panel's rows
/// then lie within a few pages); otherwise its panel is copied into a buffer.
const IN_PLACE_LDB: usize = 512;

thread_local! {
    /// B's panel (KC x NR, row-major), reused between calls.
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Whether [`sgemm`] is the faster way for these strides: B row-major, and A's values
/// for one k near each other (A row-major, or its columns short). Where A's columns
/// are long and contiguous, matrixmultiply's packing copies them 16 values at a time
/// and a tile's broadcasts would touch a page per k, so matrixmultiply stays.
pub(super) fn takes((rsa, csa): (usize, usize), (_, csb): (usize, usize)) -> bool {
    csb == 1 && (csa == 1 || (rsa == 1 && csa <= IN_PLACE_LDB))
}

/// C (m x n at `c`, row stride `ldc`) = A B + beta C, for k > 0 and the strides
/// [`takes`] takes.
///
/// # Safety
/// The CPU must have AVX-512 F; A, B and C must cover every element the strides reach,
/// and C must not alias A or B nor be written by anything else meanwhile.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sgemm(
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
    debug_assert!(k > 0 && takes((rsa, csa), (rsb, csb)));
    let in_place = rsb <= IN_PLACE_LDB;
    PANEL.with(|panel| {
        let mut panel = panel.borrow_mut();
        if !in_place && panel.len() < KC * NR {
            panel.resize(KC * NR, 0.0);
        }
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            let beta_k = if k0 == 0 { beta } else { 1.0 };
            let mut j0 = 0;
            while j0 < n {
                let w = NR.min(n - j0);
                let src = b.add(k0 * rsb + j0 * csb);
                let (bp, ldb) = if in_place {
                    (src, rsb)
                } else {
                    fill_panel(&mut panel[..KC * NR], src, rsb, kc, w);
                    (panel.as_ptr(), NR)
                };
                let last = lanes(w - 16 * (w.div_ceil(16) - 1));
                let mut i0 = 0;
                while i0 < m {
                    let h = MR.min(m - i0);
                    let t = Tile {
                        kc,
                        a: a.add(i0 * rsa + k0 * csa),
                        rsa,
                        csa,
                        b: bp,
                        ldb,
                        beta: beta_k,
                        c: c.add(i0 * ldc + j0),
                        ldc,
                        last,
                    };
                    macro_rules! by_shape {
                        ($($r:literal)*) => {
                            match (h, w.div_ceil(16)) {
                                $(
                                    ($r, 4) => tile::<$r, 4>(&t),
                                    ($r, 3) => tile::<$r, 3>(&t),
                                    ($r, 2) => tile::<$r, 2>(&t),
                                    ($r, _) => tile::<$r, 1>(&t),
                                )*
                                _ => unreachable!("tiles have 1 to MR rows"),
                            }
                        };
                    }
                    by_shape!(1 2 3 4 5 6);
                    i0 += h;
                }
                j0 += w;
            }
            k0 += kc;
        }
    });
}

/// B's `kc` x `w` block at `src` (row stride `rsb`) into `panel` as rows of [`NR`].
///
/// # Safety
/// `src` must cover the block; `panel` holds KC x NR values.
#[inline(always)]
unsafe fn fill_panel(panel: &mut [f32], src: *const f32, rsb: usize, kc: usize, w: usize) {
    // Vector by vector (a row is at most four): a call to memcpy per row cost more.
    let masks: [__mmask16; 4] = std::array::from_fn(|v| lanes(w.saturating_sub(16 * v).min(16)));
    for (p, row) in panel.chunks_exact_mut(NR).take(kc).enumerate() {
        let from = src.add(p * rsb);
        for (v, &mask) in masks.iter().enumerate().take(w.div_ceil(16)) {
            let x = _mm512_maskz_loadu_ps(mask, from.add(16 * v));
            _mm512_mask_storeu_ps(row.as_mut_ptr().add(16 * v), mask, x);
        }
    }
}

/// The first `count` (at most 16) lanes.
#[inline(always)]
fn lanes(count: usize) -> __mmask16 {
    (((1u32 << count) - 1) & 0xffff) as u16
}

/// One tile's inputs: A at its first row and k, B's panel (rows of `ldb`), C's block.
struct Tile {
    kc: usize,
    a: *const f32,
    rsa: usize,
    csa: usize,
    b: *const f32,
    ldb: usize,
    beta: f32,
    c: *mut f32,
    ldc: usize,
    /// Lanes of the last vector that are in C.
    last: __mmask16,
}

/// C's R x (16 V, the last vector masked) block = the block's products + beta C.
///
/// # Safety
/// As [`sgemm`]: the tile's A, B panel and C block are covered.
#[inline(always)]
unsafe fn tile<const R: usize, const V: usize>(t: &Tile) {
    let mask = |v: usize| if v + 1 == V { t.last } else { 0xffff };
    let mut acc: [[__m512; V]; R] = [[_mm512_setzero_ps(); V]; R];
    for p in 0..t.kc {
        let bp = t.b.add(p * t.ldb);
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, b) in bv.iter_mut().enumerate() {
            *b = _mm512_maskz_loadu_ps(mask(v), bp.add(16 * v));
        }
        let ap = t.a.add(p * t.csa);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*ap.add(i * t.rsa));
            for (s, &b) in row.iter_mut().zip(&bv) {
                *s = _mm512_fmadd_ps(av, b, *s);
            }
        }
    }
    let beta = _mm512_set1_ps(t.beta);
    for (i, row) in acc.iter().enumerate() {
        for (v, &s) in row.iter().enumerate() {
            let cp = t.c.add(i * t.ldc + 16 * v);
            let out = if t.beta == 0.0 {
                s
            } else {
                _mm512_add_ps(s, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask(v), cp), beta))
            };
            _mm512_mask_storeu_ps(cp, mask(v), out);
        }
    }
}
