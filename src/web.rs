//! The thin wasm-bindgen layer the page calls (the only module that sees JS types).
//! Errors become `JsError` here, in one place; panics are logged by
//! `console_error_panic_hook`.

use crate::backend::cpu::backend::CpuBackend;
use crate::backend::{cpu, gpu, StepLosses, TrainState};
use crate::data::preprocess::QcOptions;
use crate::data::{read_inputs, InputFile, ReadOptions};
use crate::eval::latent;
use crate::explore::Explorer;
use crate::model::{Likelihood, ModelConfig, Params};
use crate::pipeline::{column_codes, prepare, PrepareOptions, Prepared};
use crate::summary::Summary;
use crate::train::{TrainConfig, Trainer};
use crate::CountMatrix;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn to_js(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// Serialises to a plain JS object (maps become objects, as JSON would have them).
fn to_js_value<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// Takes a JS array of `{name: string, bytes: Uint8Array}` objects.
fn files_from_js(files: &js_sys::Array) -> Result<Vec<InputFile>, JsError> {
    let mut out = Vec::with_capacity(files.length() as usize);
    for item in files.iter() {
        let name = js_sys::Reflect::get(&item, &"name".into())
            .ok()
            .and_then(|v| v.as_string())
            .ok_or_else(|| JsError::new("each file needs a string `name`"))?;
        let bytes = js_sys::Reflect::get(&item, &"bytes".into())
            .map_err(|_| JsError::new("each file needs `bytes`"))?;
        let bytes = js_sys::Uint8Array::new(&bytes).to_vec();
        out.push(InputFile::new(name, bytes));
    }
    Ok(out)
}

/// A loaded count matrix, held in wasm memory.
#[wasm_bindgen]
pub struct Dataset {
    matrix: CountMatrix,
}

#[wasm_bindgen]
impl Dataset {
    /// The summary (cells, genes, counts, metadata columns, notes) as a JS object.
    pub fn summary(&self) -> Result<JsValue, JsError> {
        to_js_value(&Summary::of(&self.matrix))
    }

    /// Number of cells.
    #[wasm_bindgen(getter)]
    pub fn n_cells(&self) -> usize {
        self.matrix.n_cells
    }

    /// Number of genes.
    #[wasm_bindgen(getter)]
    pub fn n_genes(&self) -> usize {
        self.matrix.n_genes
    }

    /// Gene names (unique).
    pub fn gene_names(&self) -> Vec<String> {
        self.matrix.gene_names.clone()
    }

    /// Cell ids.
    pub fn cell_ids(&self) -> Vec<String> {
        self.matrix.cell_ids.clone()
    }
}

/// Reads the files a user dropped (`[{name, bytes}]`) and an optional metadata table
/// (`{name, bytes}` or `null`) into a [`Dataset`].
#[wasm_bindgen]
pub fn read_files(files: js_sys::Array, obs: JsValue) -> Result<Dataset, JsError> {
    let files = files_from_js(&files)?;
    let obs = if obs.is_null() || obs.is_undefined() {
        None
    } else {
        files_from_js(&js_sys::Array::of1(&obs))?.pop()
    };
    let matrix = read_inputs(&files, obs.as_ref(), &ReadOptions::default()).map_err(to_js)?;
    Ok(Dataset { matrix })
}

/// Checks the GPU path end to end: opens a WebGPU device, runs the `log1p` kernel on
/// `n` values and compares with the CPU twin. Returns `{adapter, n, max_abs_diff}`.
#[wasm_bindgen]
pub async fn gpu_check(n: usize) -> Result<JsValue, JsError> {
    let ctx = gpu::GpuContext::new().await.map_err(to_js)?;
    let x: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.37).collect();
    let got = gpu::kernels::log1p(&ctx, &x).await.map_err(to_js)?;
    let mut want = vec![0.0; n];
    cpu::log1p::log1p(&x, &mut want);
    let max_abs_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let result = serde_json::json!({
        "adapter": ctx.adapter_summary(),
        "n": n,
        "max_abs_diff": max_abs_diff,
    });
    to_js_value(&result)
}

/// Options of a training [`Session`] (every field optional, from a JS object).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SessionOptions {
    n_latent: usize,
    n_hidden: usize,
    likelihood: Likelihood,
    lr: f32,
    beta: f32,
    seed: u64,
    batch_size: usize,
    label_key: Option<String>,
    top_genes: Option<usize>,
    epochs: Option<u32>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            n_latent: 2,
            n_hidden: 128,
            likelihood: Likelihood::Nb,
            lr: 1e-3,
            beta: 1.0,
            seed: 0,
            batch_size: 128,
            label_key: None,
            top_genes: None,
            epochs: None,
        }
    }
}

/// What [`Session::step`] reports.
#[derive(serde::Serialize)]
struct StepStatus {
    epoch: u32,
    step: u32,
    elbo: Option<f64>,
    reconstruction: Option<f64>,
    kl: Option<f64>,
    kl_weight: Option<f32>,
    finished: bool,
    lr: f32,
    epochs: u32,
}

fn seconds_now() -> f64 {
    js_sys::Date::now() / 1000.0
}

/// A training run on a loaded [`Dataset`]: the prepared data, the CPU trainer, and an
/// explorer over the current parameters for decoding latent points.
#[wasm_bindgen]
pub struct Session {
    prep: Prepared,
    trainer: Trainer<CpuBackend>,
    all_cells: Vec<usize>,
    last: Option<StepLosses>,
    last_kl_weight: Option<f32>,
    explorer: Option<Explorer>,
    label_key: Option<String>,
    n_latent: usize,
}

#[wasm_bindgen]
impl Session {
    /// Prepares `dataset` (QC, optional top genes) and builds the model and trainer.
    /// `options` is `{n_latent, n_hidden, likelihood, lr, beta, seed, batch_size,
    /// label_key, top_genes, epochs}`, every field optional (undefined/null: defaults).
    #[wasm_bindgen(constructor)]
    pub fn new(dataset: &Dataset, options: JsValue) -> Result<Session, JsError> {
        let opts: SessionOptions = if options.is_null() || options.is_undefined() {
            SessionOptions::default()
        } else {
            serde_wasm_bindgen::from_value(options)
                .map_err(|e| JsError::new(&format!("session options: {e}")))?
        };
        let m = &dataset.matrix;
        let label_key = match opts.label_key {
            Some(k) => Some(k),
            None => m.obs.get("cell_type").map(|_| "cell_type".to_string()),
        };
        let prep = prepare(
            m,
            &PrepareOptions {
                qc: QcOptions {
                    n_top_genes: opts.top_genes,
                    ..Default::default()
                },
                label_key: label_key.clone(),
                ..Default::default()
            },
        )
        .map_err(to_js)?;
        let mut config = ModelConfig::scvi_defaults(prep.matrix.n_genes, prep.batch_levels.len());
        config.n_latent = opts.n_latent;
        config.n_hidden = opts.n_hidden;
        config.likelihood = opts.likelihood;
        config.validate().map_err(to_js)?;
        let mut tc = TrainConfig::scvi_defaults(prep.train_cells.len());
        if let Some(e) = opts.epochs {
            tc.epochs = e;
        }
        tc.batch_size = opts.batch_size;
        tc.seed = opts.seed;
        let params = Params::init(&config, opts.seed).map_err(to_js)?;
        let mut trainer = Trainer::new(
            CpuBackend::new(),
            tc,
            TrainState::new(params),
            prep.train_cells.clone(),
            prep.batch_codes.clone(),
            seconds_now,
        )
        .map_err(to_js)?;
        trainer.set_lr(opts.lr).map_err(to_js)?;
        trainer.set_beta(opts.beta).map_err(to_js)?;
        let all_cells = (0..prep.matrix.n_cells).collect();
        Ok(Session {
            prep,
            trainer,
            all_cells,
            last: None,
            last_kl_weight: None,
            explorer: None,
            label_key,
            n_latent: opts.n_latent,
        })
    }

    fn status_value(&self) -> StepStatus {
        let (elbo, reconstruction, kl, kl_weight) = match self.trainer.history.last() {
            Some(r) => (
                Some(r.elbo),
                Some(r.reconstruction),
                Some(r.kl),
                Some(r.kl_weight),
            ),
            None => match &self.last {
                Some(l) => (
                    Some(-(f64::from(l.reconstruction) + f64::from(l.kl))),
                    Some(f64::from(l.reconstruction)),
                    Some(f64::from(l.kl)),
                    self.last_kl_weight,
                ),
                None => (None, None, None, None),
            },
        };
        StepStatus {
            epoch: self.trainer.epoch(),
            step: self.trainer.steps(),
            elbo,
            reconstruction,
            kl,
            kl_weight,
            finished: self.trainer.finished(),
            lr: self.trainer.config.lr,
            epochs: self.trainer.config.epochs,
        }
    }

    /// Runs up to `n_steps` optimisation steps and returns
    /// `{epoch, step, elbo, reconstruction, kl, kl_weight, finished, lr, epochs}`
    /// (losses of the last finished epoch, or of the last step before the first epoch
    /// ends; `elbo` is -(reconstruction + kl) per cell, higher is better).
    pub fn step(&mut self, n_steps: u32) -> Result<JsValue, JsError> {
        for _ in 0..n_steps {
            if self.trainer.finished() {
                break;
            }
            let kl_weight = self.trainer.config.kl_weight(self.trainer.epoch());
            let (losses, _) = self.trainer.step(&self.prep.matrix).map_err(to_js)?;
            if losses.finite {
                self.last = Some(losses);
                self.last_kl_weight = Some(kl_weight);
            }
            self.explorer = None;
        }
        to_js_value(&self.status_value())
    }

    /// The current status without training (see [`Session::step`]).
    pub fn status(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.status_value())
    }

    /// Per-epoch history: `[{epoch, elbo, reconstruction, kl, kl_weight, seconds}]`.
    pub fn history(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.trainer.history)
    }

    /// The ELBO of every finished epoch (for the chart).
    pub fn elbo_history(&self) -> Vec<f64> {
        self.trainer.history.iter().map(|r| r.elbo).collect()
    }

    /// Latent means of every cell (input order), row-major n_cells x n_latent.
    pub fn latent(&mut self) -> Result<Vec<f32>, JsError> {
        let params = self.trainer.params().map_err(to_js)?;
        let (mean, _) = latent(
            &params,
            &self.prep.matrix,
            &self.prep.batch_codes,
            &self.all_cells,
        );
        Ok(mean)
    }

    /// Latent dimensions.
    #[wasm_bindgen(getter)]
    pub fn n_latent(&self) -> usize {
        self.n_latent
    }

    /// Cells in the latent map (every input cell).
    #[wasm_bindgen(getter)]
    pub fn n_cells(&self) -> usize {
        self.prep.matrix.n_cells
    }

    /// Genes modelled (after QC and gene selection).
    #[wasm_bindgen(getter)]
    pub fn n_genes(&self) -> usize {
        self.prep.matrix.n_genes
    }

    /// The label column used by default for colouring (`cell_type` when present).
    #[wasm_bindgen(getter)]
    pub fn label_key(&self) -> Option<String> {
        self.label_key.clone()
    }

    /// Codes of a metadata column for every cell: `{codes: [int|null], levels: [string]}`.
    pub fn labels(&self, column: &str) -> Result<JsValue, JsError> {
        let col = self
            .prep
            .matrix
            .obs
            .get(column)
            .ok_or_else(|| JsError::new(&format!("{column}: no such metadata column")))?;
        let (codes, levels) = column_codes(col);
        to_js_value(&serde_json::json!({ "codes": codes, "levels": levels }))
    }

    /// Names of the metadata columns.
    pub fn obs_columns(&self) -> Vec<String> {
        self.prep
            .matrix
            .obs
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The median library size (total counts) of the training cells.
    pub fn median_library(&self) -> f32 {
        let sizes = self.prep.matrix.library_sizes();
        let mut v: Vec<f64> = self.prep.train_cells.iter().map(|&i| sizes[i]).collect();
        if v.is_empty() {
            return 1.0;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let med = if v.len().is_multiple_of(2) {
            0.5 * (v[mid - 1] + v[mid])
        } else {
            v[mid]
        };
        (med as f32).max(1.0)
    }

    /// Changes the learning rate from the next step on.
    pub fn set_lr(&mut self, lr: f32) -> Result<(), JsError> {
        self.trainer.set_lr(lr).map_err(to_js)
    }

    /// Changes beta (the maximum KL weight) from the next step on.
    pub fn set_beta(&mut self, beta: f32) -> Result<(), JsError> {
        self.trainer.set_beta(beta).map_err(to_js)
    }

    /// Expected counts (n x genes) of latent points `z` (n x n_latent) decoded with the
    /// current parameters for batch `batch` and library size `library`.
    pub fn decode(&mut self, z: Vec<f32>, batch: u32, library: f32) -> Result<Vec<f32>, JsError> {
        if self.explorer.is_none() {
            let params = self.trainer.params().map_err(to_js)?;
            self.explorer = Some(Explorer::new(params));
        }
        let explorer = self.explorer.as_mut().expect("explorer was just set");
        Ok(explorer.decode(&z, batch, library).map_err(to_js)?.expected)
    }

    /// Names of the modelled genes, in the order of `decode`'s columns.
    pub fn gene_names(&self) -> Vec<String> {
        self.prep.matrix.gene_names.clone()
    }
}
