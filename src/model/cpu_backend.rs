//! The reference [`Backend`]: the VAE on the CPU ([`CpuModel`]) with Adam, every step
//! checked for non-finite values before it is applied. Its futures are ready at once.

use crate::backend::cpu::{adam, finite};
use crate::error::{Error, Result};
use crate::model::backend::{
    Backend, Posterior, StepHyper, StepLosses, TrainState, ADAM_BETA1, ADAM_BETA2,
};
use crate::model::cpu_model::{CpuModel, Mode, Workspace};
use crate::model::Minibatch;

/// The reference backend: the VAE on the CPU with Adam.
pub struct CpuBackend {
    state: Option<TrainState>,
    ws: Workspace,
    saved_buffers: Vec<f32>,
    /// Fault injection (see [`CpuBackend::poison_at_step`]).
    poison_at: Option<u32>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new()
    }
}

fn not_loaded() -> Error {
    Error::Config("no model loaded into the CPU backend".into())
}

impl CpuBackend {
    /// A backend with no model loaded yet.
    pub fn new() -> CpuBackend {
        CpuBackend {
            state: None,
            ws: Workspace::default(),
            saved_buffers: Vec::new(),
            poison_at: None,
        }
    }

    /// Fault injection, for testing recovery: as training step `step` begins, the
    /// decoder's scale-head bias is overwritten with NaN (as a corrupted state would be),
    /// once. The step then reports non-finite values and changes nothing.
    pub fn poison_at_step(&mut self, step: u32) {
        self.poison_at = Some(step);
    }

    fn state_mut(&mut self) -> Result<&mut TrainState> {
        self.state.as_mut().ok_or_else(not_loaded)
    }

    /// One step: forward, backward, and Adam when every gradient is finite (else the
    /// batch-norm running statistics are put back as they were).
    fn step(&mut self, batch: &Minibatch, hyper: &StepHyper) -> Result<StepLosses> {
        if let Some(st) = &self.state {
            batch.check_batches(st.params.config.n_batches)?;
        }
        let mut ws = std::mem::take(&mut self.ws);
        // Keep the running statistics in case the step turns out non-finite (the buffer
        // is reused: no allocation per step).
        let mut saved = std::mem::take(&mut self.saved_buffers);
        let st = self.state.as_mut().ok_or_else(not_loaded)?;
        if self.poison_at == Some(hyper.step) {
            self.poison_at = None;
            let bias = st.params.layout.scale.bias.clone();
            st.params.values[bias].fill(f32::NAN);
        }
        saved.clear();
        saved.extend_from_slice(&st.params.buffers);
        let (recon, klm) = CpuModel::forward_backward(
            &mut st.params,
            &mut ws,
            batch,
            hyper.seed,
            hyper.step,
            hyper.kl_weight,
        );
        let n = st.params.values.len();
        let finite = recon.is_finite() && klm.is_finite() && finite::all_finite(&ws.grads[..n]);
        if finite {
            adam::step(
                &mut st.params.values,
                &ws.grads[..n],
                &mut st.adam_m,
                &mut st.adam_v,
                f64::from(hyper.lr),
                ADAM_BETA1,
                ADAM_BETA2,
                f64::from(hyper.adam_eps),
                f64::from(hyper.weight_decay),
                hyper.step + 1,
            );
            st.steps = hyper.step + 1;
        } else {
            st.params.buffers.copy_from_slice(&saved);
        }
        self.ws = ws;
        self.saved_buffers = saved;
        Ok(StepLosses {
            loss: recon + hyper.kl_weight * klm,
            reconstruction: recon,
            kl: klm,
            finite,
        })
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn adapter(&self) -> String {
        "CPU (pure Rust)".into()
    }

    async fn load(&mut self, state: &TrainState) -> Result<()> {
        self.state = Some(state.clone());
        Ok(())
    }

    async fn save(&mut self) -> Result<TrainState> {
        Ok(self.state_mut()?.clone())
    }

    async fn save_into(&mut self, mut spare: TrainState) -> Result<TrainState> {
        spare.clone_from(self.state_mut()?);
        Ok(spare)
    }

    async fn train_steps(
        &mut self,
        batches: &[Minibatch],
        hypers: &[StepHyper],
    ) -> Result<Vec<StepLosses>> {
        let mut out = Vec::with_capacity(hypers.len());
        for (batch, hyper) in batches.iter().zip(hypers) {
            let l = self.step(batch, hyper)?;
            out.push(l);
            if !l.finite {
                break;
            }
        }
        Ok(out)
    }

    async fn encode(&mut self, batch: &Minibatch) -> Result<Posterior> {
        batch.check_batches(self.state_mut()?.params.config.n_batches)?;
        let mut ws = std::mem::take(&mut self.ws);
        let st = self.state_mut()?;
        CpuModel::encode(&mut st.params, &mut ws, batch, Mode::Eval);
        let n = batch.n_rows * st.params.config.n_latent;
        let var = ws.qv[..n]
            .iter()
            .map(|&v| v.exp() + st.params.config.var_eps)
            .collect();
        let out = Posterior {
            mean: ws.qm[..n].to_vec(),
            var,
        };
        self.ws = ws;
        Ok(out)
    }
}
