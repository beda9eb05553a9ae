//! The training loop, independent of the backend: minibatch order, KL warm-up, Adam
//! settings, step-by-step control for the page (one step, N steps, change lr or beta
//! mid-run), progress, checkpoints, and a guard against non-finite losses.
//!
//! [`Schedule`] is the loop's bookkeeping without a backend; [`Trainer`] drives it with
//! any [`Backend`] in one async loop ([`Trainer::step_group_async`]) that the page
//! awaits on the GPU and the command line and tests run through [`crate::block_on`].

use crate::block_on;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::{Backend, Minibatch, Params, StepHyper, StepLosses, TrainState};
use crate::rng;
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// What the guard did, reported to the user.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recovery {
    /// The step at which a non-finite value appeared.
    pub step: u32,
    /// The learning rate after lowering it.
    pub new_lr: f32,
}

/// A state read back from the backend and where in its epoch it was taken.
#[derive(Debug, Clone)]
struct ResumePoint {
    state: TrainState,
    position: usize,
    sums: (f64, f64, usize),
}

/// Steps recorded back to back before their losses are read (GPU backends queue them
/// without waiting in between).
pub const GROUP: usize = 8;

/// What the backend must do after [`Schedule::apply`], before the next group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing.
    Nothing,
    /// A step was not finite: load [`Schedule::resume_state`] into the backend.
    Restore,
    /// Read the state back and hand it to [`Schedule::set_snapshot`] (end of an epoch,
    /// or `snapshot_every` steps since the last one).
    Snapshot,
}

/// The training loop without a backend ("sans-IO"): minibatch order, KL warm-up, step
/// and epoch bookkeeping, recovery and snapshots. [`Trainer::step_group_async`] drives
/// it with a [`Backend`]: [`Schedule::plan`], train the planned minibatches,
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
    /// Every recovery from a non-finite step.
    pub recoveries: Vec<Recovery>,
    last_good: ResumePoint,
    /// Also read the state back every this many steps within an epoch (0: only at the
    /// end of each epoch). The state read back is where a recovery or a switch to
    /// another backend continues from (see [`Trainer::switch_backend`]).
    pub snapshot_every: u32,
    /// Minibatches and hyper-parameters of the planned group (reused: no allocation
    /// per step once the largest group has been seen).
    batches: Vec<Minibatch>,
    hypers: Vec<StepHyper>,
    ends: Vec<usize>,
    rows: Vec<usize>,
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
            last_good: ResumePoint {
                state,
                position: 0,
                sums: (0.0, 0.0, 0),
            },
            snapshot_every: 0,
            batches: Vec::new(),
            hypers: Vec::new(),
            ends: Vec::new(),
            rows: Vec::new(),
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
        let mut pos = self.position;
        while self.hypers.len() < k.max(1) {
            let end = (pos + self.config.batch_size).min(n);
            self.rows.clear();
            self.rows
                .extend(self.order[pos..end].iter().map(|&i| self.cells[i as usize]));
            let i = self.hypers.len();
            if self.batches.len() <= i {
                self.batches.push(Minibatch::default());
            }
            self.batches[i].gather_into(m, &self.batch_codes, &self.rows);
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
            if !l.finite || !l.loss.is_finite() {
                // Back to the last good state with a lower learning rate, reported.
                self.steps = self.last_good.state.steps;
                self.position = self.last_good.position;
                self.sums = self.last_good.sums;
                self.config.lr *= 0.5;
                self.recoveries.push(Recovery {
                    step: hyper.step,
                    new_lr: self.config.lr,
                });
                out.push((l, None));
                if self.recoveries.len() > 20 {
                    return Err(Error::Config(format!(
                        "training keeps producing non-finite values (20 recoveries, learning rate now {}); \
                         try a lower --lr or check the data",
                        self.config.lr
                    )));
                }
                return Ok((out, Need::Restore));
            }
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
                return Ok((out, Need::Snapshot));
            }
        }
        let due = self.snapshot_every > 0
            && self.steps - self.last_good.state.steps >= self.snapshot_every;
        Ok((out, if due { Need::Snapshot } else { Need::Nothing }))
    }

    /// The state a [`Need::Restore`] (or a switch of backend) loads.
    pub fn resume_state(&self) -> &TrainState {
        &self.last_good.state
    }

    /// The step the run continues from after a restore or a switch of backend.
    pub fn resume_step(&self) -> u32 {
        self.last_good.state.steps
    }

    /// Records the state read back for a [`Need::Snapshot`] as the new resume point.
    pub fn set_snapshot(&mut self, mut state: TrainState) {
        state.steps = self.steps;
        state.epochs = self.epoch;
        self.last_good = ResumePoint {
            state,
            position: self.position,
            sums: self.sums,
        };
    }

    /// Rewinds to the resume point (after its state was loaded into a new backend):
    /// the steps since are taken again. Finished epochs stay in the history.
    fn rewind(&mut self) {
        let epoch = self.last_good.state.epochs;
        self.history.retain(|r| r.epoch < epoch);
        self.order = rng::shuffle(self.config.seed, epoch, self.cells.len());
        self.epoch = epoch;
        self.steps = self.last_good.state.steps;
        self.position = self.last_good.position;
        self.sums = self.last_good.sums;
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

/// A training run over a matrix with a [`Backend`], driven step by step or epoch by
/// epoch. Derefs to its [`Schedule`] (config, history, epoch, ...).
///
/// The loop is written once, async ([`Trainer::step_group_async`],
/// [`Trainer::run_steps_async`]): the page awaits it on the GPU backend. The
/// synchronous methods ([`Trainer::step_group`], [`Trainer::step`],
/// [`Trainer::run_epochs`], [`Trainer::run_steps`]) run the same code through
/// [`crate::block_on`]: natively for any backend, on wasm32 for the CPU backend (whose
/// futures are ready at once).
pub struct Trainer<B: Backend> {
    /// The backend doing the arithmetic.
    pub backend: B,
    /// The loop's bookkeeping.
    pub schedule: Schedule,
}

impl<B: Backend> std::ops::Deref for Trainer<B> {
    type Target = Schedule;
    fn deref(&self) -> &Schedule {
        &self.schedule
    }
}

impl<B: Backend> std::ops::DerefMut for Trainer<B> {
    fn deref_mut(&mut self) -> &mut Schedule {
        &mut self.schedule
    }
}

/// What each step of a group reported: its losses and, when it closed an epoch, that
/// epoch's record.
pub type StepReports = Vec<(StepLosses, Option<EpochRecord>)>;

impl<B: Backend> Trainer<B> {
    /// A trainer over the cells `cells` of a matrix (the training set), starting from
    /// `state`. `batch_codes` gives each cell's batch (empty: one batch). `clock` returns
    /// seconds (the command line passes a monotonic clock, the page `Date.now()` / 1000).
    pub async fn new_async(
        mut backend: B,
        config: TrainConfig,
        state: TrainState,
        cells: Vec<usize>,
        batch_codes: Vec<u32>,
        clock: fn() -> f64,
    ) -> Result<Trainer<B>> {
        let schedule = Schedule::new(config, state, cells, batch_codes, clock)?;
        backend.load(schedule.resume_state()).await?;
        Ok(Trainer { backend, schedule })
    }

    /// [`Trainer::new_async`], blocking.
    pub fn new(
        backend: B,
        config: TrainConfig,
        state: TrainState,
        cells: Vec<usize>,
        batch_codes: Vec<u32>,
        clock: fn() -> f64,
    ) -> Result<Trainer<B>> {
        block_on(Trainer::new_async(
            backend,
            config,
            state,
            cells,
            batch_codes,
            clock,
        ))
    }

    /// Up to `k` steps (stopping at the end of the epoch or at a non-finite step),
    /// queued in one group on backends that can (see [`Backend::train_steps`]), then
    /// what the schedule asks: a restore after a non-finite step, a snapshot at the end
    /// of an epoch or every [`Schedule::snapshot_every`] steps. The one training loop.
    pub async fn step_group_async(&mut self, m: &CountMatrix, k: usize) -> Result<StepReports> {
        let (batches, hypers) = self.schedule.plan(m, k);
        let losses = self.backend.train_steps(batches, hypers).await?;
        let (out, need) = self.schedule.apply(&losses)?;
        match need {
            Need::Nothing => {}
            Need::Restore => self.backend.load(self.schedule.resume_state()).await?,
            Need::Snapshot => {
                let state = self.backend.save().await?;
                self.schedule.set_snapshot(state);
            }
        }
        Ok(out)
    }

    /// Up to `n` steps (fewer when training is done), in groups of up to [`GROUP`];
    /// returns every step's losses with the epoch records closed on the way.
    pub async fn run_steps_async(&mut self, m: &CountMatrix, n: u32) -> Result<StepReports> {
        let mut done = Vec::new();
        let mut left = n as usize;
        while left > 0 && !self.finished() {
            let out = self.step_group_async(m, left.min(GROUP)).await?;
            left = left.saturating_sub(out.len());
            done.extend(out);
        }
        Ok(done)
    }

    /// [`Trainer::step_group_async`], blocking.
    pub fn step_group(&mut self, m: &CountMatrix, k: usize) -> Result<StepReports> {
        block_on(self.step_group_async(m, k))
    }

    /// One optimisation step on the next minibatch. Returns the step's losses and, when
    /// the step closed an epoch, that epoch's record.
    pub fn step(&mut self, m: &CountMatrix) -> Result<(StepLosses, Option<EpochRecord>)> {
        let mut out = self.step_group(m, 1)?;
        out.pop()
            .ok_or_else(|| Error::Config("internal: a step returned no losses".into()))
    }

    /// Runs until `n` more epochs have finished (or training is done), calling
    /// `progress` after each epoch.
    pub fn run_epochs(
        &mut self,
        m: &CountMatrix,
        n: u32,
        mut progress: impl FnMut(&EpochRecord),
    ) -> Result<()> {
        let target = (self.epoch + n).min(self.config.epochs);
        while self.epoch < target {
            for (_, r) in self.step_group(m, GROUP)? {
                if let Some(r) = r {
                    progress(&r);
                }
            }
        }
        Ok(())
    }

    /// Runs up to `n` steps (stopping early when training is done); returns the epoch
    /// records finished on the way ([`Trainer::run_steps_async`], blocking). The page
    /// calls this once per animation frame on the CPU backend.
    pub fn run_steps(&mut self, m: &CountMatrix, n: u32) -> Result<Vec<EpochRecord>> {
        let out = block_on(self.run_steps_async(m, n))?;
        Ok(out.into_iter().filter_map(|(_, r)| r).collect())
    }

    /// Moves the run to another backend (the CPU after a GPU error or device loss): the
    /// new backend starts from the last state read back (the end of the last epoch, or
    /// the last snapshot within it) and the steps since are taken again. Every random
    /// draw and the minibatch order are keyed by (seed, step, epoch), so the replayed
    /// steps compute what was lost: no training is lost. Finished epochs stay in the
    /// history; settings changed mid-run (lr, beta) are kept.
    pub fn switch_backend<C: Backend>(self, backend: C) -> Result<Trainer<C>> {
        Trainer::resume(backend, self.schedule)
    }

    /// A trainer continuing `schedule` (from another backend) on `backend`, from the
    /// schedule's last state read back (see [`Trainer::switch_backend`]).
    pub async fn resume_async(mut backend: B, mut schedule: Schedule) -> Result<Trainer<B>> {
        backend.load(schedule.resume_state()).await?;
        schedule.rewind();
        Ok(Trainer { backend, schedule })
    }

    /// [`Trainer::resume_async`], blocking.
    pub fn resume(backend: B, schedule: Schedule) -> Result<Trainer<B>> {
        block_on(Trainer::resume_async(backend, schedule))
    }

    /// Continues `schedule` on `backend` from `state`, the run's current state (a CPU
    /// run moving to the GPU mid-epoch: its position in the epoch, history and settings
    /// carry over, nothing is replayed).
    pub async fn continue_async(
        mut backend: B,
        mut schedule: Schedule,
        state: TrainState,
    ) -> Result<Trainer<B>> {
        schedule.set_snapshot(state);
        backend.load(schedule.resume_state()).await?;
        Ok(Trainer { backend, schedule })
    }

    /// The current state (a checkpoint).
    pub async fn checkpoint_async(&mut self) -> Result<TrainState> {
        let mut s = self.backend.save().await?;
        s.steps = self.steps();
        s.epochs = self.epoch();
        Ok(s)
    }

    /// [`Trainer::checkpoint_async`], blocking.
    pub fn checkpoint(&mut self) -> Result<TrainState> {
        block_on(self.checkpoint_async())
    }

    /// The current parameters (read back; the GPU reads no Adam moments for this).
    pub async fn params_async(&mut self) -> Result<Params> {
        self.backend.params().await
    }

    /// [`Trainer::params_async`], blocking.
    pub fn params(&mut self) -> Result<Params> {
        block_on(self.params_async())
    }
}
