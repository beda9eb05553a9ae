//! The reference [`Backend`]: the VAE on the CPU ([`CpuModel`]) with Adam, every step
//! checked for non-finite values before it is applied.

use crate::backend::cpu::adam;
use crate::backend::{Backend, Posterior, StepHyper, StepLosses, TrainState};
use crate::model::cpu_model::{CpuModel, Mode, Workspace};
use crate::model::Minibatch;

/// The reference backend: the VAE on the CPU with Adam.
pub struct CpuBackend {
    state: Option<TrainState>,
    ws: Workspace,
    saved_buffers: Vec<f32>,
}

impl Default for CpuBackend {
    fn default() -> Self {
        CpuBackend::new()
    }
}

impl CpuBackend {
    /// A backend with no model loaded yet.
    pub fn new() -> CpuBackend {
        CpuBackend {
            state: None,
            ws: Workspace::default(),
            saved_buffers: Vec::new(),
        }
    }

    fn state_mut(&mut self) -> crate::Result<&mut TrainState> {
        self.state
            .as_mut()
            .ok_or_else(|| crate::Error::Config("no model loaded into the CPU backend".into()))
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn adapter(&self) -> String {
        "CPU (pure Rust)".into()
    }

    fn load(&mut self, state: &TrainState) -> crate::Result<()> {
        self.state = Some(state.clone());
        Ok(())
    }

    fn save(&mut self) -> crate::Result<TrainState> {
        Ok(self.state_mut()?.clone())
    }

    fn train_step(&mut self, batch: &Minibatch, hyper: &StepHyper) -> crate::Result<StepLosses> {
        if let Some(st) = &self.state {
            batch.check_batches(st.params.config.n_batches)?;
        }
        let mut ws = std::mem::take(&mut self.ws);
        // Keep the running statistics in case the step turns out non-finite (the buffer
        // is reused: no allocation per step).
        let mut saved = std::mem::take(&mut self.saved_buffers);
        let st = self
            .state
            .as_mut()
            .ok_or_else(|| crate::Error::Config("no model loaded into the CPU backend".into()))?;
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
        let finite =
            recon.is_finite() && klm.is_finite() && ws.grads[..n].iter().all(|g| g.is_finite());
        if finite {
            adam::step(
                &mut st.params.values,
                &ws.grads[..n],
                &mut st.adam_m,
                &mut st.adam_v,
                f64::from(hyper.lr),
                0.9,
                0.999,
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

    fn encode(&mut self, batch: &Minibatch) -> crate::Result<Posterior> {
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
