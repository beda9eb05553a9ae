//! The evaluation panel's numbers: [`crate::eval::report`] on the session's held-out
//! cells (or its training cells when none is held out), with the session's labels and
//! batches: the same function, and so the same numbers, as `cellvae eval`.

use super::Session;
use crate::error::{Error, Result};
use crate::eval::{report, Report};

/// Importance samples the page uses by default (as `cellvae eval --eval-samples`).
pub const EVAL_SAMPLES: usize = 100;

impl Session {
    /// Evaluates the current parameters with `n_samples` importance samples per cell
    /// (seeded by `seed`).
    pub fn evaluate(&mut self, n_samples: usize, seed: u64) -> Result<Report> {
        if n_samples == 0 || n_samples > 5000 {
            return Err(Error::Config(format!(
                "importance samples: {n_samples} is out of range; choose 1 to 5000 (100 is usual)"
            )));
        }
        let params = self.params()?;
        let data = &self.data;
        let heldout = !data.heldout_cells.is_empty();
        let cells = if heldout {
            &data.heldout_cells
        } else {
            &data.train_cells
        };
        let labels = data.labels.as_ref().map(|(codes, _)| codes.as_slice());
        Ok(report(
            &params,
            &data.matrix,
            &data.batch_codes,
            data.batch_levels.len(),
            cells,
            heldout,
            labels,
            n_samples,
            seed,
        ))
    }
}
