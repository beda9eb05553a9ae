//! Training in the page on the GPU: a `Trainer<GpuBackend>` shared with the promise that runs
//! its steps, and a view of the run (status, history, parameters last read back) that
//! the page's synchronous calls read while a group of steps is in flight. On a GPU
//! error the run is handed to the CPU backend from its last state read back
//! ([`Trainer::switch_backend`]); the session picks it up with [`GpuRun::take_fallback`].

use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::{CpuBackend, GpuBackend, Params, StepLosses, TrainState};
use crate::train::{EpochRecord, Schedule, TrainConfig, Trainer};
use std::cell::RefCell;

/// How often (ms) the parameters are read back while training runs.
const PARAMS_EVERY_MS: f64 = 150.0;

/// What the page shows of a GPU run, as of the last finished group of steps.
#[derive(Clone)]
pub struct GpuView {
    /// Epochs finished.
    pub epoch: u32,
    /// Steps taken.
    pub steps: u32,
    /// [`Schedule::version`] of the run when `params` were read back.
    pub version: u64,
    /// Whether the configured epochs are done.
    pub finished: bool,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The settings (lr and beta as last set).
    pub config: TrainConfig,
    /// Losses of the last finite step, with its KL weight.
    pub last: Option<(StepLosses, f32)>,
    /// The parameters read back after the last group.
    pub params: Params,
}

/// A GPU training run owned by the page's session.
pub struct GpuRun {
    trainer: RefCell<Option<Trainer<GpuBackend>>>,
    view: RefCell<GpuView>,
    matrix: CountMatrix,
    pending: RefCell<(Option<f32>, Option<f32>)>,
    fallback: RefCell<Option<(Trainer<CpuBackend>, String)>>,
    /// Set when the run could be neither continued on the GPU nor handed to the CPU.
    failed: RefCell<Option<String>>,
    /// When the parameters were last read back (ms, `Date.now()`).
    last_read: std::cell::Cell<f64>,
    /// The adapter, as the browser describes it.
    pub adapter: String,
}

impl GpuRun {
    /// Opens the browser's WebGPU adapter, compiles the kernels and uploads `state`, the
    /// current state of the run `schedule` describes (a CPU run moving to the GPU: its
    /// position in the epoch, history and settings carry over); `matrix` is its data.
    pub async fn start(
        matrix: CountMatrix,
        schedule: Schedule,
        state: TrainState,
    ) -> Result<GpuRun> {
        let backend = GpuBackend::create().await?;
        let a = backend.context().adapter_summary();
        let adapter = [a.name.as_str(), a.driver.as_str(), a.backend.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" · ");
        let params = state.params.clone();
        let mut trainer = Trainer::continue_async(backend, schedule, state).await?;
        // Read the whole state back every 25 steps too, so a fallback replays little.
        trainer.schedule.snapshot_every = 25;
        let s = &trainer.schedule;
        let view = GpuView {
            epoch: s.epoch(),
            steps: s.steps(),
            version: s.version(),
            finished: s.finished(),
            history: s.history.clone(),
            config: s.config.clone(),
            last: None,
            params,
        };
        Ok(GpuRun {
            trainer: RefCell::new(Some(trainer)),
            view: RefCell::new(view),
            matrix,
            pending: RefCell::new((None, None)),
            fallback: RefCell::new(None),
            failed: RefCell::new(None),
            last_read: std::cell::Cell::new(0.0),
            adapter,
        })
    }

    /// Reads the view.
    pub fn with_view<T>(&self, f: impl FnOnce(&GpuView) -> T) -> T {
        f(&self.view.borrow())
    }

    /// Whether a group of steps is in flight.
    pub fn busy(&self) -> bool {
        self.trainer.borrow().is_none()
            && self.fallback.borrow().is_none()
            && self.failed.borrow().is_none()
    }

    /// Changes the learning rate from the next group of steps on.
    pub fn set_lr(&self, lr: f32) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(Error::Config(format!(
                "the learning rate must be a positive number, not {lr}"
            )));
        }
        self.pending.borrow_mut().0 = Some(lr);
        self.view.borrow_mut().config.lr = lr;
        Ok(())
    }

    /// Changes beta (the maximum KL weight) from the next group of steps on.
    pub fn set_beta(&self, beta: f32) -> Result<()> {
        if !(beta.is_finite() && beta >= 0.0) {
            return Err(Error::Config(format!(
                "beta must be a non-negative number, not {beta}"
            )));
        }
        self.pending.borrow_mut().1 = Some(beta);
        self.view.borrow_mut().config.max_kl_weight = beta;
        Ok(())
    }

    /// Fault injection for the page's tests: the device is lost when step `step` begins
    /// (see [`GpuBackend::lose_device_at_step`]). Ignored while steps are in flight.
    pub fn lose_device_at_step(&self, step: u32) {
        if let Some(t) = self.trainer.borrow_mut().as_mut() {
            t.backend.lose_device_at_step(step);
        }
    }

    /// The CPU trainer that took over after a GPU error, with the error, once.
    pub fn take_fallback(&self) -> Option<(Trainer<CpuBackend>, String)> {
        self.fallback.borrow_mut().take()
    }

    /// Runs up to `n` steps on the GPU (queued in groups), then reads the parameters
    /// back into the view. A GPU error hands the run to the CPU backend (see
    /// [`GpuRun::take_fallback`]) and is not an error here; other errors are.
    pub async fn step(&self, n: u32) -> Result<()> {
        if let Some(why) = self.failed.borrow().as_ref() {
            return Err(Error::Gpu(why.clone()));
        }
        let mut trainer = self
            .trainer
            .borrow_mut()
            .take()
            .ok_or_else(|| Error::Config("a group of GPU steps is already running".into()))?;
        let (lr, beta) = std::mem::take(&mut *self.pending.borrow_mut());
        let mut applied = Ok(());
        if let Some(lr) = lr {
            applied = trainer.schedule.set_lr(lr);
        }
        if let Some(beta) = beta {
            applied = applied.and(trainer.schedule.set_beta(beta));
        }
        let outcome = match applied {
            Ok(()) => self.run(&mut trainer, n).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {
                *self.trainer.borrow_mut() = Some(trainer);
                Ok(())
            }
            Err(Error::Gpu(why)) => match trainer.switch_backend(CpuBackend::new()) {
                Ok(cpu) => {
                    *self.fallback.borrow_mut() = Some((cpu, why));
                    Ok(())
                }
                Err(e) => {
                    let msg = format!("{why}; continuing on the CPU failed too: {e}");
                    *self.failed.borrow_mut() = Some(msg.clone());
                    Err(Error::Gpu(msg))
                }
            },
            Err(e) => {
                *self.trainer.borrow_mut() = Some(trainer);
                Err(e)
            }
        }
    }

    async fn run(&self, trainer: &mut Trainer<GpuBackend>, n: u32) -> Result<()> {
        let out = trainer.run_steps_async(&self.matrix, n).await?;
        // Parameters stay on the GPU; a copy comes back for the map and the probe at
        // most every PARAMS_EVERY_MS while training runs, and after single steps (n <= 1:
        // "1 step", or 0 when the page pauses and wants the latest).
        let now = js_sys::Date::now();
        let due =
            n <= 1 || trainer.schedule.finished() || now - self.last_read.get() >= PARAMS_EVERY_MS;
        let params = if due {
            self.last_read.set(now);
            Some(trainer.params_async().await?)
        } else {
            None
        };
        let s = &trainer.schedule;
        let mut v = self.view.borrow_mut();
        v.epoch = s.epoch();
        v.steps = s.steps();
        v.finished = s.finished();
        if v.history.len() != s.history.len() {
            v.history = s.history.clone();
        }
        v.config = s.config.clone();
        if let Some(&(l, _)) = out.iter().rev().find(|(l, _)| l.finite) {
            // The epoch of the last step: the previous one when it closed an epoch.
            let closed = out.last().is_some_and(|(_, r)| r.is_some());
            let epoch = s.epoch() - u32::from(closed && s.epoch() > 0);
            v.last = Some((l, s.config.kl_weight(epoch)));
        }
        if let Some(p) = params {
            v.params = p;
            // Caches of latent means and decoders key on this: it moves with the params.
            v.version = s.version();
        }
        Ok(())
    }
}
