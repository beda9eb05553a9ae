//! The lessons' computations by name, for the page's one `teach` request: each name
//! takes its arguments as JSON and answers JSON, so a lesson adds a line here and none
//! in the wasm layer or the engine. The computations themselves live in
//! [`crate::teach`] (native and tested, on the session's data in session/teach.rs); this
//! file only routes.

use super::Session;
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Arguments of a lesson request as `T` (a missing field takes its default).
fn args<T: DeserializeOwned>(what: &str, v: Value) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::Config(format!("lesson request {what}: {e}")))
}

/// Any serialisable result as JSON.
fn answer<T: serde::Serialize>(what: &str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Config(format!("lesson request {what}: {e}")))
}

/// Arguments of each computation (every field optional: the defaults suit the page,
/// a few hundred milliseconds on the demo).
#[derive(serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Args {
    seed: u64,
    /// rotation: the plane's two axes and the angle.
    plane: [usize; 2],
    angle_degrees: f64,
    /// rotation: held-out (or training) cells evaluated, importance samples.
    n_cells: usize,
    n_samples: usize,
    /// gradient estimators: the cell (a row of the data), draws, draws returned.
    cell: usize,
    n_draws: usize,
    n_shown: usize,
    /// batch mixing: neighbours, cells scored, and the metadata column whose levels are
    /// the batches (None: the model's batch covariate).
    k: usize,
    max_query: usize,
    column: Option<String>,
    /// aggregate posterior: cells, draws per cell, prior draws, holes returned.
    max_cells: usize,
    draws_per_cell: usize,
    n_prior: usize,
    n_holes: usize,
    /// generated cells: how many, in which batch.
    n: usize,
    batch: u32,
    /// decoder correlations: genes, the neighbourhood's centre and size, draws.
    k_genes: usize,
    centre: Vec<f32>,
    k_neighbours: usize,
    draws_per_neighbour: usize,
    /// count variance: genes for the Gaussian contrast (empty: the 5 highest means).
    genes: Vec<usize>,
    /// gradient noise: minibatch sizes, z samples, the fixed minibatch, repeats.
    batch_sizes: Vec<usize>,
    z_samples: Vec<usize>,
    mc_batch_size: usize,
    repeats: usize,
    /// decoded distances: points per source, the wide box's factor.
    n_points: usize,
    wide_factor: f64,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            seed: 0,
            plane: [0, 1],
            angle_degrees: 45.0,
            n_cells: 100,
            n_samples: 30,
            cell: 0,
            n_draws: 2000,
            n_shown: 24,
            k: 15,
            max_query: 2000,
            column: None,
            max_cells: 2000,
            draws_per_cell: 10,
            n_prior: 2000,
            n_holes: 6,
            n: 300,
            batch: 0,
            k_genes: 12,
            centre: Vec::new(),
            k_neighbours: 60,
            draws_per_neighbour: 5,
            genes: Vec::new(),
            batch_sizes: vec![8, 32, 128],
            z_samples: vec![1, 4, 16],
            mc_batch_size: 8,
            repeats: 6,
            n_points: 200,
            wide_factor: 4.0,
        }
    }
}

impl Session {
    /// Runs the lesson computation `what` with `args`; an unknown name is an error that
    /// lists the known ones.
    pub fn teach(&mut self, what: &str, a: Value) -> Result<Value> {
        let a: Args = args(what, a)?;
        match what {
            "evaluate" => {
                let r = self.evaluate(super::EVAL_SAMPLES, a.seed)?;
                answer(what, &r)
            }
            "rotation" => {
                let r = self.teach_rotation(
                    a.plane,
                    a.angle_degrees.to_radians(),
                    a.n_cells,
                    a.n_samples,
                    a.seed,
                )?;
                answer(what, &r.report)
            }
            "gradient_estimators" => {
                let r = self.teach_gradient_estimators(a.cell, a.n_draws, a.n_shown, a.seed)?;
                answer(what, &r)
            }
            "batch_mixing" => match &a.column {
                None => answer(what, &self.teach_batch_mixing(a.k, a.max_query)?),
                Some(col) => {
                    let r = self.batch_mixing_by(col, a.k, a.max_query)?;
                    answer(what, &r)
                }
            },
            "aggregate_posterior" => {
                let r = self.teach_aggregate_posterior(
                    a.max_cells,
                    a.draws_per_cell,
                    a.n_prior,
                    a.n_holes,
                    a.seed,
                )?;
                answer(what, &r)
            }
            "generate" => answer(what, &self.teach_generate(a.n, a.batch, a.seed)?),
            "decoder_correlations" => {
                let centre = if a.centre.is_empty() {
                    vec![0.0; self.config.n_latent]
                } else {
                    a.centre
                };
                let r = self.teach_decoder_correlations(
                    a.k_genes,
                    &centre,
                    a.k_neighbours,
                    a.draws_per_neighbour,
                    a.seed,
                )?;
                answer(what, &r)
            }
            "count_variance" => answer(
                what,
                &self.teach_count_variance(&a.genes, a.n_samples, a.seed)?,
            ),
            "gradient_noise" => {
                let r = self.teach_gradient_noise(
                    &a.batch_sizes,
                    &a.z_samples,
                    a.mc_batch_size,
                    a.repeats,
                    a.seed,
                )?;
                answer(what, &r)
            }
            "decoded_distances" => {
                let r = self.teach_decoded_distances(None, a.n_points, a.wide_factor, a.seed)?;
                answer(what, &r)
            }
            _ => Err(Error::Config(format!(
                "no lesson computation is called {what:?}; known: {}",
                KNOWN.join(", ")
            ))),
        }
    }

    /// Batch mixing of the latent means with the levels of metadata column `column` as
    /// the batches (whether or not the model uses it as its covariate: lesson 8 compares
    /// a model trained without it).
    fn batch_mixing_by(
        &mut self,
        column: &str,
        k: usize,
        max_query: usize,
    ) -> Result<crate::teach::mixing::BatchMixing> {
        let mean = self.latent()?;
        let data = self.data.clone();
        let col = data.matrix.obs.get(column).ok_or_else(|| {
            Error::Config(format!(
                "batch mixing: the data has no column {column:?}; load the lesson's data again"
            ))
        })?;
        let (codes, _) = crate::pipeline::column_codes(col);
        if codes.iter().any(Option::is_none) {
            return Err(Error::Config(format!(
                "batch mixing: column {column:?} has cells without a value"
            )));
        }
        let codes: Vec<u32> = codes.into_iter().flatten().collect();
        let labels = data.labels.as_ref().map(|(c, _)| c.as_slice());
        crate::teach::mixing::batch_mixing(
            &mean,
            self.config.n_latent,
            &codes,
            labels,
            &data.train_cells,
            k,
            max_query,
        )
    }

    /// The current model rotated as lesson 12's `rotation` computes it, as
    /// `model.safetensors` bytes (with [`Session::model_config_json`], a model to load).
    pub fn rotated_model(&mut self, plane: [usize; 2], angle_degrees: f64) -> Result<Vec<u8>> {
        use crate::teach::identifiability::{rotate_params, rotation_matrix};
        let params = self.params()?;
        let r = rotation_matrix(self.config.n_latent, plane, angle_degrees.to_radians())?;
        crate::model::io::to_safetensors(&rotate_params(&params, &r)?)
    }
}

/// The names [`Session::teach`] answers.
const KNOWN: &[&str] = &[
    "evaluate",
    "rotation",
    "gradient_estimators",
    "batch_mixing",
    "aggregate_posterior",
    "generate",
    "decoder_correlations",
    "count_variance",
    "gradient_noise",
    "decoded_distances",
];
