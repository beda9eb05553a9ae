//! One cell's row of the count likelihoods in f32, as loops that LLVM vectorises: the
//! dispersion tables of a step ([`Tables`]), and the elementwise log-pmfs with their
//! gradients ([`nb_row`], [`zinb_row`], [`poisson_row`]), which read the count terms
//! from the tables, and the terms of the few counts the tables do not hold
//! ([`add_big_nb`], [`add_big_poisson`]). [`super::counts`] drives them over the cells;
//! the formulas are those of `shaders/lib/counts.wgsl` (its f32 twin).
//!
//! Per element, with `mu = max(l rho, MIN_POSITIVE)`, `r = ln(1 + mu / t)` and the count
//! terms `cl = ln Gamma(x + t) - ln Gamma(t) - ln x!`, `cp = psi(x + t) - psi(t)`
//! (0 for a zero count):
//!
//! ```text
//! NB   log p = cl + x ln(mu / (t + mu)) - t r
//!      d/d ln mu = t (x - mu) / (t + mu)          t d/dt = t (cp - (x - mu) / (t + mu) - r)
//! ```
//!
//! The count terms do not depend on the cell: for integer counts up to [`SMALL_COUNT`]
//! they are read from tables built once per step from the dispersions (`sum_i ln(t + i)`,
//! `sum_i 1 / (t + i)`, minus `ln x!`: K x 17 x G values, against B x G elements), and
//! anything else is computed in f64 by [`count_terms`] (rare: counts above 16). A zero
//! count reads zeros, so its log-pmf is `-t r` with no special case.
#![allow(clippy::too_many_arguments)] // row kernels take the row's slices one by one

use super::fastmath::{exp, ln, ln_1p, ln_1p_with, wide_kernel};
use super::par;
use super::special::{digamma, lgamma};

/// Integer counts up to this use the tables (and the exact finite sums in f64).
pub(super) const SMALL_COUNT: usize = 16;

/// `ln(k!)` for k = 0..=16 (from the exact factorials).
pub(super) const LN_FACT: [f64; SMALL_COUNT + 1] = [
    0.0,
    0.0,
    std::f64::consts::LN_2,
    1.791_759_469_228_055,
    3.178_053_830_347_945_8,
    4.787_491_742_782_046,
    6.579_251_212_010_101,
    8.525_161_361_065_415,
    10.604_602_902_745_25,
    12.801_827_480_081_469,
    15.104_412_573_075_516,
    17.502_307_845_873_887,
    19.987_214_495_661_885,
    22.552_163_853_123_425,
    25.191_221_182_738_68,
    27.899_271_383_840_89,
    30.671_860_106_080_672,
];

/// `(lgamma(x + t) - lgamma(t), digamma(x + t) - digamma(t), lgamma(x + 1))` in f64 for
/// x > 0; small integer counts use `ln prod_j (t + j)`, `sum_j 1 / (t + j)` and a table.
pub(super) fn count_terms(x: f64, t: f64, grad: bool) -> (f64, f64, f64) {
    if x <= SMALL_COUNT as f64 && x == x.floor() && t < 1e15 {
        let (mut prod, mut psi) = (1f64, 0f64);
        let mut j = 0.0;
        while j < x {
            prod *= t + j;
            if grad {
                psi += 1.0 / (t + j);
            }
            j += 1.0;
        }
        (prod.ln(), psi, LN_FACT[x as usize])
    } else {
        let psi = if grad {
            digamma(x + t) - digamma(t)
        } else {
            0.0
        };
        (lgamma(x + t) - lgamma(t), psi, lgamma(x + 1.0))
    }
}

/// Table rows per dispersion row: the counts 0..=16, then a row of zeros that every
/// other count reads (its terms are added after, by [`add_big_nb`]/[`add_big_poisson`]).
pub(super) const TABLE_ROWS: usize = SMALL_COUNT + 2;

/// The dispersion table of a step in the forms the rows read (`t`, `1/t`: K x G), and
/// the count terms of the integer counts 0..=16: `lg` and `psi` hold K slabs of
/// [`Tables::stride`] values (18 x G padded to a power of two), row x of slab k holding
/// `cl` and `cp` of count x for every gene of dispersion row k (row 17 zeros).
#[derive(Debug, Clone, Default)]
pub(super) struct Tables {
    pub(super) t: Vec<f32>,
    pub(super) inv_t: Vec<f32>,
    pub(super) lg: Vec<f32>,
    pub(super) psi: Vec<f32>,
    /// Scratch of [`Tables::fill`] (G).
    sum_ln: Vec<f32>,
    /// `(K, G, grad)` of the last fill: the zeros of `lg` and `psi` are kept while it
    /// stays the same.
    shape: (usize, usize, bool),
}

impl Tables {
    /// Fills the tables from `log_theta` (K x G): `psi` only with `grad` (the rows
    /// read `cp` only for gradients).
    pub(super) fn fill(&mut self, log_theta: &[f32], g: usize, grad: bool) {
        let k = log_theta.len() / g.max(1);
        // t and 1 / t, written by the jobs below with each gene's table columns.
        self.t.resize(k * g, 0.0);
        self.inv_t.resize(k * g, 0.0);
        let stride = Self::stride(g);
        // Rows 1..=16 of every slab are written below; row 0, row 17 and the padding
        // are zeros, kept from the last fill of the same shape (not cleared again:
        // 2 x 512 KB a step on 4,000 genes).
        if self.shape != (k, g, grad) {
            self.shape = (k, g, grad);
            self.lg.clear();
            self.lg.resize(k * stride, 0.0);
            self.psi.clear();
            if grad {
                self.psi.resize(k * stride, 0.0);
            }
        }
        // Running sums over i of ln(t + i) and 1 / (t + i), gene by gene in lanes.
        self.sum_ln.clear();
        self.sum_ln.resize(g, 0.0);
        // Genes over threads (each gene's sums alone: the same bits for any split).
        let parts = par::ranges(g, g * SMALL_COUNT * 8);
        for kr in 0..k {
            let slab = kr * stride..(kr + 1) * stride;
            let psi = if grad {
                &mut self.psi[slab.clone()]
            } else {
                &mut []
            };
            let rows = kr * g..(kr + 1) * g;
            let ts = par::split_rows(&mut self.t[rows.clone()], &parts, 1);
            let inv_ts = par::split_rows(&mut self.inv_t[rows.clone()], &parts, 1);
            let lgs = cut_rows(&mut self.lg[slab], g, &parts);
            let psis = cut_rows(psi, g, &parts);
            let sums = par::split_rows(&mut self.sum_ln[..g], &parts, 1);
            let log_theta = &log_theta[rows];
            let jobs: Vec<_> = parts
                .iter()
                .zip(ts.into_iter().zip(inv_ts))
                .zip(lgs.into_iter().zip(psis))
                .zip(sums)
                .map(|(((r, (t, inv_t)), (mut lg, mut psi)), sum)| {
                    let log_theta = &log_theta[r.clone()];
                    move || {
                        // exp in f64, once per gene (and dispersion row): t is
                        // e^log_theta correctly rounded.
                        for ((t, inv), &v) in t.iter_mut().zip(inv_t.iter_mut()).zip(log_theta) {
                            *t = f64::from(v).exp() as f32;
                            *inv = 1.0 / *t;
                        }
                        fill_cols(t, &mut lg, &mut psi, sum)
                    }
                })
                .collect();
            par::run(jobs);
        }
    }

    /// Values per dispersion row in `lg` and `psi`: 18 x G padded to a power of two, so
    /// that the rows can mask their indices instead of checking them.
    pub(super) fn stride(g: usize) -> usize {
        (TABLE_ROWS * g).next_power_of_two()
    }

    /// Dispersion row `kr` as a [`Row`] reads it: `(t, 1/t, lg, psi)`.
    pub(super) fn slab(&self, kr: usize, g: usize) -> (&[f32], &[f32], &[f32], &[f32]) {
        let stride = Self::stride(g);
        let tab = kr * stride..(kr + 1) * stride;
        (
            &self.t[kr * g..(kr + 1) * g],
            &self.inv_t[kr * g..(kr + 1) * g],
            &self.lg[tab.clone()],
            self.psi.get(tab).unwrap_or(&[]),
        )
    }
}

/// The table row of a count: the count for the integers 0..=16, else 17 (zeros).
/// The nearest integer to x clamped into [0, 17] (NaN gives 0) is read from the bits of
/// `x + 2^23`, with no float-to-integer conversion (which does not vectorise).
#[inline(always)]
#[allow(clippy::manual_clamp)] // NaN must give 0, where `clamp` gives NaN
fn table_row(x: f32) -> u32 {
    let f = x.max(0.0).min(17.0) + 8_388_608.0;
    let k = f.to_bits().wrapping_sub(0x4b00_0000);
    if f - 8_388_608.0 == x && k <= SMALL_COUNT as u32 {
        k
    } else {
        SMALL_COUNT as u32 + 1
    }
}

/// `-ln x!` by table row (the Poisson's count term; 0 for the counts read elsewhere).
const NEG_LN_FACT: [f32; TABLE_ROWS] = {
    let mut t = [0f32; TABLE_ROWS];
    let mut i = 0;
    while i <= SMALL_COUNT {
        t[i] = -(LN_FACT[i] as f32);
        i += 1;
    }
    t
};

/// Adds the count terms of the counts outside the tables (above 16, or not integers)
/// to a row the NB or ZINB kernel computed: `cl` to `lp` and, when `grad`, the
/// weighted `t cp` to `th`. In f64 ([`count_terms`]); such counts are rare.
pub(super) fn add_big_nb(row: &Row<'_>, grad: bool, lp: &mut [f32], th: &mut [f32]) {
    for (j, &xv) in row.x.iter().enumerate() {
        if table_row(xv) <= SMALL_COUNT as u32 {
            continue;
        }
        let t = row.t[j];
        let (lgd, ps, lf) = count_terms(f64::from(xv), f64::from(t), grad);
        lp[j] += (lgd - lf) as f32;
        if grad {
            th[j] += row.weight * (t * ps as f32);
        }
    }
}

/// [`add_big_nb`] for the Poisson: `-ln x!` to `lp`.
pub(super) fn add_big_poisson(x: &[f32], lp: &mut [f32]) {
    for (l, &xv) in lp.iter_mut().zip(x) {
        if table_row(xv) > SMALL_COUNT as u32 {
            *l -= lgamma(f64::from(xv) + 1.0) as f32;
        }
    }
}

/// One cell's row: inputs (G each), its dispersion slab and its scalars.
pub(super) struct Row<'a> {
    pub(super) x: &'a [f32],
    pub(super) rho: &'a [f32],
    /// Dispersion row `(t, 1/t)` of the cell (G each) and its count-term tables
    /// (18 x G; `psi` empty without gradients). All empty for Poisson.
    pub(super) t: &'a [f32],
    pub(super) inv_t: &'a [f32],
    pub(super) lg: &'a [f32],
    pub(super) psi: &'a [f32],
    /// Observed library size and gradient weight of the cell.
    pub(super) library: f32,
    pub(super) weight: f32,
}

/// `mu` floored at the smallest normal f32 (so `x ln mu` stays finite when rho
/// underflows); NaN stays NaN.
#[inline(always)]
fn floor_mu(mu: f32) -> f32 {
    if mu < f32::MIN_POSITIVE {
        f32::MIN_POSITIVE
    } else {
        mu
    }
}

/// The NB terms of one element: `(log p, q = (x - mu) / (t + mu), r)`.
#[inline(always)]
fn nb_elem(x: f32, mu: f32, t: f32, inv_t: f32, cl: f32) -> (f32, f32, f32) {
    let u = mu * inv_t;
    let w = 1.0 + u;
    let inv_tm = 1.0 / (t + mu);
    // 1 / w = t / (t + mu), for the rounding correction of ln(w) only.
    let r = ln_1p_with(u, w, t * inv_tm);
    // ln(mu / (t + mu)) as one logarithm of a number in (0, 1]: no cancellation
    // between ln mu and ln(t + mu) when mu >> t.
    let lp = cl + x * ln(mu * inv_tm) - t * r;
    (lp, (x - mu) * inv_tm, r)
}

/// Index of element `j`'s count terms in an 18 x G table padded to a power of two
/// `mask + 1` (masked, which changes nothing, so that the compiler sees no bounds
/// check). 32-bit arithmetic: a table holds far fewer than 2^32 values.
#[inline(always)]
fn tab(x: f32, j: usize, g: usize, mask: usize) -> usize {
    (table_row(x).wrapping_mul(g as u32).wrapping_add(j as u32) as usize) & mask
}

/// NB row (see [`nb_row`]); returns the number of counts outside the tables.
#[inline(always)]
pub(super) fn nb_row_body<const GRAD: bool>(
    row: &Row<'_>,
    lp: &mut [f32],
    d: &mut [f32],
    th: &mut [f32],
) -> u32 {
    let n = row.x.len();
    let (x, rho, t, inv_t) = (&row.x[..n], &row.rho[..n], &row.t[..n], &row.inv_t[..n]);
    let lp = &mut lp[..n];
    let (l, w) = (row.library, row.weight);
    let (lg, psi) = (row.lg, row.psi);
    if !lg.len().is_power_of_two() {
        return 0; // not a table slab (see `Tables::slab`)
    }
    let mask = lg.len() - 1;
    let lg = &lg[..=mask];
    let mut big = 0u32;
    if !GRAD {
        for j in 0..n {
            let mu = floor_mu(l * rho[j]);
            let cl = lg[tab(x[j], j, n, mask)];
            lp[j] = nb_elem(x[j], mu, t[j], inv_t[j], cl).0;
            big += u32::from(table_row(x[j]) > SMALL_COUNT as u32);
        }
        return big;
    }
    let (psi, d, th) = (&psi[..=mask], &mut d[..n], &mut th[..n]);
    for j in 0..n {
        let mu = floor_mu(l * rho[j]);
        let i = tab(x[j], j, n, mask);
        let (cl, cp) = (lg[i], psi[i]);
        let (lpv, q, r) = nb_elem(x[j], mu, t[j], inv_t[j], cl);
        lp[j] = lpv;
        d[j] = w * (t[j] * q);
        th[j] += w * (t[j] * (cp - q - r));
        big += u32::from(table_row(x[j]) > SMALL_COUNT as u32);
    }
    big
}

/// `(softplus(y), sigmoid(y), sigmoid(-y))` from one `exp(-|y|)`.
#[inline(always)]
fn soft(y: f32) -> (f32, f32, f32) {
    let e = exp(-y.abs());
    let inv = 1.0 / (1.0 + e);
    let (hi, lo) = (inv, e * inv); // sigmoid(|y|), sigmoid(-|y|)
    let pos = y >= 0.0;
    let sp = y.max(0.0) + ln_1p(e);
    (sp, if pos { hi } else { lo }, if pos { lo } else { hi })
}

/// ZINB row (see [`zinb_row`]); returns the number of counts outside the tables.
#[inline(always)]
pub(super) fn zinb_row_body<const GRAD: bool>(
    row: &Row<'_>,
    pi: &[f32],
    lp: &mut [f32],
    d: &mut [f32],
    th: &mut [f32],
    dp: &mut [f32],
) -> u32 {
    let n = row.x.len();
    let (x, rho, t, inv_t) = (&row.x[..n], &row.rho[..n], &row.t[..n], &row.inv_t[..n]);
    let (pi, lp) = (&pi[..n], &mut lp[..n]);
    let (l, w) = (row.library, row.weight);
    let (lg, psi) = (row.lg, row.psi);
    if !lg.len().is_power_of_two() {
        return 0; // not a table slab (see `Tables::slab`)
    }
    let mask = lg.len() - 1;
    let lg = &lg[..=mask];
    let mut big = 0u32;
    if !GRAD {
        for j in 0..n {
            let mu = floor_mu(l * rho[j]);
            let cl = lg[tab(x[j], j, n, mask)];
            let nb = nb_elem(x[j], mu, t[j], inv_t[j], cl).0;
            let p = pi[j];
            let (sp_neg_p, _, _) = soft(-p);
            let (sp_s, _, _) = soft(nb - p);
            lp[j] = if x[j] > 0.0 {
                nb - sp_neg_p - p
            } else {
                sp_s - sp_neg_p
            };
            big += u32::from(table_row(x[j]) > SMALL_COUNT as u32);
        }
        return big;
    }
    let (psi, d, th, dp) = (&psi[..=mask], &mut d[..n], &mut th[..n], &mut dp[..n]);
    for j in 0..n {
        let mu = floor_mu(l * rho[j]);
        let i = tab(x[j], j, n, mask);
        let (cl, cp) = (lg[i], psi[i]);
        let (nb, q, r) = nb_elem(x[j], mu, t[j], inv_t[j], cl);
        let a = t[j] * q;
        let thv = t[j] * (cp - q - r);
        let p = pi[j];
        // softplus(-p), sigmoid(-p), sigmoid(p).
        let (sp_neg_p, sig_neg_p, sig_p) = soft(-p);
        // Zero count: ln(sigmoid(p) + sigmoid(-p) NB(0)) = softplus(s) - softplus(-p).
        let (sp_s, ss, _) = soft(nb - p);
        let pos = x[j] > 0.0;
        lp[j] = if pos {
            nb - sp_neg_p - p
        } else {
            sp_s - sp_neg_p
        };
        let scale = if pos { 1.0 } else { ss };
        d[j] = w * (a * scale);
        th[j] += w * (thv * scale);
        dp[j] = w * (if pos { -sig_p } else { sig_neg_p - ss });
        big += u32::from(table_row(x[j]) > SMALL_COUNT as u32);
    }
    big
}

/// Poisson row (see [`poisson_row`]); returns the number of counts outside the table.
#[inline(always)]
pub(super) fn poisson_row_body<const GRAD: bool>(
    row: &Row<'_>,
    lp: &mut [f32],
    d: &mut [f32],
) -> u32 {
    let n = row.x.len();
    let (x, rho, lp) = (&row.x[..n], &row.rho[..n], &mut lp[..n]);
    let (l, w) = (row.library, row.weight);
    let mut big = 0u32;
    if !GRAD {
        for j in 0..n {
            let mu = floor_mu(l * rho[j]);
            let k = table_row(x[j]).min(SMALL_COUNT as u32 + 1);
            lp[j] = NEG_LN_FACT[k as usize] + x[j] * ln(mu) - mu;
            big += u32::from(k > SMALL_COUNT as u32);
        }
        return big;
    }
    let d = &mut d[..n];
    for j in 0..n {
        let mu = floor_mu(l * rho[j]);
        let k = table_row(x[j]).min(SMALL_COUNT as u32 + 1);
        lp[j] = NEG_LN_FACT[k as usize] + x[j] * ln(mu) - mu;
        d[j] = w * (x[j] - mu);
        big += u32::from(k > SMALL_COUNT as u32);
    }
    big
}

wide_kernel!(
    /// NB row: `lp` (G) per element; with `GRAD`, `d` = the weighted `d/d ln mu` (G,
    /// overwritten) and the weighted `t d/dt` added to `th` (G). Counts outside the
    /// tables get no count terms here: the return value says how many there are, and
    /// [`add_big_nb`] adds their terms.
    pub(super) fn nb_row<const GRAD: bool>(
        row: &Row<'_>,
        lp: &mut [f32],
        d: &mut [f32],
        th: &mut [f32]
    ) -> u32 => nb_row_body
);

wide_kernel!(
    /// ZINB row with dropout logits `pi` (G): as [`nb_row`] (the count terms of a
    /// positive count enter additively, so [`add_big_nb`] serves it too), plus the
    /// weighted `d/d pi` into `dp` (G, overwritten) with `GRAD`.
    pub(super) fn zinb_row<const GRAD: bool>(
        row: &Row<'_>,
        pi: &[f32],
        lp: &mut [f32],
        d: &mut [f32],
        th: &mut [f32],
        dp: &mut [f32]
    ) -> u32 => zinb_row_body
);

wide_kernel!(
    /// Poisson row: `lp` (G); with `GRAD`, `d` = the weighted `x - mu` (G, overwritten).
    /// Returns the number of counts outside the table ([`add_big_poisson`] adds them).
    pub(super) fn poisson_row<const GRAD: bool>(
        row: &Row<'_>,
        lp: &mut [f32],
        d: &mut [f32]
    ) -> u32 => poisson_row_body
);

/// Sum of `v` in f64, in 8 lanes (so that it vectorises), the lanes added in order.
#[inline(always)]
pub(super) fn sum_f64_body(v: &[f32]) -> f64 {
    let mut acc = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f64::from(x);
        }
    }
    let mut s = 0f64;
    for a in acc {
        s += a;
    }
    for &x in rest {
        s += f64::from(x);
    }
    s
}

wide_kernel!(
    /// [`sum_f64_body`] compiled for the baseline, AVX2 and AVX-512 (the same lanes, so
    /// the same sum).
    pub fn sum_f64(v: &[f32]) -> f64 => sum_f64_body
);

/// The end of a row of [`super::counts::drive`]: with gradients (`d` not empty),
/// `d -= rho sum(d)` (the softmax's Jacobian); returns the row's log-likelihood, the sum
/// of `lp`. Sums in f64 ([`sum_f64_body`]).
#[inline(always)]
pub(super) fn finish_row_body(d: &mut [f32], rho: &[f32], lp: &[f32]) -> f32 {
    if !d.is_empty() {
        let s = sum_f64_body(d) as f32;
        for (dv, &p) in d.iter_mut().zip(rho) {
            *dv -= p * s;
        }
    }
    sum_f64_body(lp) as f32
}

wide_kernel!(
    /// [`finish_row_body`] compiled for the baseline, AVX2 and AVX-512.
    pub(super) fn finish_row(d: &mut [f32], rho: &[f32], lp: &[f32]) -> f32 => finish_row_body
);

/// The count terms of some genes of one dispersion row (see [`Tables`]): `t` (those
/// genes), `lg` and, with gradients, `psi` (empty without) the slab's rows 0..=16 cut to
/// those genes, `sum_ln` scratch (as long as `t`). Row x is `sum_{i<x} ln(t + i) - ln x!`
/// and `sum_{i<x} 1 / (t + i)`, gene by gene in lanes (each gene alone: the genes can be
/// split over threads).
#[inline(always)]
pub(super) fn fill_cols_body(
    t: &[f32],
    lg: &mut [&mut [f32]],
    psi: &mut [&mut [f32]],
    sum_ln: &mut [f32],
) {
    let g = t.len();
    let sum_ln = &mut sum_ln[..g];
    sum_ln.fill(0.0);
    for (i, &lf) in LN_FACT.iter().enumerate().skip(1) {
        let (shift, lf) = ((i - 1) as f32, lf as f32);
        for ((s, c), &tj) in sum_ln.iter_mut().zip(lg[i].iter_mut()).zip(t) {
            *s += ln(tj + shift);
            *c = *s - lf;
        }
        if !psi.is_empty() {
            let (prev, cur) = psi.split_at_mut(i);
            for ((c, &p), &tj) in cur[0].iter_mut().zip(prev[i - 1].iter()).zip(t) {
                *c = p + 1.0 / (tj + shift);
            }
        }
    }
}

wide_kernel!(
    /// [`fill_cols_body`] compiled for the baseline, AVX2 and AVX-512.
    fn fill_cols(
        t: &[f32],
        lg: &mut [&mut [f32]],
        psi: &mut [&mut [f32]],
        sum_ln: &mut [f32]
    ) -> () => fill_cols_body
);

/// Rows 0..=16 (of `g`) of a slab, each cut at the gene ranges `parts`: per part, its
/// pieces of the rows in order (none for an empty slab).
pub(super) fn cut_rows<'a>(
    slab: &'a mut [f32],
    g: usize,
    parts: &[std::ops::Range<usize>],
) -> Vec<Vec<&'a mut [f32]>> {
    let mut out: Vec<Vec<&mut [f32]>> = parts.iter().map(|_| Vec::new()).collect();
    if slab.is_empty() {
        return out;
    }
    for row in slab.chunks_exact_mut(g).take(SMALL_COUNT + 1) {
        let mut rest = row;
        for (o, r) in out.iter_mut().zip(parts) {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(r.len());
            o.push(piece);
            rest = tail;
        }
    }
    out
}
