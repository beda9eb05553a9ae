//! The training loop, independent of the backend: minibatch order, KL warm-up, Adam
//! settings, step-by-step control for the page (one step, N steps, change lr or beta
//! mid-run), progress, checkpoints, and recovery from divergence (non-finite or
//! exploding losses: back to a snapshot from before it, at a lower rate; see
//! [`recovery`]).
//!
//! [`Schedule`] is the loop's bookkeeping without a backend; [`Trainer`] drives it with
//! any [`Backend`](crate::model::Backend) in one async loop ([`Trainer::step_group_async`]) that the page
//! awaits on the GPU and the command line and tests run through [`crate::block_on`].

use crate::backend::cpu::par;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::{Minibatch, StepHyper, StepLosses, TrainState};
use crate::rng;
use serde::{Deserialize, Serialize};

pub mod recovery;
mod resume;
mod trainer;

pub use recovery::Recovery;
use recovery::{LossWatch, ResumePoint, Ring, Verdict};
pub use resume::ScheduleRecord;
pub use trainer::{StepReports, Trainer};

/// Training settings (scvi-tools' defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs to train.
    pub epochs: u32,
    /// Cells per minibatch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f32,
    /// Adam epsilon.
    pub adam_eps: f32,
    /// L2 weight decay.
    pub weight_decay: f32,
    /// Epochs of linear KL warm-up (0: none).
    pub kl_warmup_epochs: u32,
    /// Maximum KL weight (beta).
    pub max_kl_weight: f32,
    /// Seed of every random draw.
    pub seed: u64,
}

impl TrainConfig {
    /// scvi-tools' defaults, with its epoch heuristic min(round(20000 / n_cells * 400), 400).
    pub fn scvi_defaults(n_cells: usize) -> TrainConfig {
        TrainConfig {
            epochs: default_epochs(n_cells),
            batch_size: 128,
            lr: 1e-3,
            adam_eps: 1e-2,
            weight_decay: 1e-6,
            kl_warmup_epochs: 400,
            max_kl_weight: 1.0,
            seed: 0,
        }
    }

    /// The KL weight during `epoch` (0-based), as scvi-tools computes it per epoch.
    pub fn kl_weight(&self, epoch: u32) -> f32 {
        if self.kl_warmup_epochs == 0 || epoch >= self.kl_warmup_epochs {
            self.max_kl_weight
        } else {
            self.max_kl_weight * epoch as f32 / self.kl_warmup_epochs as f32
        }
    }
}

/// scvi-tools' default number of epochs for `n_cells` cells.
pub fn default_epochs(n_cells: usize) -> u32 {
    let e = (20_000.0 / n_cells.max(1) as f64 * 400.0).round();
    e.clamp(1.0, 400.0) as u32
}

/// The record of one finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, 0-based.
    pub epoch: u32,
    /// -ELBO-like training objective: mean reconstruction + KL (unweighted) per cell.
    pub elbo: f64,
    /// Mean reconstruction error per cell.
    pub reconstruction: f64,
    /// Mean KL per cell.
    pub kl: f64,
    /// KL weight used.
    pub kl_weight: f32,
    /// Wall-clock seconds of the epoch.
    pub seconds: f64,
}

/// Snapshots are taken every this many steps by default (besides every epoch's end).
pub const DEFAULT_SNAPSHOT_EVERY: u32 = 50;

/// Steps recorded back to back before their losses are read (GPU backends queue them
/// without waiting in between).
pub const GROUP: usize = 8;

/// What the backend must do after [`Schedule::apply`], before the next group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing.
    Nothing,
    /// A step diverged: load [`Schedule::resume_state`] into the backend.
    Restore,
    /// Read the state back and hand it to [`Schedule::set_snapshot`] (end of an epoch,
    /// or `snapshot_every` steps since the last one).
    Snapshot,
}

/// A spare state's buffers ([`Schedule::take_spare`]); a clone of the schedule (a run
/// moving to another backend) starts without one.
struct Spare(Option<TrainState>);

impl Clone for Spare {
    fn clone(&self) -> Spare {
        Spare(None)
    }
}

/// The training loop without a backend ("sans-IO"): minibatch order, KL warm-up, step
/// and epoch bookkeeping, recovery and snapshots. [`Trainer::step_group_async`] drives
/// it with a [`Backend`](crate::model::Backend): [`Schedule::plan`], train the planned minibatches,
/// [`Schedule::apply`], then do what it returns ([`Need`]).
#[derive(Clone)]
pub struct Schedule {
    /// The settings (lr and max_kl_weight may change mid-run).
    pub config: TrainConfig,
    cells: Vec<usize>,
    order: Vec<u32>,
    batch_codes: Vec<u32>,
    position: usize,
    epoch: u32,
    steps: u32,
    sums: (f64, f64, usize),
    epoch_started: f64,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// Every recovery from a divergence, in order (see [`recovery`]).
    pub recoveries: Vec<Recovery>,
    /// The starting state and the newest healthy snapshots.
    ring: Ring,
    /// A state dropped from the ring, whose buffers the next snapshot reuses.
    spare: Spare,
    /// The recent losses (divergence detection).
    watch: LossWatch,
    /// The step of the last snapshot point (taken or held back).
    snapshot_point: u32,
    /// Also read the state back every this many steps within an epoch (0: only at the
    /// end of each epoch; [`DEFAULT_SNAPSHOT_EVERY`] unless set). The states read back
    /// are where a recovery or a switch to another backend continues from (see
    /// [`Trainer::switch_backend`]).
    pub snapshot_every: u32,
    /// Minibatches and hyper-parameters of the planned group (reused: no allocation
    /// per step once the largest group has been seen).
    batches: Vec<Minibatch>,
    hypers: Vec<StepHyper>,
    ends: Vec<usize>,
    starts: Vec<usize>,
    clock: fn() -> f64,
}

impl Schedule {
    /// A schedule over the cells `cells` of a matrix (the training set), continuing from
    /// `state` (its step and epoch counts). `batch_codes` gives each cell's batch (empty:
    /// one batch). `clock` returns seconds.
    pub fn new(
        config: TrainConfig,
        state: TrainState,
        cells: Vec<usize>,
        batch_codes: Vec<u32>,
        clock: fn() -> f64,
    ) -> Result<Schedule> {
        if cells.is_empty() {
            return Err(Error::Config("no cells to train on".into()));
        }
        if config.batch_size == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        let (steps, epoch) = (state.steps, state.epochs);
        let order = rng::shuffle(config.seed, epoch, cells.len());
        Ok(Schedule {
            config,
            order,
            cells,
            batch_codes,
            position: 0,
            epoch,
            steps,
            sums: (0.0, 0.0, 0),
            epoch_started: clock(),
            history: Vec::new(),
            recoveries: Vec::new(),
            ring: Ring::new(ResumePoint {
                state,
                position: 0,
                sums: (0.0, 0.0, 0),
                watch: LossWatch::default(),
                restored: false,
            }),
            spare: Spare(None),
            watch: LossWatch::default(),
            snapshot_point: steps,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            batches: Vec::new(),
            hypers: Vec::new(),
            ends: Vec::new(),
            starts: Vec::new(),
            clock,
        })
    }

    /// Epochs finished so far.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Changes whenever the parameters may have: steps taken, and restores after a
    /// non-finite step (which rewind the step count), so caches keyed by it are safe.
    pub fn version(&self) -> u64 {
        u64::from(self.steps) | (self.recoveries.len() as u64) << 32
    }

    /// Whether the configured number of epochs is done.
    pub fn finished(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// Whether a step ending at `position` ends the epoch: scvi-tools drops a last
    /// minibatch of fewer than 3 cells (batch norm needs rows).
    fn ends_epoch(&self, position: usize) -> bool {
        let n = self.cells.len();
        let remaining = n - position;
        position >= n || (remaining < 3 && remaining < self.config.batch_size)
    }

    /// Plans up to `k` (at least 1) next steps, stopping at the end of the epoch:
    /// gathers their minibatches and hyper-parameters, returned for the backend to
    /// train in order.
    pub fn plan(&mut self, m: &CountMatrix, k: usize) -> (&[Minibatch], &[StepHyper]) {
        let n = self.cells.len();
        let kl_weight = self.config.kl_weight(self.epoch);
        self.hypers.clear();
        self.ends.clear();
        self.starts.clear();
        let mut pos = self.position;
        while self.hypers.len() < k.max(1) {
            let end = (pos + self.config.batch_size).min(n);
            let i = self.hypers.len();
            self.starts.push(pos);
            self.hypers.push(StepHyper {
                step: self.steps + i as u32,
                seed: self.config.seed,
                lr: self.config.lr,
                kl_weight,
                adam_eps: self.config.adam_eps,
                weight_decay: self.config.weight_decay,
            });
            self.ends.push(end);
            pos = end;
            if self.ends_epoch(pos) {
                break;
            }
        }
        // Gather the minibatches, several at once over the kernels' threads (each
        // minibatch is gathered alone, so the threads change nothing).
        let count = self.hypers.len();
        if self.batches.len() < count {
            self.batches.resize_with(count, Minibatch::default);
        }
        let (order, cells, codes) = (&self.order, &self.cells, &self.batch_codes);
        let (starts, ends) = (&self.starts, &self.ends);
        let work = count * self.config.batch_size * m.n_genes;
        let parts = par::ranges(count, work);
        let batches = par::split_rows(&mut self.batches[..count], &parts, 1);
        let jobs: Vec<_> = parts
            .into_iter()
            .zip(batches)
            .map(|(steps, batches)| {
                move || {
                    let mut rows = Vec::new();
                    for (i, mb) in steps.zip(batches.iter_mut()) {
                        rows.clear();
                        rows.extend(order[starts[i]..ends[i]].iter().map(|&c| cells[c as usize]));
                        mb.gather_for_training(m, codes, &rows);
                    }
                }
            })
            .collect();
        par::run(jobs);
        (&self.batches[..self.hypers.len()], &self.hypers)
    }

    /// Takes the losses of the planned steps (in order; a backend may stop after a
    /// non-finite one) and returns each step's losses with the epoch record it closed,
    /// and what the backend must do next.
    #[allow(clippy::type_complexity)]
    pub fn apply(
        &mut self,
        losses: &[StepLosses],
    ) -> Result<(Vec<(StepLosses, Option<EpochRecord>)>, Need)> {
        if losses.is_empty() || losses.len() > self.hypers.len() {
            return Err(Error::Config(format!(
                "the backend returned {} results for {} planned steps",
                losses.len(),
                self.hypers.len()
            )));
        }
        let n = self.cells.len();
        let mut out = Vec::with_capacity(losses.len());
        for (i, &l) in losses.iter().enumerate() {
            let hyper = self.hypers[i];
            let verdict = self.watch.judge(l.finite, l.loss, l.reconstruction, l.kl);
            let reason = match verdict {
                Verdict::NonFinite => Some("non-finite values".to_string()),
                Verdict::Exploded(value, median) => Some(format!(
                    "the loss jumped to {value:.3e} per cell (recent median {median:.1})"
                )),
                Verdict::Healthy | Verdict::Suspicious => None,
            };
            if let Some(reason) = reason {
                out.push((l, None));
                self.recover(hyper.step, reason)?;
                return Ok((out, Need::Restore));
            }
            self.watch.push(verdict, l.reconstruction, l.kl);
            self.steps += 1;
            let end = self.ends[i];
            let b = end - self.position;
            self.sums.0 += l.reconstruction as f64 * b as f64;
            self.sums.1 += l.kl as f64 * b as f64;
            self.sums.2 += b;
            self.position = end;
            let mut record = None;
            if self.ends_epoch(self.position) {
                let now = (self.clock)();
                let cells = self.sums.2.max(1) as f64;
                let r = EpochRecord {
                    epoch: self.epoch,
                    elbo: -(self.sums.0 + self.sums.1) / cells,
                    reconstruction: self.sums.0 / cells,
                    kl: self.sums.1 / cells,
                    kl_weight: hyper.kl_weight,
                    seconds: now - self.epoch_started,
                };
                self.history.push(r.clone());
                record = Some(r);
                self.epoch += 1;
                self.position = 0;
                self.sums = (0.0, 0.0, 0);
                self.epoch_started = now;
                self.order = rng::shuffle(self.config.seed, self.epoch, n);
            }
            let closed = record.is_some();
            out.push((l, record));
            if closed {
                // An epoch ends only at the last planned step.
                return Ok((out, self.snapshot_point()));
            }
        }
        let due =
            self.snapshot_every > 0 && self.steps - self.snapshot_point >= self.snapshot_every;
        Ok((
            out,
            if due {
                self.snapshot_point()
            } else {
                Need::Nothing
            },
        ))
    }

    /// A snapshot is due: asks for it when the steps since the last snapshot point
    /// looked healthy, else holds it back (the older snapshots stay the resume points).
    fn snapshot_point(&mut self) -> Need {
        self.snapshot_point = self.steps;
        if std::mem::take(&mut self.watch.suspicious) {
            Need::Nothing
        } else {
            Need::Snapshot
        }
    }

    /// After a divergence at `step`: rolls back to a snapshot (see
    /// [`recovery::Ring::roll_back`]), lowers the learning rate and records it; an error
    /// once the run has recovered [`recovery::MAX_RECOVERIES`] times or the rate is
    /// below [`recovery::MIN_LR`].
    fn recover(&mut self, step: u32, reason: String) -> Result<()> {
        let (point, moments_reset) = self.ring.roll_back();
        let resumed_at_step = point.state.steps;
        self.config.lr *= recovery::LR_FACTOR;
        self.rewind();
        self.recoveries.push(Recovery {
            step,
            reason,
            new_lr: self.config.lr,
            resumed_at_step,
            moments_reset,
        });
        if self.recoveries.len() >= recovery::MAX_RECOVERIES || self.config.lr < recovery::MIN_LR {
            return Err(Error::Config(format!(
                "training keeps diverging ({} recoveries, the last at step {step}: {}; \
                 learning rate now {}); try a lower --lr (the page: a lower learning rate), \
                 a smaller beta, or check the data",
                self.recoveries.len(),
                self.recoveries.last().map_or("", |r| r.reason.as_str()),
                self.config.lr
            )));
        }
        Ok(())
    }

    /// The last recovery in words (for the page's note), if any.
    pub fn last_recovery(&self) -> Option<String> {
        self.recoveries.last().map(|r| r.to_string())
    }

    /// The state a [`Need::Restore`] (or a switch of backend) loads.
    pub fn resume_state(&self) -> &TrainState {
        &self.ring.newest().state
    }

    /// The step the run continues from after a restore or a switch of backend.
    pub fn resume_step(&self) -> u32 {
        self.ring.newest().state.steps
    }

    /// Records the state read back for a [`Need::Snapshot`] as the newest resume point
    /// and returns [`Need::Nothing`]; or, when the state is unsound (a non-finite or
    /// huge parameter, statistic or moment, see [`recovery::state_is_sound`]: a check
    /// of the parameters that the losses may not have revealed), recovers as from a
    /// divergence and returns [`Need::Restore`] (an error after too many recoveries).
    pub fn set_snapshot(&mut self, mut state: TrainState) -> Result<Need> {
        if !recovery::state_is_sound(&state) {
            self.recover(
                self.steps,
                format!(
                    "non-finite or huge values (above {:e}) in the parameters or optimizer state",
                    recovery::HUGE
                ),
            )?;
            return Ok(Need::Restore);
        }
        state.steps = self.steps;
        state.epochs = self.epoch;
        self.spare = Spare(self.ring.push(self.point(state)).map(|p| p.state));
        Ok(Need::Nothing)
    }

    /// A state no longer needed (dropped from the ring), for [`Backend::save_into`](crate::model::Backend::save_into)
    /// to reuse, if there is one.
    pub fn take_spare(&mut self) -> Option<TrainState> {
        self.spare.0.take()
    }

    /// `state` as a resume point at the current position.
    fn point(&self, state: TrainState) -> ResumePoint {
        ResumePoint {
            state,
            position: self.position,
            sums: self.sums,
            watch: self.watch.clone(),
            restored: false,
        }
    }

    /// Makes `state` (the run's current state, moving to another backend) the only
    /// resume point: the run continues from it, nothing is replayed.
    fn continue_from(&mut self, mut state: TrainState) {
        state.steps = self.steps;
        state.epochs = self.epoch;
        let p = self.point(state);
        self.ring.reset(p);
        self.snapshot_point = self.steps;
    }

    /// Rewinds to the newest resume point (after its state was loaded into a new
    /// backend, or before a restore): the steps since are taken again. Finished epochs
    /// before it stay in the history.
    fn rewind(&mut self) {
        let p = self.ring.newest();
        let epoch = p.state.epochs;
        let (steps, position, sums, watch) = (p.state.steps, p.position, p.sums, p.watch.clone());
        self.history.retain(|r| r.epoch < epoch);
        if epoch != self.epoch {
            self.order = rng::shuffle(self.config.seed, epoch, self.cells.len());
        }
        self.epoch = epoch;
        self.steps = steps;
        self.position = position;
        self.sums = sums;
        self.watch = watch;
        self.snapshot_point = steps;
        self.epoch_started = (self.clock)();
    }

    /// Changes the learning rate from the next step on.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!(
                "the learning rate must be a positive number, not {lr}"
            )));
        }
        self.config.lr = lr;
        Ok(())
    }

    /// Changes the maximum KL weight (beta) from the next step on.
    pub fn set_beta(&mut self, beta: f32) -> Result<()> {
        if !(beta.is_finite() && beta >= 0.0) {
            return Err(Error::Config(format!(
                "beta must be a non-negative number, not {beta}"
            )));
        }
        self.config.max_kl_weight = beta;
        Ok(())
    }
}
