//! Lesson 12, identifiability: the prior N(0, I) is rotation invariant, so rotating the
//! latent space and undoing the rotation in the decoder gives a model with the same
//! p(x), whose map and axes are different.
//!
//! For an orthogonal R (Z x Z; [`rotation_matrix`]: a rotation by an angle in the
//! plane of two latent axes), [`rotate_params`] maps the parameters so that the new
//! latent point is `z' = R z`:
//!
//! - the encoder's mean head `m = h W + b` becomes `m' = R m`: `W' = W R^T`, `b' = R b`
//!   (weights are stored input-major, `[H, Z]`);
//! - the decoder's first layer reads `z' W'_z` with `W'_z = R W_z` (its `[Z, H]` latent
//!   rows; the batch rows are unchanged), so `z' W'_z = z^T R^T R W_z = z W_z`: the
//!   decoded profile at `R z` is the original's at `z`, up to float rounding.
//! - The variance head is **kept as it is**. The rotated posterior `N(R m, R diag(v)
//!   R^T)` is not diagonal unless R is a signed permutation or the two rotated variances
//!   are equal, and a diagonal head cannot express it; keeping `v` is exact for signed
//!   permutations and otherwise leaves q(z'|x) = N(R m, diag(v)), a slightly different
//!   approximate posterior. So the ELBO may drop a little (by the KL between the two
//!   Gaussians), while log p(x) of the model (decoder + prior) is unchanged exactly:
//!   its importance-weighted estimate moves only by Monte Carlo error, q being just
//!   the proposal.

use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::eval::evaluate;
use crate::model::Params;
use serde::Serialize;

/// A rotated copy of a model and what it changed.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The rotated parameters (swap them into a session to show the rotated map).
    pub params: Params,
    /// The rotation and the evaluation before and after.
    pub report: RotationReport,
}

/// The rotation and the held-out (or training) log p(x) and ELBO before and after.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RotationReport {
    /// The two latent axes of the rotation's plane.
    pub plane: [usize; 2],
    /// The angle, in radians (from the first axis toward the second).
    pub angle_radians: f64,
    /// R, Z x Z, row-major (`z' = R z`).
    pub rotation_row_major: Vec<f32>,
    /// What happens to the variance head: always `"kept"` (see the module docs).
    pub variance_head: String,
    /// Which cells were evaluated: `"held-out"` or `"training"` (no held-out cells).
    pub cells_evaluated: String,
    /// Number of cells evaluated.
    pub n_cells_evaluated: usize,
    /// Importance samples per cell.
    pub n_samples: usize,
    /// IW log p(x) per cell, nats, of the original model.
    pub log_px_iw_before_nats_per_cell: f64,
    /// IW log p(x) per cell, nats, of the rotated model (same draws).
    pub log_px_iw_after_nats_per_cell: f64,
    /// (after - before) / |before|.
    pub log_px_relative_change: f64,
    /// ELBO per cell, nats, of the original model.
    pub elbo_before_nats_per_cell: f64,
    /// ELBO per cell, nats, of the rotated model (variance head kept).
    pub elbo_after_nats_per_cell: f64,
}

/// The Z x Z rotation (row-major) by `angle_radians` in the plane of axes `plane`
/// (from the first toward the second); the identity elsewhere.
pub fn rotation_matrix(n_latent: usize, plane: [usize; 2], angle_radians: f64) -> Result<Vec<f32>> {
    let [a, b] = plane;
    if a >= n_latent || b >= n_latent || a == b {
        return Err(Error::Config(format!(
            "rotation plane: axes {a} and {b} must be two different latent axes below {n_latent}"
        )));
    }
    if !angle_radians.is_finite() {
        return Err(Error::Config(
            "rotation angle: must be a finite number of radians".into(),
        ));
    }
    let mut r = vec![0.0f32; n_latent * n_latent];
    for i in 0..n_latent {
        r[i * n_latent + i] = 1.0;
    }
    let (s, c) = angle_radians.sin_cos();
    r[a * n_latent + a] = c as f32;
    r[a * n_latent + b] = -s as f32;
    r[b * n_latent + a] = s as f32;
    r[b * n_latent + b] = c as f32;
    Ok(r)
}

/// The parameters for latent points `z' = R z` (R orthogonal, Z x Z row-major): see the
/// module docs. An error when R has the wrong size or is not orthogonal (1e-4).
pub fn rotate_params(p: &Params, r: &[f32]) -> Result<Params> {
    let z = p.config.n_latent;
    if r.len() != z * z {
        return Err(Error::Config(format!(
            "rotation: R must be {z} x {z} (the latent dimensions), not {} values",
            r.len()
        )));
    }
    for i in 0..z {
        for j in 0..z {
            let dot: f64 = (0..z)
                .map(|k| f64::from(r[i * z + k]) * f64::from(r[j * z + k]))
                .sum();
            let want = if i == j { 1.0 } else { 0.0 };
            if (dot - want).abs() > 1e-4 {
                return Err(Error::Config(
                    "rotation: R is not orthogonal (R R^T must be the identity)".into(),
                ));
            }
        }
    }
    let mut out = p.clone();
    // Encoder mean head: W [H, Z] -> W R^T, b -> R b.
    let head = &p.layout.z_mean;
    let h = head.n_in;
    let w = &p.values[head.weight.clone()];
    let mut w_new = vec![0.0f32; h * z];
    for i in 0..h {
        for a in 0..z {
            w_new[i * z + a] = (0..z)
                .map(|j| f64::from(r[a * z + j]) * f64::from(w[i * z + j]))
                .sum::<f64>() as f32;
        }
    }
    out.values[head.weight.clone()].copy_from_slice(&w_new);
    let b = &p.values[head.bias.clone()];
    let b_new: Vec<f32> = (0..z)
        .map(|a| {
            (0..z)
                .map(|j| f64::from(r[a * z + j]) * f64::from(b[j]))
                .sum::<f64>() as f32
        })
        .collect();
    out.values[head.bias.clone()].copy_from_slice(&b_new);
    // Decoder first layer: latent rows W_z [Z, H] -> R W_z.
    let layer = p
        .layout
        .decoder
        .first()
        .ok_or_else(|| Error::Config("rotation: the model has no decoder layer".into()))?;
    let hd = layer.n_out;
    let wd = &p.values[layer.weight.clone()];
    let mut rows = vec![0.0f32; z * hd];
    for a in 0..z {
        for o in 0..hd {
            rows[a * hd + o] = (0..z)
                .map(|j| f64::from(r[a * z + j]) * f64::from(wd[j * hd + o]))
                .sum::<f64>() as f32;
        }
    }
    let start = layer.weight.start;
    out.values[start..start + z * hd].copy_from_slice(&rows);
    Ok(out)
}

/// Rotates `params` by `angle_radians` in `plane` and evaluates both models on `cells`
/// (`heldout` says whether they are held-out cells, for the report) with `n_samples`
/// importance samples each, the same draws (`seed`) for both.
#[allow(clippy::too_many_arguments)]
pub fn rotate(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    heldout: bool,
    plane: [usize; 2],
    angle_radians: f64,
    n_samples: usize,
    seed: u64,
) -> Result<Rotated> {
    super::need_cells(cells, "rotation")?;
    super::check_cells(cells, m.n_cells, "rotation")?;
    super::check_count(n_samples, 10_000, "importance samples")?;
    let r = rotation_matrix(params.config.n_latent, plane, angle_radians)?;
    let rotated = rotate_params(params, &r)?;
    let seed = seed ^ u64::from(super::streams::ROTATION) << 40;
    let before = evaluate(params, m, batch_codes, cells, n_samples, seed);
    let after = evaluate(&rotated, m, batch_codes, cells, n_samples, seed);
    let report = RotationReport {
        plane,
        angle_radians,
        rotation_row_major: r,
        variance_head: "kept".into(),
        cells_evaluated: if heldout { "held-out" } else { "training" }.into(),
        n_cells_evaluated: cells.len(),
        n_samples,
        log_px_iw_before_nats_per_cell: before.log_px_iw_per_cell,
        log_px_iw_after_nats_per_cell: after.log_px_iw_per_cell,
        log_px_relative_change: (after.log_px_iw_per_cell - before.log_px_iw_per_cell)
            / before.log_px_iw_per_cell.abs().max(f64::MIN_POSITIVE),
        elbo_before_nats_per_cell: before.elbo_per_cell,
        elbo_after_nats_per_cell: after.elbo_per_cell,
    };
    Ok(Rotated {
        params: rotated,
        report,
    })
}
