//! Lesson 1, why not a plain autoencoder: decode latent points the data never mapped to
//! and see whether they look like cells. For any parameters (a VAE's, or an
//! autoencoder's trained with beta = 0 and no noise), latent points are drawn
//!
//! - from the prior N(0, I),
//! - uniformly from the box spanned by the cells' latent means (per axis, min to max),
//! - uniformly from that box widened `wide_factor` times about its centre,
//!
//! decoded to gene proportions (batch 0, evaluation mode), and each point's distance to
//! the nearest real cell's decoded profile (every cell's latent mean decoded the same
//! way) is the **Hellinger distance** `sqrt(1 - sum_g sqrt(p_g q_g))` between the two
//! proportion vectors (0: identical, 1: disjoint). A VAE's prior points land near real
//! profiles; far outside the data (or in an autoencoder's gaps) they need not.

use super::decoder::decode;
use super::{quantile_sorted, streams};
use crate::backend::cpu::linear;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::eval::latent;
use crate::model::Params;
use crate::rng::Stream;
use serde::Serialize;

/// The distribution of one source's distances.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DistanceSummary {
    /// `"prior"`, `"data box"` or `"wide box"`.
    pub source: String,
    /// Points drawn.
    pub n_points: usize,
    /// The points, n x Z row-major.
    pub z: Vec<f32>,
    /// Each point's Hellinger distance to the nearest decoded cell.
    pub distances: Vec<f32>,
    /// Mean distance.
    pub mean: f64,
    /// 10% quantile.
    pub q10: f64,
    /// 25% quantile.
    pub q25: f64,
    /// Median.
    pub median: f64,
    /// 75% quantile.
    pub q75: f64,
    /// 90% quantile.
    pub q90: f64,
}

/// Distances of decoded prior and box points to the decoded data.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DecodedDistances {
    /// The distance: Hellinger between decoded gene proportions.
    pub metric: String,
    /// Cells whose decoded latent means are the reference.
    pub n_reference_cells: usize,
    /// The data box's lower corner (Z).
    pub box_low: Vec<f32>,
    /// The data box's upper corner (Z).
    pub box_high: Vec<f32>,
    /// How many times wider the wide box is.
    pub wide_factor: f64,
    /// Points from the prior.
    pub prior: DistanceSummary,
    /// Points from the data box.
    pub data_box: DistanceSummary,
    /// Points from the wide box.
    pub wide_box: DistanceSummary,
}

/// Square roots of decoded proportions of `z` (n x Z), n x G.
fn sqrt_profiles(params: &Params, z: &[f32]) -> Vec<f32> {
    let n = z.len() / params.config.n_latent.max(1);
    decode(params, z, &vec![0; n])
        .rho
        .iter()
        .map(|v| v.max(0.0).sqrt())
        .collect()
}

/// `n_points` points per source (see the module docs) against the decoded latent means
/// of `cells`.
#[allow(clippy::too_many_arguments)]
pub fn decoded_distances(
    params: &Params,
    m: &CountMatrix,
    batch_codes: &[u32],
    cells: &[usize],
    n_points: usize,
    wide_factor: f64,
    seed: u64,
) -> Result<DecodedDistances> {
    super::need_cells(cells, "decoded distances")?;
    super::check_cells(cells, m.n_cells, "decoded distances")?;
    super::check_count(n_points, 10_000, "latent points")?;
    if !(wide_factor.is_finite() && wide_factor >= 1.0) {
        return Err(Error::Config(format!(
            "decoded distances: the wide box's factor must be at least 1, not {wide_factor}"
        )));
    }
    let (zd, g) = (params.config.n_latent, params.config.n_genes);
    let (mean, _) = latent(params, m, batch_codes, cells);
    let nr = cells.len();
    let mut low = vec![f32::INFINITY; zd];
    let mut high = vec![f32::NEG_INFINITY; zd];
    for row in mean.chunks_exact(zd) {
        for j in 0..zd {
            low[j] = low[j].min(row[j]);
            high[j] = high[j].max(row[j]);
        }
    }
    // Reference: sqrt proportions, transposed to G x N for one product.
    let reference = sqrt_profiles(params, &mean);
    let mut ref_t = vec![0.0f32; g * nr];
    for c in 0..nr {
        for j in 0..g {
            ref_t[j * nr + c] = reference[c * g + j];
        }
    }
    let zeros = vec![0.0f32; nr];
    let s = Stream::new(seed, streams::HOLES);
    let summarise = |source: &str, z: Vec<f32>| -> DistanceSummary {
        let mut distances = Vec::with_capacity(n_points);
        for chunk in z.chunks(256 * zd) {
            let b = chunk.len() / zd;
            let sq = sqrt_profiles(params, chunk);
            let mut bc = vec![0.0f32; b * nr];
            linear::forward(&sq, &ref_t, &zeros, b, g, nr, &mut bc);
            for row in bc.chunks_exact(nr) {
                let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                distances.push((1.0 - best).max(0.0).sqrt());
            }
        }
        let mut sorted: Vec<f64> = distances.iter().map(|&d| f64::from(d)).collect();
        sorted.sort_by(f64::total_cmp);
        let q = |p: f64| quantile_sorted(&sorted, p);
        DistanceSummary {
            source: source.into(),
            n_points: distances.len(),
            mean: sorted.iter().sum::<f64>() / sorted.len().max(1) as f64,
            q10: q(0.1),
            q25: q(0.25),
            median: q(0.5),
            q75: q(0.75),
            q90: q(0.9),
            z,
            distances,
        }
    };
    let prior_z: Vec<f32> = (0..n_points * zd).map(|i| s.normal(0, i as u32)).collect();
    let in_box = |step: u32, factor: f32| -> Vec<f32> {
        (0..n_points * zd)
            .map(|i| {
                let j = i % zd;
                let (c, half) = (0.5 * (low[j] + high[j]), 0.5 * (high[j] - low[j]) * factor);
                c + half * (2.0 * s.uniform(step, i as u32) - 1.0)
            })
            .collect()
    };
    let data_z = in_box(1, 1.0);
    let wide_z = in_box(2, wide_factor as f32);
    Ok(DecodedDistances {
        metric: "Hellinger distance between decoded gene proportions".into(),
        n_reference_cells: nr,
        prior: summarise("prior", prior_z),
        data_box: summarise("data box", data_z),
        wide_box: summarise("wide box", wide_z),
        box_low: low,
        box_high: high,
        wide_factor,
    })
}
