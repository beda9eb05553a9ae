//! The page's matrix product (wasm32 with SIMD128): C = A B + beta C, packed panels and
//! a 4 x 8 register tile of `f32x4` multiply-adds.
//!
//! matrixmultiply has no WebAssembly kernel (its portable one runs the page's products
//! at 11-17 GFLOP/s in V8); this one runs them at 21-26 on the same machine
//! (docs/SPEED.md). Dimension legend: C is m x n (row stride `ldc`), A is m x k and B
//! is k x n, both by element strides (transposes are strides). k is cut into blocks of
//! [`KC`] from 0; each block's product is summed in k order into a fresh tile and added
//! to C, so an element's value depends only on k and its own inputs: any split of C
//! into row or column blocks gives the same bits (what `gemm` relies on).

#![allow(clippy::too_many_arguments)] // BLAS-style signature

use core::arch::wasm32::{f32x4_add, f32x4_mul, f32x4_splat, v128, v128_load, v128_store};
use std::cell::RefCell;

/// Rows of the register tile.
const MR: usize = 4;
/// Columns of the register tile (two `f32x4`).
const NR: usize = 8;
/// k per packed block (a B panel of KC x NR is 8 KiB).
const KC: usize = 256;
/// Rows of A packed at once (a multiple of [`MR`]).
const MC: usize = 64;

thread_local! {
    /// Packed panels of B (KC x n) and of A (MC x KC), reused between calls.
    static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// C (m x n at `c`, row stride `ldc`) = A B + beta C.
///
/// # Safety
/// A, B and C must cover every element the strides reach, and C must not alias A or B.
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
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let p = c.add(i * ldc + j);
                *p = if beta == 0.0 { 0.0 } else { beta * *p };
            }
        }
        return;
    }
    PACKED.with(|packed| {
        let (bp, ap) = &mut *packed.borrow_mut();
        let n_panels = n.div_ceil(NR);
        let mut k0 = 0;
        while k0 < k {
            let kc = KC.min(k - k0);
            let beta_k = if k0 == 0 { beta } else { 1.0 };
            // B[k0.., :] as panels of NR columns, each kc x NR row-major, zero padded.
            bp.clear();
            bp.resize(n_panels * kc * NR, 0.0);
            for (jp, dst) in bp.chunks_exact_mut(kc * NR).enumerate() {
                let j0 = jp * NR;
                let w = NR.min(n - j0);
                for (p, row) in dst.chunks_exact_mut(NR).enumerate() {
                    let src = b.add((k0 + p) * rsb + j0 * csb);
                    for (jj, d) in row[..w].iter_mut().enumerate() {
                        *d = *src.add(jj * csb);
                    }
                }
            }
            let mut i0 = 0;
            while i0 < m {
                let mc = MC.min(m - i0);
                let m_panels = mc.div_ceil(MR);
                // A[i0..i0 + mc, k0..] as panels of MR rows, each kc x MR, zero padded.
                ap.clear();
                ap.resize(m_panels * kc * MR, 0.0);
                for (ip, dst) in ap.chunks_exact_mut(kc * MR).enumerate() {
                    let r0 = i0 + ip * MR;
                    let h = MR.min(i0 + mc - r0);
                    for (p, col) in dst.chunks_exact_mut(MR).enumerate() {
                        let src = a.add(r0 * rsa + (k0 + p) * csa);
                        for (ii, d) in col[..h].iter_mut().enumerate() {
                            *d = *src.add(ii * rsa);
                        }
                    }
                }
                for jp in 0..n_panels {
                    let j0 = jp * NR;
                    let w = NR.min(n - j0);
                    let b_panel = bp.as_ptr().add(jp * kc * NR);
                    for ip in 0..m_panels {
                        let r0 = i0 + ip * MR;
                        let h = MR.min(i0 + mc - r0);
                        let a_panel = ap.as_ptr().add(ip * kc * MR);
                        tile(
                            kc,
                            a_panel,
                            b_panel,
                            beta_k,
                            c.add(r0 * ldc + j0),
                            ldc,
                            h,
                            w,
                        );
                    }
                }
                i0 += mc;
            }
            k0 += kc;
        }
    });
}

/// One MR x NR tile: C[..h, ..w] = (packed A panel) (packed B panel) + beta C.
#[inline(always)]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
    ldc: usize,
    h: usize,
    w: usize,
) {
    let mut acc = [[f32x4_splat(0.0); 2]; MR];
    for p in 0..kc {
        let b0 = v128_load(b.add(p * NR) as *const v128);
        let b1 = v128_load(b.add(p * NR + 4) as *const v128);
        for (i, row) in acc.iter_mut().enumerate() {
            let av = f32x4_splat(*a.add(p * MR + i));
            row[0] = f32x4_add(row[0], f32x4_mul(av, b0));
            row[1] = f32x4_add(row[1], f32x4_mul(av, b1));
        }
    }
    if h == MR && w == NR {
        let bv = f32x4_splat(beta);
        for (i, row) in acc.iter().enumerate() {
            let cp = c.add(i * ldc);
            let (mut c0, mut c1) = (row[0], row[1]);
            if beta != 0.0 {
                c0 = f32x4_add(c0, f32x4_mul(bv, v128_load(cp as *const v128)));
                c1 = f32x4_add(c1, f32x4_mul(bv, v128_load(cp.add(4) as *const v128)));
            }
            v128_store(cp as *mut v128, c0);
            v128_store(cp.add(4) as *mut v128, c1);
        }
    } else {
        let mut t = [0f32; MR * NR];
        for (i, row) in acc.iter().enumerate() {
            v128_store(t.as_mut_ptr().add(i * NR) as *mut v128, row[0]);
            v128_store(t.as_mut_ptr().add(i * NR + 4) as *mut v128, row[1]);
        }
        for (i, t_row) in t.chunks_exact(NR).enumerate().take(h) {
            for (j, &v) in t_row[..w].iter().enumerate() {
                let cp = c.add(i * ldc + j);
                *cp = if beta == 0.0 { v } else { v + beta * *cp };
            }
        }
    }
}
