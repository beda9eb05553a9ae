//! The training loop on the GPU backend, asynchronous: what the page runs when WebGPU is
//! there (the browser cannot block on the GPU). It drives the same
//! [`Schedule`](crate::train::Schedule) as the synchronous [`Trainer`], so minibatch
//! order, KL warm-up, recovery and snapshots are the same code, and it hands the run to
//! the CPU backend on a GPU error without losing training ([`GpuTrainer::into_cpu`]).

use super::GpuBackend;
use crate::backend::cpu::CpuBackend;
use crate::backend::{StepLosses, TrainState};
use crate::data::CountMatrix;
use crate::error::Result;
use crate::model::{Minibatch, Params};
use crate::train::{EpochRecord, Need, Schedule, TrainConfig, Trainer, GROUP};

/// A run on the GPU: the schedule plus the backend holding the state.
pub struct GpuTrainer {
    /// The GPU backend.
    pub backend: GpuBackend,
    /// The loop's bookkeeping (config, history, epoch, ...).
    pub schedule: Schedule,
}

impl GpuTrainer {
    /// Uploads `state` and starts a schedule over `cells` (see [`Trainer::new`]).
    pub async fn new(
        mut backend: GpuBackend,
        config: TrainConfig,
        state: TrainState,
        cells: Vec<usize>,
        batch_codes: Vec<u32>,
        clock: fn() -> f64,
    ) -> Result<GpuTrainer> {
        let schedule = Schedule::new(config, state, cells, batch_codes, clock)?;
        backend.load_async(schedule.resume_state()).await?;
        Ok(GpuTrainer { backend, schedule })
    }

    /// Continues `schedule` (a CPU run's, say) on the GPU from `state`, the run's
    /// current state: position in the epoch, history and settings carry over.
    pub async fn continue_schedule(
        mut backend: GpuBackend,
        mut schedule: Schedule,
        state: TrainState,
    ) -> Result<GpuTrainer> {
        schedule.set_snapshot(state);
        backend.load_async(schedule.resume_state()).await?;
        Ok(GpuTrainer { backend, schedule })
    }

    /// Up to `k` steps queued as one group (see [`Trainer::step_group`]).
    pub async fn step_group(
        &mut self,
        m: &CountMatrix,
        k: usize,
    ) -> Result<Vec<(StepLosses, Option<EpochRecord>)>> {
        let (batches, hypers) = self.schedule.plan(m, k);
        let losses = self.backend.train_steps_async(batches, hypers).await?;
        let (out, need) = self.schedule.apply(&losses)?;
        match need {
            Need::Nothing => {}
            Need::Restore => {
                self.backend
                    .load_async(self.schedule.resume_state())
                    .await?
            }
            Need::Snapshot => {
                let state = self.backend.save_async().await?;
                self.schedule.set_snapshot(state);
            }
        }
        Ok(out)
    }

    /// Up to `n` steps (fewer when training is done), in groups of up to 8; returns
    /// every step's losses with the epoch records closed on the way.
    pub async fn run_steps(
        &mut self,
        m: &CountMatrix,
        n: u32,
    ) -> Result<Vec<(StepLosses, Option<EpochRecord>)>> {
        let mut done = Vec::new();
        let mut left = n as usize;
        while left > 0 && !self.schedule.finished() {
            let out = self.step_group(m, left.min(GROUP)).await?;
            left = left.saturating_sub(out.len());
            done.extend(out);
        }
        Ok(done)
    }

    /// The current parameters (read back).
    pub async fn params(&mut self) -> Result<Params> {
        Ok(self.backend.save_async().await?.params)
    }

    /// Latent means of `cells` (eval mode) computed on the GPU in chunks of 1,024
    /// cells, row-major N x Z.
    pub async fn latent(
        &mut self,
        m: &CountMatrix,
        batch_codes: &[u32],
        cells: &[usize],
    ) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        let mut mb = Minibatch::default();
        for chunk in cells.chunks(1024) {
            mb.gather_into(m, batch_codes, chunk);
            out.extend(self.backend.encode_async(&mb).await?.mean);
        }
        Ok(out)
    }

    /// Hands the run to the CPU backend after a GPU error: it continues from the last
    /// state read back and takes the steps since again (see [`Trainer::switch_backend`]).
    pub fn into_cpu(self) -> Result<Trainer<CpuBackend>> {
        Trainer::resume(CpuBackend::new(), self.schedule)
    }
}
