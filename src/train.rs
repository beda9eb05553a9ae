//! The training loop, independent of the backend: minibatch order, KL warm-up, Adam
//! settings, step-by-step control for the page (one step, N steps, change lr or beta
//! mid-run), progress, checkpoints, and a guard against non-finite losses.

use crate::backend::{Backend, StepHyper, StepLosses, TrainState};
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::{Minibatch, Params};
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

/// A training run over a matrix, driven step by step or epoch by epoch.
pub struct Trainer<B: Backend> {
    /// The backend doing the arithmetic.
    pub backend: B,
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
    /// end of each epoch). The state read back is where a switch to another backend
    /// continues from (see [`Trainer::switch_backend`]).
    pub snapshot_every: u32,
    minibatch: Minibatch,
    /// The current minibatch's cells (reused: no allocation per step).
    rows: Vec<usize>,
    clock: fn() -> f64,
}

impl<B: Backend> Trainer<B> {
    /// A trainer over the cells `cells` of a matrix (the training set), starting from
    /// `state`. `batch_codes` gives each cell's batch (empty: one batch). `clock` returns
    /// seconds (the command line passes a monotonic clock, the page `performance.now`).
    pub fn new(
        mut backend: B,
        config: TrainConfig,
        state: TrainState,
        cells: Vec<usize>,
        batch_codes: Vec<u32>,
        clock: fn() -> f64,
    ) -> Result<Trainer<B>> {
        if cells.is_empty() {
            return Err(Error::Config("no cells to train on".into()));
        }
        if config.batch_size == 0 {
            return Err(Error::Config("--batch-size must be at least 1".into()));
        }
        backend.load(&state)?;
        let steps = state.steps;
        let epoch = state.epochs;
        let mut t = Trainer {
            backend,
            config,
            order: Vec::new(),
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
            minibatch: Minibatch::default(),
            rows: Vec::new(),
            clock,
        };
        t.order = rng::shuffle(t.config.seed, t.epoch, t.cells.len());
        Ok(t)
    }

    /// Epochs finished so far.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// Whether the configured number of epochs is done.
    pub fn finished(&self) -> bool {
        self.epoch >= self.config.epochs
    }

    /// One optimisation step on the next minibatch. Returns the step's losses and, when
    /// the step closed an epoch, that epoch's record.
    pub fn step(&mut self, m: &CountMatrix) -> Result<(StepLosses, Option<EpochRecord>)> {
        let n = self.cells.len();
        let end = (self.position + self.config.batch_size).min(n);
        // scvi-tools drops a last minibatch of fewer than 3 cells (batch norm needs rows).
        self.rows.clear();
        self.rows.extend(
            self.order[self.position..end]
                .iter()
                .map(|&i| self.cells[i as usize]),
        );
        self.minibatch.gather_into(m, &self.batch_codes, &self.rows);
        let kl_weight = self.config.kl_weight(self.epoch);
        let hyper = StepHyper {
            step: self.steps,
            seed: self.config.seed,
            lr: self.config.lr,
            kl_weight,
            adam_eps: self.config.adam_eps,
            weight_decay: self.config.weight_decay,
        };
        let losses = self.backend.train_step(&self.minibatch, &hyper)?;
        if !losses.finite || !losses.loss.is_finite() {
            // Restore the last good state, lower the learning rate, report.
            self.backend.load(&self.last_good.state)?;
            self.steps = self.last_good.state.steps;
            self.position = self.last_good.position;
            self.sums = self.last_good.sums;
            self.config.lr *= 0.5;
            self.recoveries.push(Recovery {
                step: hyper.step,
                new_lr: self.config.lr,
            });
            if self.recoveries.len() > 20 {
                return Err(Error::Config(format!(
                    "training keeps producing non-finite values (20 recoveries, learning rate now {}); \
                     try a lower --lr or check the data",
                    self.config.lr
                )));
            }
            return Ok((losses, None));
        }
        self.steps += 1;
        let b = self.rows.len();
        self.sums.0 += losses.reconstruction as f64 * b as f64;
        self.sums.1 += losses.kl as f64 * b as f64;
        self.sums.2 += b;
        self.position = end;
        let remaining = n - self.position;
        let mut record = None;
        if self.position >= n || (remaining < 3 && remaining < self.config.batch_size) {
            let now = (self.clock)();
            let cells = self.sums.2.max(1) as f64;
            let r = EpochRecord {
                epoch: self.epoch,
                elbo: -(self.sums.0 + self.sums.1) / cells,
                reconstruction: self.sums.0 / cells,
                kl: self.sums.1 / cells,
                kl_weight,
                seconds: now - self.epoch_started,
            };
            self.history.push(r.clone());
            record = Some(r);
            self.epoch += 1;
            self.position = 0;
            self.sums = (0.0, 0.0, 0);
            self.epoch_started = now;
            self.order = rng::shuffle(self.config.seed, self.epoch, n);
            self.snapshot()?;
        } else if self.snapshot_every > 0
            && (self.steps - self.last_good.state.steps) >= self.snapshot_every
        {
            self.snapshot()?;
        }
        Ok((losses, record))
    }

    /// Reads the state back as the new resume point.
    fn snapshot(&mut self) -> Result<()> {
        let mut state = self.backend.save()?;
        state.steps = self.steps;
        state.epochs = self.epoch;
        self.last_good = ResumePoint {
            state,
            position: self.position,
            sums: self.sums,
        };
        Ok(())
    }

    /// The step the run continues from after [`Trainer::switch_backend`] (the last state
    /// read back).
    pub fn resume_step(&self) -> u32 {
        self.last_good.state.steps
    }

    /// Moves the run to another backend (the CPU after a GPU error or device loss): the
    /// new backend starts from the last state read back (the end of the last epoch, or
    /// the last snapshot within it) and the steps since are taken again. Every random
    /// draw and the minibatch order are keyed by (seed, step, epoch), so the replayed
    /// steps compute what was lost: no training is lost. Finished epochs stay in the
    /// history; settings changed mid-run (lr, beta) are kept.
    pub fn switch_backend<C: Backend>(self, mut backend: C) -> Result<Trainer<C>> {
        let resume = self.last_good;
        backend.load(&resume.state)?;
        let epoch = resume.state.epochs;
        let mut history = self.history;
        history.retain(|r| r.epoch < epoch);
        let order = rng::shuffle(self.config.seed, epoch, self.cells.len());
        Ok(Trainer {
            backend,
            config: self.config,
            order,
            cells: self.cells,
            batch_codes: self.batch_codes,
            position: resume.position,
            epoch,
            steps: resume.state.steps,
            sums: resume.sums,
            epoch_started: (self.clock)(),
            history,
            recoveries: self.recoveries,
            last_good: resume,
            snapshot_every: self.snapshot_every,
            minibatch: self.minibatch,
            rows: self.rows,
            clock: self.clock,
        })
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
            if let (_, Some(r)) = self.step(m)? {
                progress(&r);
            }
        }
        Ok(())
    }

    /// Runs up to `n` steps (stopping early when training is done); returns the epoch
    /// records finished on the way. The page calls this once per animation frame.
    pub fn run_steps(&mut self, m: &CountMatrix, n: u32) -> Result<Vec<EpochRecord>> {
        let mut done = Vec::new();
        for _ in 0..n {
            if self.finished() {
                break;
            }
            if let (_, Some(r)) = self.step(m)? {
                done.push(r);
            }
        }
        Ok(done)
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

    /// The current state (a checkpoint).
    pub fn checkpoint(&mut self) -> Result<TrainState> {
        let mut s = self.backend.save()?;
        s.steps = self.steps;
        s.epochs = self.epoch;
        Ok(s)
    }

    /// The current parameters.
    pub fn params(&mut self) -> Result<Params> {
        Ok(self.backend.save()?.params)
    }
}
