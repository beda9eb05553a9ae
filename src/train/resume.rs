//! Where a run stands, written down so that another process (the page after a reload)
//! continues it exactly: [`ScheduleRecord`] holds everything of a [`Schedule`] that the
//! next steps depend on besides the backend's state (which a checkpoint holds: see
//! [`crate::model::io::checkpoint_to_safetensors`]).
//!
//! Minibatch order, dropout masks and reparameterisation noise are keyed by (seed,
//! epoch, step), so a run restored to the same epoch, step and position within the epoch,
//! with the same settings, the same Adam moments and step count (the checkpoint), computes
//! the same next steps bit for bit. The epoch's running sums make its record the same; the
//! recent losses make divergence detection judge the next steps alike; the snapshot point
//! keeps the snapshots on the same steps. Not kept: the older snapshots a recovery could
//! roll back to (the restored state is the only one, as at the start of a run), so only a
//! divergence soon after a restore can go differently.

use super::recovery::{LossWatch, ResumePoint};
use super::{EpochRecord, Recovery, Schedule, TrainConfig};
use crate::error::{Error, Result};
use crate::model::TrainState;
use crate::rng;
use serde::{Deserialize, Serialize};

/// A [`Schedule`]'s position and history (JSON in the page's run record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRecord {
    /// The settings as they are now (lr and beta after any change or recovery).
    pub config: TrainConfig,
    /// Steps taken.
    pub steps: u32,
    /// Epochs finished.
    pub epoch: u32,
    /// Cells of the current epoch trained on.
    pub position: usize,
    /// The current epoch's sums: reconstruction, KL (each times the minibatch's cells),
    /// cells.
    pub sums: (f64, f64, usize),
    /// Seconds the current epoch has trained so far.
    pub epoch_seconds: f64,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// Recoveries from a divergence.
    pub recoveries: Vec<Recovery>,
    /// The recent losses (divergence detection).
    pub watch: LossWatch,
    /// The step of the last snapshot point.
    pub snapshot_point: u32,
}

fn mismatch(what: String) -> Error {
    Error::Config(format!(
        "the run record does not fit its checkpoint or data ({what}); it is damaged or belongs to another run"
    ))
}

impl Schedule {
    /// The record of the run as it is now.
    pub fn record(&self) -> ScheduleRecord {
        ScheduleRecord {
            config: self.config.clone(),
            steps: self.steps,
            epoch: self.epoch,
            position: self.position,
            sums: self.sums,
            epoch_seconds: ((self.clock)() - self.epoch_started).max(0.0),
            history: self.history.clone(),
            recoveries: self.recoveries.clone(),
            watch: self.watch.clone(),
            snapshot_point: self.snapshot_point,
        }
    }

    /// The record of the run at its newest resume point (the state last read back:
    /// [`Schedule::resume_state`]), as [`Trainer::switch_backend`](super::Trainer::switch_backend)
    /// would continue it.
    pub fn record_at_resume_point(&self) -> ScheduleRecord {
        let p = self.ring.newest();
        let epoch = p.state.epochs;
        ScheduleRecord {
            config: self.config.clone(),
            steps: p.state.steps,
            epoch,
            position: p.position,
            sums: p.sums,
            epoch_seconds: 0.0,
            history: self
                .history
                .iter()
                .filter(|r| r.epoch < epoch)
                .cloned()
                .collect(),
            recoveries: self.recoveries.clone(),
            watch: p.watch.clone(),
            snapshot_point: p.state.steps,
        }
    }

    /// A schedule continuing the run `record` describes from `state` (its checkpoint) over
    /// the training cells `cells`: the next steps are those the run would have taken.
    /// Errors when the record does not fit the state or the cells.
    pub fn resume_from(
        record: ScheduleRecord,
        state: TrainState,
        cells: Vec<usize>,
        batch_codes: Vec<u32>,
        clock: fn() -> f64,
    ) -> Result<Schedule> {
        let r = record;
        if (state.steps, state.epochs) != (r.steps, r.epoch) {
            return Err(mismatch(format!(
                "the checkpoint is at step {} of epoch {}, the record at step {} of epoch {}",
                state.steps, state.epochs, r.steps, r.epoch
            )));
        }
        let mut s = Schedule::new(r.config.clone(), state, cells, batch_codes, clock)?;
        s.set_lr(r.config.lr)?;
        s.set_beta(r.config.max_kl_weight)?;
        let n = s.cells.len();
        if r.position != r.sums.2 || (r.position > 0 && s.ends_epoch(r.position)) {
            return Err(mismatch(format!(
                "position {} in an epoch of {n} cells",
                r.position
            )));
        }
        let ordered = r.history.windows(2).all(|w| w[0].epoch < w[1].epoch);
        if !ordered || r.history.last().is_some_and(|h| h.epoch >= r.epoch) {
            return Err(mismatch("epochs out of order in the history".into()));
        }
        let plausible = r.sums.0.is_finite()
            && r.sums.1.is_finite()
            && r.epoch_seconds.is_finite()
            && r.watch.is_plausible()
            && r.snapshot_point <= r.steps;
        if !plausible {
            return Err(mismatch("implausible sums or recent losses".into()));
        }
        s.order = rng::shuffle(s.config.seed, r.epoch, n);
        s.position = r.position;
        s.sums = r.sums;
        s.epoch_started = clock() - r.epoch_seconds;
        s.history = r.history;
        s.recoveries = r.recoveries;
        s.watch = r.watch;
        s.snapshot_point = r.snapshot_point;
        // The restored state is where a recovery goes back to, as a run's start is.
        let state = s.ring.newest().state.clone();
        s.ring.reset(ResumePoint {
            state,
            position: s.position,
            sums: s.sums,
            watch: s.watch.clone(),
            restored: false,
        });
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_json_bit_for_bit() {
        let mut config = TrainConfig::scvi_defaults(700);
        config.lr = 0.002_f32 * 0.5;
        config.max_kl_weight = 0.3;
        let r = ScheduleRecord {
            config,
            steps: 17,
            epoch: 2,
            position: 384,
            sums: (1_234.567_890_123_456_7, 1.0 / 3.0, 384),
            epoch_seconds: 0.1,
            history: vec![EpochRecord {
                epoch: 0,
                elbo: -std::f64::consts::PI * 1000.0,
                reconstruction: 2.0_f64.sqrt(),
                kl: 1e-300,
                kl_weight: 0.1,
                seconds: 0.0,
            }],
            recoveries: Vec::new(),
            watch: LossWatch::default(),
            snapshot_point: 12,
        };
        let back: ScheduleRecord =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.sums.0.to_bits(), r.sums.0.to_bits());
        assert_eq!(back.config.lr.to_bits(), r.config.lr.to_bits());
    }
}
