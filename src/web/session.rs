//! The wasm-bindgen wrappers of [`crate::session::Session`]: each converts its
//! arguments, calls the core and converts the result or the error.

use super::{from_js_or_default, rejection, seconds_now, to_js, to_js_value, Dataset};
use crate::session::{Session as Core, SessionOptions};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// A training session on a [`Dataset`] (see [`crate::session::Session`]). Shared with
/// the promises of GPU steps, which never hold it across an await.
#[wasm_bindgen]
pub struct Session {
    core: Rc<RefCell<Core>>,
}

#[wasm_bindgen]
impl Session {
    /// Prepares `dataset` and builds a new model; `options` as `SessionOptions`
    /// (every field optional).
    #[wasm_bindgen(constructor)]
    pub fn new(dataset: &Dataset, options: JsValue) -> Result<Session, JsError> {
        let opts: SessionOptions = from_js_or_default(options, "settings")?;
        Core::new(&dataset.matrix, &opts, seconds_now)
            .map(Session::wrap)
            .map_err(to_js)
    }

    /// A session around a saved model (`model.safetensors` bytes, `config.json` text).
    pub fn from_model(
        dataset: &Dataset,
        safetensors: Vec<u8>,
        config_json: &str,
        options: JsValue,
    ) -> Result<Session, JsError> {
        let opts: SessionOptions = from_js_or_default(options, "settings")?;
        Core::from_model(
            &dataset.matrix,
            &safetensors,
            config_json,
            &opts,
            seconds_now,
        )
        .map(Session::wrap)
        .map_err(to_js)
    }

    /// Continues a kept run exactly where it stopped (checkpoint bytes, `config.json`
    /// text and the run record from [`Session::checkpoint`] and [`Session::run_record`]).
    pub fn resume(
        dataset: &Dataset,
        checkpoint: Vec<u8>,
        config_json: &str,
        run_record: &str,
    ) -> Result<Session, JsError> {
        Core::resume(
            &dataset.matrix,
            &checkpoint,
            config_json,
            run_record,
            seconds_now,
        )
        .map(Session::wrap)
        .map_err(to_js)
    }

    fn wrap(core: Core) -> Session {
        Session {
            core: Rc::new(RefCell::new(core)),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Core) -> crate::Result<T>) -> Result<T, JsError> {
        f(&mut self.core.borrow_mut()).map_err(to_js)
    }

    /// Runs up to `n_steps` CPU steps; returns the status.
    pub fn step(&self, n_steps: u32) -> Result<JsValue, JsError> {
        to_js_value(&self.with(|s| s.step(n_steps))?)
    }

    /// `{epoch, step, elbo, reconstruction, kl, kl_weight, finished, lr, epochs, beta,
    /// kl_warmup_epochs, training_backend, recoveries, last_recovery}` (`last_recovery`:
    /// the last recovery from a divergence in words, or null).
    pub fn status(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.core.borrow().status())
    }

    /// Per-epoch history: `[{epoch, elbo, reconstruction, kl, kl_weight, seconds}]`.
    pub fn history(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.core.borrow().history())
    }

    /// Opens WebGPU and moves training there; resolves with the adapter's description
    /// or rejects with why (training then stays on the CPU).
    pub fn start_gpu(&self) -> Result<js_sys::Promise, JsError> {
        if let Some(run) = self.core.borrow().gpu_run() {
            return Ok(js_sys::Promise::resolve(&JsValue::from_str(&run.adapter)));
        }
        let start = self.with(|s| s.gpu_start())?;
        let core = self.core.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let (run, version) = start.open().await.map_err(rejection)?;
            let adapter = run.adapter.clone();
            core.borrow_mut()
                .adopt_gpu(run, version)
                .map_err(rejection)?;
            Ok(JsValue::from_str(&adapter))
        }))
    }

    /// Runs up to `n` steps on the GPU; resolves when done. After a GPU error the run
    /// continues on the CPU (see [`Session::take_gpu_fallback`]).
    pub fn gpu_step(&self, n: u32) -> Result<js_sys::Promise, JsError> {
        let run = self
            .core
            .borrow()
            .gpu_run()
            .ok_or_else(|| JsError::new("the GPU is not in use"))?;
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            run.step(n).await.map_err(rejection)?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Why the run left the GPU for the CPU, once (`undefined` when it has not).
    pub fn take_gpu_fallback(&self) -> Option<String> {
        self.core.borrow_mut().take_gpu_fallback()
    }

    /// Fault injection for tests: the GPU device is lost when step `step` begins.
    pub fn test_lose_gpu_at_step(&self, step: u32) {
        self.core.borrow().test_lose_gpu_at_step(step);
    }

    /// Fault injection for tests: `kind` (`"lost"`, `"oom"`, `"shader"`) at training
    /// step `step`; an error when the kind is unknown or training is not on the GPU.
    pub fn test_gpu_fault(&self, kind: &str, step: u32) -> Result<(), JsError> {
        self.core.borrow().test_gpu_fault(kind, step).map_err(to_js)
    }

    /// Where training runs: `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.core.borrow().training_backend().into()
    }

    /// Latent means of cells `start..start + count` (see the core's `latent_range`).
    pub fn latent_range(&self, start: usize, count: usize) -> Result<Vec<f32>, JsError> {
        self.with(|s| s.latent_range(start, count))
    }

    /// Latent means of every cell, row-major n_cells x n_latent.
    pub fn latent(&self) -> Result<Vec<f32>, JsError> {
        self.with(|s| s.latent())
    }

    /// Mean KL per latent dimension over the training cells, in nats.
    pub fn kl_per_dim(&self) -> Result<Vec<f64>, JsError> {
        self.with(|s| s.kl_per_dim())
    }

    /// What the page needs once per session: `{n_latent, n_cells, n_genes, n_train,
    /// gene_names, cell_ids, library_sizes, median_library, columns: [{name, codes,
    /// levels}], model, batch_levels, preprocess_report, origin, batch_key, label_key}`.
    pub fn facts(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.core.borrow().facts())
    }

    /// Latent dimensions.
    #[wasm_bindgen(getter)]
    pub fn n_latent(&self) -> usize {
        self.core.borrow().model_config().n_latent
    }

    /// Cells in the latent map (every input cell).
    #[wasm_bindgen(getter)]
    pub fn n_cells(&self) -> usize {
        self.core.borrow().data().matrix.n_cells
    }

    /// `model.safetensors` of the current parameters.
    pub fn model_safetensors(&self) -> Result<Vec<u8>, JsError> {
        self.with(|s| s.model_safetensors())
    }

    /// The model as scvi-tools' `model.pt`.
    pub fn scvi_model(&self) -> Result<Vec<u8>, JsError> {
        self.with(|s| s.scvi_model())
    }

    /// An AnnData `.h5ad` of the cells, their metadata and latent means (counts as `X`
    /// unless `keep_counts` is false).
    pub fn h5ad(&self, keep_counts: bool) -> Result<Vec<u8>, JsError> {
        self.with(|s| s.h5ad(keep_counts))
    }

    /// `checkpoint.safetensors` of the run (parameters, Adam's moments, step, epoch).
    pub fn checkpoint(&self) -> Result<Vec<u8>, JsError> {
        self.with(|s| s.checkpoint())
    }

    /// The run record (JSON) that goes with the last `checkpoint()`.
    pub fn run_record(&self) -> Result<String, JsError> {
        self.core.borrow().run_record().map_err(to_js)
    }

    /// `config.json` of the current model.
    pub fn model_config_json(&self) -> Result<String, JsError> {
        self.core.borrow().model_config_json().map_err(to_js)
    }

    /// Changes the learning rate from the next step on.
    pub fn set_lr(&self, lr: f32) -> Result<(), JsError> {
        self.with(|s| s.set_lr(lr))
    }

    /// Changes beta (the maximum KL weight) from the next step on.
    pub fn set_beta(&self, beta: f32) -> Result<(), JsError> {
        self.with(|s| s.set_beta(beta))
    }

    /// Expected counts (n x genes) of latent points `z` (n x n_latent).
    pub fn decode(&self, z: Vec<f32>, batch: u32, library: f32) -> Result<Vec<f32>, JsError> {
        self.with(|s| s.decode(&z, batch, library))
    }

    /// Like `decode`, only the columns of `genes`: n x genes.len().
    pub fn decode_genes(
        &self,
        z: Vec<f32>,
        batch: u32,
        library: f32,
        genes: Vec<u32>,
    ) -> Result<Vec<f32>, JsError> {
        self.with(|s| s.decode_genes(&z, batch, library, &genes))
    }

    /// Differential expression of `group1` against `group2` (cell positions; empty: every
    /// other cell), with `options` (`DeOptions`' fields, any left out take their defaults):
    /// `{genes: [{id, name, gene, lfc_mean, lfc_std, lfc_min, lfc_max, proba_de,
    /// bayes_factor, is_de_fdr, scale1, scale2, raw_mean1, raw_mean2, nonzero1,
    /// nonzero2}], n_cells1, n_cells2, n_de, options, csv}`, most probable change first.
    pub fn compare(
        &self,
        group1: Vec<u32>,
        group2: Vec<u32>,
        options: JsValue,
    ) -> Result<JsValue, JsError> {
        let opts: crate::de::DeOptions = from_js_or_default(options, "comparison settings")?;
        let g2 = (!group2.is_empty()).then_some(group2.as_slice());
        to_js_value(&self.with(|s| s.compare(&group1, g2, &opts))?)
    }

    /// The `k` training cells nearest `z` and their mean profile at `library`:
    /// `{cells, distances, mean}`.
    pub fn nearest_profile(&self, z: Vec<f32>, k: usize, library: f32) -> Result<JsValue, JsError> {
        to_js_value(&self.with(|s| s.nearest_profile(&z, k, library))?)
    }

    /// The evaluation panel's numbers with `n_samples` importance samples (`cellvae
    /// eval`'s fields: `{n_cells, n_genes, n_evaluated_cells, heldout,
    /// heldout_elbo_per_cell, heldout_log_px_iw100_per_cell, heldout_reconstruction_per_cell,
    /// kl_per_dim, active_units, n_samples, knn15_accuracy, batch_mixing15}`).
    pub fn evaluate(&self, n_samples: usize, seed: u32) -> Result<JsValue, JsError> {
        to_js_value(&self.with(|s| s.evaluate(n_samples, u64::from(seed)))?)
    }

    /// A lesson's computation by name (src/session/lessons.rs), its arguments and its
    /// answer as plain objects.
    pub fn teach(&self, what: &str, args: JsValue) -> Result<JsValue, JsError> {
        let a: serde_json::Value = from_js_or_default(args, "lesson arguments")?;
        to_js_value(&self.with(|s| s.teach(what, a))?)
    }

    /// One GPU training step's kernels in order: `[{kernel, pass, dispatches}]` (empty
    /// on the CPU or before the first GPU step).
    pub fn step_kernels(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.core.borrow().step_kernels())
    }

    /// The current model rotated by `angle_degrees` in the plane of latent axes `i`, `j`
    /// (lesson 12), as `model.safetensors` bytes (load it with `from_model` and
    /// `model_config_json`).
    pub fn rotated_model(
        &self,
        i: usize,
        j: usize,
        angle_degrees: f64,
    ) -> Result<Vec<u8>, JsError> {
        self.with(|s| s.rotated_model([i, j], angle_degrees))
    }
}
