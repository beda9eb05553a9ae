//! Twin of `shaders/lib/counts.wgsl`: the count likelihoods (NB, ZINB, Poisson) per
//! cell, fused with their gradients, shared by [`super::nb_loglik`],
//! [`super::zinb_loglik`] and [`super::poisson_loglik`]: this module drives the cells
//! (threads, sums, the dispersion gradient), [`super::count_rows`] computes a row.
//!
//! The log-likelihoods keep their full normalising constants and are fused with the
//! gradients with respect to the decoder's softmax logits and the log dispersion. The
//! elements are computed in f32, as the WGSL twin does, with the vectorised logarithms
//! of [`super::fastmath`]; sums over genes are made in f64.
//!
//! Shapes, row-major: `x` (counts), `rho` (softmax output), `pi` (ZINB dropout logits),
//! `d_logits`, `d_pi` are B x G; `library` (observed library size l), `weight`, `loglik`
//! are B; `log_theta` and `d_log_theta` are K x G and `theta_row` (B) says which row of
//! that table each cell uses (all 0 for gene-wise dispersion, the batch code for
//! gene-batch). The mean is `mu = l * rho`.
//!
//! Gradients are of `sum_cells weight[c] * loglik[c]` (pass `-1/B` to minimise the mean
//! negative log-likelihood) and are overwritten. With `a_g = d loglik / d ln mu_g`
//! (NB: `theta (x - mu) / (theta + mu)`), `d_logits[k] = w (a_k - rho_k sum_g a_g)`;
//! `d_log_theta = theta d loglik / d theta` summed over the cells that use each row:
//! per group of [`GROUP_ROWS`] cells in cell order, then the groups in order, so the
//! sums do not depend on the number of threads. `mu` is floored at the smallest normal
//! f32 so `x ln mu` stays finite when `rho` underflows. Unlike scvi-tools no 1e-8 is
//! added inside the logarithms. A dispersion below ~1e-38 (`log_theta` < -87) is out of
//! range (f32), as on the GPU.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

pub use super::count_rows::sum_f64;
use super::count_rows::{
    add_big_nb, add_big_poisson, finish_row, nb_row, poisson_row, zinb_row, Row, Tables,
};
use super::par;
use std::ops::Range;

/// Cells whose dispersion gradients are summed together before the groups are added in
/// order: a fixed number, so that the sums do not depend on the number of threads.
pub const GROUP_ROWS: usize = 16;

/// What the likelihood kernels keep between calls (so a training step allocates
/// nothing once the largest minibatch has been seen): the dispersion tables, the
/// dispersion-gradient sums of each group of cells, and each thread's row buffers.
#[derive(Debug, Clone, Default)]
pub struct CountScratch {
    tables: Tables,
    /// One K x G block per group of [`GROUP_ROWS`] cells.
    th_parts: Vec<f32>,
    /// Per thread: the row's log-pmfs (G).
    rows: Vec<f32>,
}

/// Which likelihood [`drive`] computes.
#[derive(Clone, Copy)]
pub(super) enum Kind<'a> {
    Nb,
    /// With the dropout logits (B x G).
    Zinb(&'a [f32]),
    Poisson,
}

/// The inputs of [`drive`] (shapes in the module docs; `log_theta` and `theta_row`
/// empty for Poisson, `weight` empty without gradients).
pub(super) struct Inputs<'a> {
    pub(super) x: &'a [f32],
    pub(super) library: &'a [f32],
    pub(super) rho: &'a [f32],
    pub(super) log_theta: &'a [f32],
    pub(super) theta_row: &'a [u32],
    pub(super) weight: &'a [f32],
    pub(super) b: usize,
    pub(super) g: usize,
}

/// The gradients [`drive`] writes, overwritten: the weighted softmax-logit gradient
/// (B x G), and for NB/ZINB `d_log_theta` (K x G) and for ZINB `d_pi` (B x G).
pub(super) struct Grads<'a> {
    pub(super) d_logits: &'a mut [f32],
    pub(super) d_log_theta: Option<&'a mut [f32]>,
    pub(super) d_pi: Option<&'a mut [f32]>,
}

/// `s` split at row ranges `parts` (rows of `row_len`), or `None` for each part.
fn split_opt<'a>(
    s: Option<&'a mut [f32]>,
    parts: &[Range<usize>],
    row_len: usize,
) -> Vec<Option<&'a mut [f32]>> {
    match s {
        Some(s) => par::split_rows(s, parts, row_len)
            .into_iter()
            .map(Some)
            .collect(),
        None => parts.iter().map(|_| None).collect(),
    }
}

/// The shared loop: writes `loglik` (B) and, when given, `grads`. Groups of
/// [`GROUP_ROWS`] cells are split over threads ([`super::par`]); each row is computed
/// as the serial loop computes it, so results do not depend on the number of threads.
pub(super) fn drive(
    inp: &Inputs<'_>,
    kind: Kind<'_>,
    loglik: &mut [f32],
    grads: Option<Grads<'_>>,
    scratch: &mut CountScratch,
) {
    let (b, g) = (inp.b, inp.g);
    let grad = grads.is_some();
    let nb_like = !matches!(kind, Kind::Poisson);
    let k_rows = if nb_like {
        scratch.tables.fill(inp.log_theta, g, grad);
        inp.log_theta.len() / g.max(1)
    } else {
        0
    };
    let kg = k_rows * g;
    let n_groups = b.div_ceil(GROUP_ROWS);
    let parts = par::ranges(n_groups, b * g * 16);
    let row_parts: Vec<Range<usize>> = parts
        .iter()
        .map(|p| (p.start * GROUP_ROWS).min(b)..(p.end * GROUP_ROWS).min(b))
        .collect();
    if scratch.rows.len() < parts.len() * g {
        scratch.rows.resize(parts.len() * g, 0.0);
    }
    let want_th = grad && nb_like;
    if want_th && scratch.th_parts.len() < n_groups * kg {
        scratch.th_parts.resize(n_groups * kg, 0.0);
    }
    let (d_logits, d_log_theta, d_pi) = match grads {
        Some(gr) => (Some(gr.d_logits), gr.d_log_theta, gr.d_pi),
        None => (None, None, None),
    };
    let lls = par::split_rows(&mut loglik[..b], &row_parts, 1);
    let ds = split_opt(d_logits, &row_parts, g);
    let dps = split_opt(d_pi, &row_parts, g);
    let ths = split_opt(
        want_th.then(|| &mut scratch.th_parts[..n_groups * kg]),
        &parts,
        kg,
    );
    let bufs = scratch.rows.chunks_mut(g.max(1));
    let tables = &scratch.tables;
    let jobs: Vec<_> = row_parts
        .into_iter()
        .zip(lls)
        .zip(ds.into_iter().zip(dps))
        .zip(ths.into_iter().zip(bufs))
        .map(|(((rows, ll), (mut d, mut dp)), (mut th, lp))| {
            move || {
                let start = rows.start;
                for r in rows {
                    let r0 = r - start;
                    // The group's dispersion-gradient block, zeroed at its first row.
                    let th_blk = th.as_deref_mut().map(|t| {
                        let blk = &mut t[(r0 / GROUP_ROWS) * kg..(r0 / GROUP_ROWS + 1) * kg];
                        if r0 % GROUP_ROWS == 0 {
                            blk.fill(0.0);
                        }
                        blk
                    });
                    let kr = if nb_like {
                        inp.theta_row[r] as usize
                    } else {
                        0
                    };
                    let (t, inv_t, lg, psi) = if nb_like {
                        tables.slab(kr, g)
                    } else {
                        (&[][..], &[][..], &[][..], &[][..])
                    };
                    let row = Row {
                        x: &inp.x[r * g..(r + 1) * g],
                        rho: &inp.rho[r * g..(r + 1) * g],
                        t,
                        inv_t,
                        lg,
                        psi,
                        library: inp.library[r],
                        weight: inp.weight.get(r).copied().unwrap_or(1.0),
                    };
                    let rg = r0 * g..(r0 + 1) * g;
                    let th = th_blk.map_or(&mut [][..], |t| &mut t[kr * g..(kr + 1) * g]);
                    let mut d_row = d.as_deref_mut().map(|d| &mut d[rg.clone()]);
                    let big = match (kind, d_row.as_deref_mut()) {
                        (Kind::Nb, None) => nb_row::<false>(&row, lp, &mut [], &mut []),
                        (Kind::Nb, Some(d)) => nb_row::<true>(&row, lp, d, th),
                        (Kind::Zinb(pi), None) => {
                            zinb_row::<false>(&row, &pi[r * g..], lp, &mut [], &mut [], &mut [])
                        }
                        (Kind::Zinb(pi), Some(d)) => {
                            let dp = dp.as_deref_mut().map_or(&mut [][..], |v| &mut v[rg]);
                            zinb_row::<true>(&row, &pi[r * g..], lp, d, th, dp)
                        }
                        (Kind::Poisson, None) => poisson_row::<false>(&row, lp, &mut []),
                        (Kind::Poisson, Some(d)) => poisson_row::<true>(&row, lp, d),
                    };
                    if big > 0 {
                        match kind {
                            Kind::Poisson => add_big_poisson(row.x, lp),
                            _ => add_big_nb(&row, grad, lp, th),
                        }
                    }
                    // d_logits = w a - rho sum_g w a; the row's log-likelihood.
                    ll[r0] = finish_row(d_row.unwrap_or(&mut []), row.rho, lp);
                }
            }
        })
        .collect();
    par::run(jobs);
    if let Some(dt) = d_log_theta {
        let dt = &mut dt[..kg];
        dt.fill(0.0);
        if want_th {
            for part in scratch.th_parts[..n_groups * kg].chunks_exact(kg.max(1)) {
                for (o, &v) in dt.iter_mut().zip(part) {
                    *o += v;
                }
            }
        }
    }
}

/// `1 / (1 + e^-y)` (f64; the count samplers use it).
pub(super) fn sigmoid(y: f64) -> f64 {
    if y >= 0.0 {
        1.0 / (1.0 + (-y).exp())
    } else {
        let e = y.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests;
