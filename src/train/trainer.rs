//! [`Trainer`]: a [`Schedule`] driven with a [`Backend`], the one training loop (async,
//! with blocking wrappers), checkpoints and the switch to another backend.

use super::{EpochRecord, Need, Schedule, TrainConfig, GROUP};
use crate::block_on;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::{Backend, Params, StepLosses, TrainState};

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
                let state = match self.schedule.take_spare() {
                    Some(spare) => self.backend.save_into(spare).await?,
                    None => self.backend.save().await?,
                };
                if self.schedule.set_snapshot(state)? == Need::Restore {
                    self.backend.load(self.schedule.resume_state()).await?;
                }
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

    /// A trainer running `schedule` (as built, e.g. [`Schedule::resume_from`]) on
    /// `backend`, from the schedule's resume state: nothing is rewound or replayed.
    pub fn from_schedule(mut backend: B, schedule: Schedule) -> Result<Trainer<B>> {
        block_on(backend.load(schedule.resume_state()))?;
        Ok(Trainer { backend, schedule })
    }

    /// Continues `schedule` on `backend` from `state`, the run's current state (a CPU
    /// run moving to the GPU mid-epoch: its position in the epoch, history and settings
    /// carry over, nothing is replayed).
    pub async fn continue_async(
        mut backend: B,
        mut schedule: Schedule,
        state: TrainState,
    ) -> Result<Trainer<B>> {
        schedule.continue_from(state);
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
