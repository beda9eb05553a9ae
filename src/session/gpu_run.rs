//! A training run on the GPU that a session owns while its steps are in flight: the
//! browser cannot block on the GPU, so the trainer is moved into the future that runs a
//! group of steps and moved back when the group is done. Meanwhile the session reads a
//! [`GpuView`] (status, history, the parameters last read back), so the map and the
//! probe keep working. One state machine ([`GpuState`]) says where the trainer is; on a
//! GPU error the run is handed to the CPU backend from its last state read back, without
//! losing training ([`Trainer::switch_backend`]).

use crate::error::{Error, Result};
use crate::model::{CpuBackend, GpuBackend, GpuFault, Params, StepLosses, TrainState};
use crate::pipeline::Prepared;
use crate::train::{EpochRecord, Recovery, Schedule, ScheduleRecord, TrainConfig, Trainer};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// How often (seconds) the parameters are read back while training runs.
const PARAMS_EVERY_S: f64 = 0.15;

/// Steps between whole-state snapshots (what a fallback to the CPU replays from).
const SNAPSHOT_EVERY: u32 = 25;

/// What the session shows of a GPU run, as of the last finished group of steps.
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
    /// The settings (lr and beta as last applied).
    pub config: TrainConfig,
    /// Losses of the last finite step, with its KL weight.
    pub last: Option<(StepLosses, f32)>,
    /// The parameters read back after the last group.
    pub params: Params,
    /// Every recovery from a divergence so far.
    pub recoveries: Vec<Recovery>,
    /// The whole state last read back (by a read-back with no steps, `step(0)`, or at the
    /// end of training), with the [`Schedule::version`] and record it was read at.
    pub saved: Option<Rc<(u64, TrainState, ScheduleRecord)>>,
    /// One training step's kernels in recording order (empty until a step ran).
    pub step_kernels: Vec<crate::backend::gpu::kernels::KernelRun>,
}

/// Where the run's trainer is.
pub enum GpuState {
    /// Ready for the next group of steps.
    Ready(Box<Trainer<GpuBackend>>),
    /// A group of steps is in flight (the trainer is inside its future).
    Stepping,
    /// The GPU failed; the CPU trainer continues from the last state read back.
    FellBack(Box<Trainer<CpuBackend>>, String),
    /// The GPU failed and the CPU could not take over either.
    Failed(String),
}

/// A GPU training run.
pub struct GpuRun {
    state: RefCell<GpuState>,
    view: RefCell<GpuView>,
    data: Rc<Prepared>,
    /// lr and beta the session set while a group was in flight: applied before the next.
    pending: Cell<Option<(f32, f32)>>,
    /// When the parameters were last read back (seconds, `clock`).
    last_read: Cell<f64>,
    clock: fn() -> f64,
    /// The adapter, as wgpu describes it.
    pub adapter: String,
}

impl GpuRun {
    /// Opens a GPU adapter, compiles the kernels and uploads `state`, the current state
    /// of the run `schedule` describes (a CPU run moving to the GPU: its position in the
    /// epoch, history and settings carry over). `clock` returns seconds.
    pub async fn start(
        data: Rc<Prepared>,
        schedule: Schedule,
        state: TrainState,
        clock: fn() -> f64,
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
        trainer.schedule.snapshot_every = SNAPSHOT_EVERY;
        let s = &trainer.schedule;
        let view = GpuView {
            epoch: s.epoch(),
            steps: s.steps(),
            version: s.version(),
            finished: s.finished(),
            history: s.history.clone(),
            recoveries: s.recoveries.clone(),
            config: s.config.clone(),
            last: None,
            params,
            saved: None,
            step_kernels: Vec::new(),
        };
        Ok(GpuRun {
            state: RefCell::new(GpuState::Ready(Box::new(trainer))),
            view: RefCell::new(view),
            data,
            pending: Cell::new(None),
            last_read: Cell::new(f64::NEG_INFINITY),
            clock,
            adapter,
        })
    }

    /// Reads the view.
    pub fn with_view<T>(&self, f: impl FnOnce(&GpuView) -> T) -> T {
        f(&self.view.borrow())
    }

    /// Sets lr and beta (already checked by the session): at once when no group is in
    /// flight, else before the next group.
    pub fn set_hyper(&self, lr: f32, beta: f32) -> Result<()> {
        if let GpuState::Ready(t) = &mut *self.state.borrow_mut() {
            t.schedule.set_lr(lr)?;
            t.schedule.set_beta(beta)?;
        } else {
            self.pending.set(Some((lr, beta)));
        }
        let mut v = self.view.borrow_mut();
        v.config.lr = lr;
        v.config.max_kl_weight = beta;
        Ok(())
    }

    /// Fault injection for tests: the device is lost when step `step` begins (see
    /// [`GpuBackend::lose_device_at_step`]). Ignored while steps are in flight.
    pub fn lose_device_at_step(&self, step: u32) {
        self.fault_at_step(step, GpuFault::DeviceLost);
    }

    /// Fault injection for tests: `fault` at step `step` (see
    /// [`GpuBackend::fault_at_step`]). Ignored while steps are in flight.
    pub fn fault_at_step(&self, step: u32, fault: GpuFault) {
        if let GpuState::Ready(t) = &mut *self.state.borrow_mut() {
            t.backend.fault_at_step(step, fault);
        }
    }

    /// The state to keep and the record that goes with it: the whole state last read
    /// back when no step was taken since, else the newest snapshot (its steps are taken
    /// again when the run is resumed). lr and beta are the current ones.
    pub fn checkpoint(&self) -> Result<(TrainState, ScheduleRecord)> {
        match &*self.state.borrow() {
            GpuState::Ready(t) => {
                let s = &t.schedule;
                let (state, mut record) = match &self.view.borrow().saved {
                    Some(saved) if saved.0 == s.version() => (saved.1.clone(), saved.2.clone()),
                    _ => (s.resume_state().clone(), s.record_at_resume_point()),
                };
                record.config = s.config.clone();
                Ok((state, record))
            }
            GpuState::Stepping => Err(Error::Gpu(
                "GPU steps are in flight: keep the run after them".into(),
            )),
            GpuState::FellBack(..) | GpuState::Failed(_) => {
                Err(Error::Gpu("the run has left the GPU".into()))
            }
        }
    }

    /// After a GPU error: the CPU trainer that took over, with the error (once). After
    /// a failure the CPU could not take over: the error, as `Err`.
    pub fn take_fallback(
        &self,
    ) -> Option<std::result::Result<(Trainer<CpuBackend>, String), String>> {
        let mut state = self.state.borrow_mut();
        match std::mem::replace(&mut *state, GpuState::Stepping) {
            GpuState::FellBack(t, why) => Some(Ok((*t, why))),
            GpuState::Failed(why) => {
                *state = GpuState::Failed(why.clone());
                Some(Err(why))
            }
            other => {
                *state = other;
                None
            }
        }
    }

    /// Runs up to `n` steps on the GPU (queued in groups), then reads the parameters
    /// back into the view (at most every 150 ms while training runs, and always after
    /// a single step or at the end; `n == 0` and the end read the whole state, what
    /// [`GpuRun::checkpoint`] keeps). A GPU error hands the run to the CPU (see
    /// [`GpuRun::take_fallback`]) and is not an error here; other errors are.
    pub async fn step(&self, n: u32) -> Result<()> {
        let taken = std::mem::replace(&mut *self.state.borrow_mut(), GpuState::Stepping);
        let mut trainer = match taken {
            GpuState::Ready(t) => t,
            other => {
                let why = match &other {
                    GpuState::Stepping => "a group of GPU steps is already running".to_string(),
                    GpuState::FellBack(..) => "the run has moved to the CPU".to_string(),
                    GpuState::Failed(why) => why.clone(),
                    GpuState::Ready(_) => String::new(),
                };
                *self.state.borrow_mut() = other;
                return Err(Error::Gpu(why));
            }
        };
        let mut outcome = Ok(());
        if let Some((lr, beta)) = self.pending.take() {
            outcome = trainer
                .schedule
                .set_lr(lr)
                .and_then(|()| trainer.schedule.set_beta(beta));
        }
        if outcome.is_ok() {
            outcome = self.run(&mut trainer, n).await;
        }
        let (next, result) = match outcome {
            Ok(()) => (GpuState::Ready(trainer), Ok(())),
            Err(Error::Gpu(why)) => match trainer.switch_backend(CpuBackend::new()) {
                Ok(cpu) => (GpuState::FellBack(Box::new(cpu), why), Ok(())),
                Err(e) => {
                    let msg = format!("{why}; continuing on the CPU failed too: {e}");
                    (GpuState::Failed(msg.clone()), Err(Error::Gpu(msg)))
                }
            },
            Err(e) => (GpuState::Ready(trainer), Err(e)),
        };
        *self.state.borrow_mut() = next;
        result
    }

    async fn run(&self, trainer: &mut Trainer<GpuBackend>, n: u32) -> Result<()> {
        let out = trainer.run_steps_async(&self.data.matrix, n).await?;
        let now = (self.clock)();
        // A read-back with no steps (a pause's) and the end read the whole state (what
        // is kept); while training runs, the parameters only.
        let whole = n == 0 || trainer.schedule.finished();
        let due = whole || now - self.last_read.get() >= PARAMS_EVERY_S;
        let mut saved = None;
        let params = if !due {
            None
        } else if whole {
            self.last_read.set(now);
            let state = trainer.checkpoint_async().await?;
            let params = state.params.clone();
            let s = &trainer.schedule;
            saved = Some(Rc::new((s.version(), state, s.record())));
            Some(params)
        } else {
            self.last_read.set(now);
            Some(trainer.params_async().await?)
        };
        let s = &trainer.schedule;
        let mut v = self.view.borrow_mut();
        v.epoch = s.epoch();
        v.steps = s.steps();
        v.finished = s.finished();
        // A recovery may roll back past an epoch's end: compare the records, not only
        // their number.
        if v.history != s.history {
            v.history = s.history.clone();
        }
        if v.recoveries.len() != s.recoveries.len() {
            v.recoveries = s.recoveries.clone();
        }
        v.config = s.config.clone();
        if v.step_kernels.is_empty() {
            v.step_kernels = trainer.backend.step_kernels.clone();
        }
        if let Some(&(l, _)) = out.iter().rev().find(|(l, _)| l.finite) {
            // The epoch of the last step: the previous one when it closed an epoch.
            let closed = out.last().is_some_and(|(_, r)| r.is_some());
            let epoch = s.epoch() - u32::from(closed && s.epoch() > 0);
            v.last = Some((l, s.config.kl_weight(epoch)));
        }
        if saved.is_some() {
            v.saved = saved;
        }
        if let Some(p) = params {
            v.params = p;
            // Caches of latent means and decoders key on this: it moves with the params.
            v.version = s.version();
        }
        Ok(())
    }
}
