//! The lessons' computations ([`crate::teach`]) on the session's prepared data and
//! current parameters (on the GPU: the last read back). Each is a thin call; the page
//! receives the results through serde.

use super::Session;
use crate::error::{Error, Result};
use crate::model::Params;
use crate::teach::aggregate::{aggregate_posterior, AggregatePosterior};
use crate::teach::estimators::{gradient_estimators, GradientEstimators};
use crate::teach::generate::{
    decoder_correlations, generate_cells, DecoderCorrelations, GeneratedCells,
};
use crate::teach::holes::{decoded_distances, DecodedDistances};
use crate::teach::identifiability::{rotate, Rotated};
use crate::teach::likelihoods::{count_variance, CountVariance};
use crate::teach::mixing::{batch_mixing, BatchMixing};
use crate::teach::noise::{gradient_noise, GradientNoise};

/// At most `n` cells of `cells`, evenly spaced (all when there are no more than `n`).
fn spread(cells: &[usize], n: usize) -> Vec<usize> {
    if n == 0 || cells.len() <= n {
        return cells.to_vec();
    }
    (0..n).map(|i| cells[i * cells.len() / n]).collect()
}

impl Session {
    /// Lesson 12: the current model rotated by `angle_radians` in the plane of latent
    /// axes `plane`, and IW log p(x) before and after on at most `n_cells` held-out cells
    /// (training cells when none are held out) with `n_samples` importance samples.
    /// The rotated parameters are returned, not swapped in.
    pub fn teach_rotation(
        &mut self,
        plane: [usize; 2],
        angle_radians: f64,
        n_cells: usize,
        n_samples: usize,
        seed: u64,
    ) -> Result<Rotated> {
        let params = self.params()?;
        let data = self.data.clone();
        let heldout = !data.heldout_cells.is_empty();
        let pool = if heldout {
            &data.heldout_cells
        } else {
            &data.train_cells
        };
        let cells = spread(pool, n_cells);
        rotate(
            &params,
            &data.matrix,
            &data.batch_codes,
            &cells,
            heldout,
            plane,
            angle_radians,
            n_samples,
            seed,
        )
    }

    /// Lesson 4: reparameterisation vs score-function estimates of the gradient of
    /// E_q[log p(x|z)] w.r.t. the posterior mean of cell `cell` (a row of the data),
    /// from `n_draws` draws; the first `n_shown` are returned for the animation.
    pub fn teach_gradient_estimators(
        &mut self,
        cell: usize,
        n_draws: usize,
        n_shown: usize,
        seed: u64,
    ) -> Result<GradientEstimators> {
        let params = self.params()?;
        let data = self.data.clone();
        gradient_estimators(
            &params,
            &data.matrix,
            &data.batch_codes,
            cell,
            n_draws,
            n_shown,
            seed,
        )
    }

    /// Lesson 8 and the evaluation panel: batch mixing of the latent means (k nearest
    /// neighbours; at most `max_query` cells scored) over the training cells, and the kNN
    /// label accuracy when the session has labels.
    pub fn teach_batch_mixing(&mut self, k: usize, max_query: usize) -> Result<BatchMixing> {
        let mean = self.latent()?;
        let data = self.data.clone();
        let labels = data.labels.as_ref().map(|(codes, _)| codes.as_slice());
        batch_mixing(
            &mean,
            self.config.n_latent,
            &data.batch_codes,
            labels,
            &data.train_cells,
            k,
            max_query,
        )
    }

    /// Lesson 11: ELBO surgery over at most `max_cells` training cells (evenly spread)
    /// with `draws_per_cell` posterior draws each, and the `n_holes` least covered of
    /// `n_prior` prior draws.
    pub fn teach_aggregate_posterior(
        &mut self,
        max_cells: usize,
        draws_per_cell: usize,
        n_prior: usize,
        n_holes: usize,
        seed: u64,
    ) -> Result<AggregatePosterior> {
        let params = self.params()?;
        let data = self.data.clone();
        let cells = spread(&data.train_cells, max_cells);
        aggregate_posterior(
            &params,
            &data.matrix,
            &data.batch_codes,
            &cells,
            draws_per_cell,
            n_prior,
            n_holes,
            seed,
        )
    }

    /// Lesson 2: `n` cells drawn from the model in batch `batch` (library sizes from a
    /// log-normal fitted to the training cells), with their encoded means.
    pub fn teach_generate(&mut self, n: usize, batch: u32, seed: u64) -> Result<GeneratedCells> {
        let params = self.params()?;
        let data = self.data.clone();
        generate_cells(&params, &data.matrix, &data.train_cells, n, batch, seed)
    }

    /// Lesson 9: real vs generated gene-gene correlations of the `k_genes` most variable
    /// genes over the training cells, and within the `k_neighbours` cells nearest
    /// `centre` (`draws_per_neighbour` generated draws each).
    pub fn teach_decoder_correlations(
        &mut self,
        k_genes: usize,
        centre: &[f32],
        k_neighbours: usize,
        draws_per_neighbour: usize,
        seed: u64,
    ) -> Result<DecoderCorrelations> {
        let params = self.params()?;
        let data = self.data.clone();
        decoder_correlations(
            &params,
            &data.matrix,
            &data.batch_codes,
            &data.train_cells,
            k_genes,
            centre,
            k_neighbours,
            draws_per_neighbour,
            seed,
        )
    }

    /// Lesson 6: the training cells' per-gene mean and variance, the likelihoods'
    /// variance curves, and Gaussians on log1p counts of `genes` (empty: the 5 with the
    /// highest mean) with `n_samples` draws each.
    pub fn teach_count_variance(
        &mut self,
        genes: &[usize],
        n_samples: usize,
        seed: u64,
    ) -> Result<CountVariance> {
        let params = self.params()?;
        let data = self.data.clone();
        count_variance(
            &params,
            &data.matrix,
            &data.batch_codes,
            &data.train_cells,
            genes,
            n_samples,
            seed,
        )
    }

    /// Lesson 5: the spread of the training gradient for minibatch sizes `batch_sizes`
    /// (fixed noise) and for `z_samples` per cell on a fixed minibatch of
    /// `mc_batch_size` cells, `repeats` gradients each.
    pub fn teach_gradient_noise(
        &mut self,
        batch_sizes: &[usize],
        z_samples: &[usize],
        mc_batch_size: usize,
        repeats: usize,
        seed: u64,
    ) -> Result<GradientNoise> {
        let params = self.params()?;
        let data = self.data.clone();
        gradient_noise(
            &params,
            &data.matrix,
            &data.batch_codes,
            &data.train_cells,
            batch_sizes,
            z_samples,
            mc_batch_size,
            repeats,
            seed,
        )
    }

    /// Lesson 1: Hellinger distances of decoded prior, data-box and wide-box points
    /// (`n_points` each) to the nearest decoded training cell, for `params` (None: the
    /// current parameters; give an autoencoder's to compare).
    pub fn teach_decoded_distances(
        &mut self,
        params: Option<&Params>,
        n_points: usize,
        wide_factor: f64,
        seed: u64,
    ) -> Result<DecodedDistances> {
        let params = match params {
            Some(p) => p.clone(),
            None => self.params()?,
        };
        if params.config != self.config {
            return Err(Error::Config(
                "decoded distances: the parameters are for another architecture than this session's model".into(),
            ));
        }
        let data = self.data.clone();
        decoded_distances(
            &params,
            &data.matrix,
            &data.batch_codes,
            &data.train_cells,
            n_points,
            wide_factor,
            seed,
        )
    }
}
