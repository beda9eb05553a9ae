//! The thin wasm-bindgen layer the page calls (the only module that sees JS types).
//! Errors become `JsError` here, in one place; panics are logged by
//! `console_error_panic_hook`.

use crate::backend::{cpu, gpu};
use crate::data::preprocess::{PreprocessReport, QcOptions};
use crate::data::{read_inputs, InputFile, ReadOptions};
use crate::data::{ObsColumn, ObsTable, ObsValues};
use crate::eval::latent;
use crate::explore::{nearest_cells, Explorer};
use crate::model::io::{from_safetensors, read_config, to_safetensors, ModelFiles};
use crate::model::{CpuBackend, StepLosses, TrainState};
use crate::model::{Dispersion, Likelihood, ModelConfig, Params};
use crate::pipeline::{column_codes, fit_to_model, prepare, PrepareOptions, Prepared};
use crate::summary::Summary;
use crate::train::{TrainConfig, Trainer};
use crate::web_gpu::GpuRun;
use crate::CountMatrix;
use std::cell::RefCell;
use std::rc::Rc;
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

    /// The matrix as bytes, to hand a matrix read in a Web Worker to the page
    /// ([`Dataset::from_bytes`] reads them back; same build only).
    pub fn to_bytes(&self) -> Vec<u8> {
        encode_matrix(&self.matrix)
    }

    /// Reads what [`Dataset::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Dataset, JsError> {
        let matrix = decode_matrix(bytes).ok_or_else(|| {
            JsError::new("the matrix handed over by the reading worker is damaged; reload the page")
        })?;
        matrix.validate().map_err(|e| {
            JsError::new(&format!(
                "the matrix handed over by the reading worker: {e}"
            ))
        })?;
        Ok(Dataset { matrix })
    }

    /// One gene's normalised expression in every cell (input order):
    /// `log1p(count / total counts of the cell * 10^4)` (0 for a cell with no counts).
    pub fn expression(&self, gene: &str) -> Result<Vec<f32>, JsError> {
        let m = &self.matrix;
        let g = m
            .gene_names
            .iter()
            .position(|n| n == gene)
            .or_else(|| m.gene_ids.iter().position(|n| n == gene))
            .ok_or_else(|| JsError::new(&format!("{gene}: no such gene in the data")))?;
        let sizes = m.library_sizes();
        let mut out = vec![0.0f32; m.n_cells];
        for (c, o) in out.iter_mut().enumerate() {
            // Indices are sorted within a row (CountMatrix::validate).
            let (idx, val) = m.row(c);
            if let Ok(k) = idx.binary_search(&(g as u32)) {
                if sizes[c] > 0.0 {
                    *o = (f64::from(val[k]) / sizes[c] * 1e4).ln_1p() as f32;
                }
            }
        }
        Ok(out)
    }
}

const MATRIX_MAGIC: &[u8; 8] = b"CVMATRX1";

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_strs(out: &mut Vec<u8>, v: &[String]) {
    put_u64(out, v.len() as u64);
    for s in v {
        put_str(out, s);
    }
}

/// A private, versioned binary form of a matrix (worker -> page, same build).
fn encode_matrix(m: &CountMatrix) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + m.indptr.len() * 8 + m.data.len() * 8);
    out.extend_from_slice(MATRIX_MAGIC);
    put_u64(&mut out, m.n_cells as u64);
    put_u64(&mut out, m.n_genes as u64);
    put_u64(&mut out, m.indptr.len() as u64);
    for &p in &m.indptr {
        put_u64(&mut out, p as u64);
    }
    put_u64(&mut out, m.indices.len() as u64);
    for &i in &m.indices {
        out.extend_from_slice(&i.to_le_bytes());
    }
    for &v in &m.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    put_strs(&mut out, &m.gene_ids);
    put_strs(&mut out, &m.gene_names);
    put_strs(&mut out, &m.cell_ids);
    put_str(&mut out, &m.format);
    put_str(&mut out, &m.source);
    put_strs(&mut out, &m.notes);
    put_u64(&mut out, m.obs.columns.len() as u64);
    for c in &m.obs.columns {
        put_str(&mut out, &c.name);
        match &c.values {
            ObsValues::Categorical { levels, codes } => {
                out.push(0);
                put_strs(&mut out, levels);
                put_u64(&mut out, codes.len() as u64);
                for code in codes {
                    out.extend_from_slice(&code.unwrap_or(u32::MAX).to_le_bytes());
                }
            }
            ObsValues::Text(v) => {
                out.push(1);
                put_strs(&mut out, v);
            }
            ObsValues::Numeric(v) => {
                out.push(2);
                put_u64(&mut out, v.len() as u64);
                for x in v {
                    out.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self, each: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        // Never trust a length beyond what the bytes can hold.
        (n.checked_mul(each)? <= self.bytes.len() - self.at).then_some(n)
    }
    fn u32s(&mut self, n: usize) -> Option<Vec<u32>> {
        let b = self.take(n.checked_mul(4)?)?;
        Some(
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }
    fn string(&mut self) -> Option<String> {
        let n = self.len(1)?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.string()).collect()
    }
}

fn decode_matrix(bytes: &[u8]) -> Option<CountMatrix> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(8)? != MATRIX_MAGIC {
        return None;
    }
    let n_cells = usize::try_from(r.u64()?).ok()?;
    let n_genes = usize::try_from(r.u64()?).ok()?;
    let np = r.len(8)?;
    let indptr = (0..np)
        .map(|_| r.u64().and_then(|v| usize::try_from(v).ok()))
        .collect::<Option<Vec<usize>>>()?;
    let nnz = r.len(8)?;
    let indices = r.u32s(nnz)?;
    let data = r
        .u32s(nnz)?
        .into_iter()
        .map(f32::from_bits)
        .collect::<Vec<f32>>();
    let gene_ids = r.strings()?;
    let gene_names = r.strings()?;
    let cell_ids = r.strings()?;
    let format = r.string()?;
    let source = r.string()?;
    let notes = r.strings()?;
    let ncol = r.len(9)?;
    let mut columns = Vec::with_capacity(ncol);
    for _ in 0..ncol {
        let name = r.string()?;
        let kind = r.take(1)?[0];
        let values = match kind {
            0 => {
                let levels = r.strings()?;
                let n = r.len(4)?;
                let codes = r
                    .u32s(n)?
                    .into_iter()
                    .map(|c| (c != u32::MAX).then_some(c))
                    .collect::<Vec<_>>();
                if codes.iter().flatten().any(|&c| c as usize >= levels.len()) {
                    return None;
                }
                ObsValues::Categorical { levels, codes }
            }
            1 => ObsValues::Text(r.strings()?),
            2 => {
                let n = r.len(8)?;
                let v = (0..n)
                    .map(|_| r.u64().map(f64::from_bits))
                    .collect::<Option<Vec<f64>>>()?;
                ObsValues::Numeric(v)
            }
            _ => return None,
        };
        columns.push(ObsColumn { name, values });
    }
    if r.at != bytes.len() {
        return None;
    }
    Some(CountMatrix {
        n_cells,
        n_genes,
        indptr,
        indices,
        data,
        gene_ids,
        gene_names,
        cell_ids,
        obs: ObsTable { columns },
        format,
        source,
        notes,
    })
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
    n_layers: usize,
    likelihood: Likelihood,
    dispersion: Dispersion,
    encode_batch: bool,
    lr: f32,
    beta: f32,
    kl_warmup_epochs: Option<u32>,
    seed: u64,
    batch_size: usize,
    label_key: Option<String>,
    batch_key: Option<String>,
    top_genes: Option<usize>,
    min_counts: u64,
    min_genes: usize,
    epochs: Option<u32>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            n_latent: 2,
            n_hidden: 128,
            n_layers: 1,
            likelihood: Likelihood::Nb,
            dispersion: Dispersion::Gene,
            encode_batch: false,
            lr: 1e-3,
            beta: 1.0,
            kl_warmup_epochs: None,
            seed: 0,
            batch_size: 128,
            label_key: None,
            batch_key: None,
            top_genes: None,
            min_counts: 0,
            min_genes: 0,
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
    beta: f32,
    kl_warmup_epochs: u32,
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
    batch_key: Option<String>,
    n_latent: usize,
    config: ModelConfig,
    /// Latent means and variances of every cell, and the step they were computed at.
    cache: Option<(u64, Vec<f32>, Vec<f32>)>,
    /// Where the model came from (`"new"` or the imported config.json's description).
    origin: String,
    /// The GPU run once [`Session::start_gpu`] has opened it (shared with its promises).
    gpu: Rc<RefCell<Option<Rc<GpuRun>>>>,
    /// The step the explorer's parameters are from.
    explorer_step: u64,
}

fn parse_options(options: JsValue) -> Result<SessionOptions, JsError> {
    if options.is_null() || options.is_undefined() {
        Ok(SessionOptions::default())
    } else {
        serde_wasm_bindgen::from_value(options)
            .map_err(|e| JsError::new(&format!("session options: {e}")))
    }
}

fn label_key_for(m: &CountMatrix, key: Option<String>) -> Option<String> {
    match key {
        Some(k) if !k.is_empty() => Some(k),
        _ => m.obs.get("cell_type").map(|_| "cell_type".to_string()),
    }
}

#[wasm_bindgen]
impl Session {
    /// Prepares `dataset` (QC, optional top genes) and builds the model and trainer.
    /// `options` is `{n_latent, n_hidden, likelihood, lr, beta, seed, batch_size,
    /// label_key, top_genes, epochs}`, every field optional (undefined/null: defaults).
    #[wasm_bindgen(constructor)]
    pub fn new(dataset: &Dataset, options: JsValue) -> Result<Session, JsError> {
        let opts = parse_options(options)?;
        let m = &dataset.matrix;
        let label_key = label_key_for(m, opts.label_key.clone());
        let batch_key = opts.batch_key.clone().filter(|k| !k.is_empty());
        let prep = prepare(
            m,
            &PrepareOptions {
                qc: QcOptions {
                    n_top_genes: opts.top_genes.filter(|&n| n > 0),
                    min_counts_per_cell: opts.min_counts,
                    min_genes_per_cell: opts.min_genes,
                    ..Default::default()
                },
                label_key: label_key.clone(),
                batch_key: batch_key.clone(),
                ..Default::default()
            },
        )
        .map_err(to_js)?;
        let mut config = ModelConfig::scvi_defaults(prep.matrix.n_genes, prep.batch_levels.len());
        config.n_latent = opts.n_latent;
        config.n_hidden = opts.n_hidden;
        config.n_layers = opts.n_layers;
        config.likelihood = opts.likelihood;
        config.dispersion = opts.dispersion;
        config.encode_batch = opts.encode_batch;
        config.validate().map_err(to_js)?;
        let params = Params::init(&config, opts.seed).map_err(to_js)?;
        Session::build(prep, params, &opts, label_key, batch_key, "new".into())
    }

    /// A session around a saved model (`model.safetensors` bytes and `config.json` text,
    /// as `cellvae train` writes them) on `dataset`: the data's genes are matched to the
    /// model's (by id, then name; a missing gene is an error), batches by the model's
    /// batch column. Training may continue (without KL warm-up). `options` as for
    /// [`Session::new`]; only `label_key`, `lr`, `beta`, `seed`, `batch_size` and
    /// `epochs` apply.
    pub fn from_model(
        dataset: &Dataset,
        safetensors: Vec<u8>,
        config_json: &str,
        options: JsValue,
    ) -> Result<Session, JsError> {
        let mut opts = parse_options(options)?;
        let files = read_config(config_json, "config.json").map_err(to_js)?;
        let params =
            from_safetensors(&safetensors, &files.model, "model.safetensors").map_err(to_js)?;
        let (matrix, batch_codes) = fit_to_model(&files, &dataset.matrix).map_err(to_js)?;
        let label_key = label_key_for(&matrix, opts.label_key.clone());
        let labels = match &label_key {
            Some(k) => Some(column_codes(matrix.obs.get(k).ok_or_else(|| {
                JsError::new(&format!("{k}: no such metadata column"))
            })?)),
            None => None,
        };
        let train_cells: Vec<usize> = (0..matrix.n_cells)
            .filter(|&c| matrix.indptr[c] < matrix.indptr[c + 1])
            .collect();
        if train_cells.is_empty() {
            return Err(JsError::new(
                "no cell of the loaded data has counts in the model's genes",
            ));
        }
        let prep = Prepared {
            matrix,
            train_cells,
            heldout_cells: Vec::new(),
            batch_codes,
            batch_levels: files.batch_levels.clone(),
            labels,
            report: PreprocessReport::default(),
        };
        // The model is trained: continuing starts at full beta.
        opts.kl_warmup_epochs = Some(0);
        opts.n_latent = files.model.n_latent;
        let origin = format!(
            "a model from config.json (cellvae {}: {} genes, {}-D latent, {} hidden x {} layers, {:?})",
            files.cellvae_version,
            files.model.n_genes,
            files.model.n_latent,
            files.model.n_hidden,
            files.model.n_layers,
            files.model.likelihood
        );
        Session::build(
            prep,
            params,
            &opts,
            label_key,
            files.batch_key.clone(),
            origin,
        )
    }

    fn build(
        prep: Prepared,
        params: Params,
        opts: &SessionOptions,
        label_key: Option<String>,
        batch_key: Option<String>,
        origin: String,
    ) -> Result<Session, JsError> {
        let config = params.config.clone();
        let mut tc = TrainConfig::scvi_defaults(prep.train_cells.len());
        if let Some(e) = opts.epochs {
            tc.epochs = e;
        }
        if let Some(w) = opts.kl_warmup_epochs {
            tc.kl_warmup_epochs = w;
        }
        tc.batch_size = opts.batch_size;
        tc.seed = opts.seed;
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
            batch_key,
            n_latent: config.n_latent,
            config,
            cache: None,
            origin,
            gpu: Rc::new(RefCell::new(None)),
            explorer_step: 0,
        })
    }

    fn gpu_run(&self) -> Option<Rc<GpuRun>> {
        self.gpu.borrow().clone()
    }

    /// The current parameters: the GPU run's last read back, or the CPU trainer's.
    fn current_params(&mut self) -> Result<Params, JsError> {
        match self.gpu_run() {
            Some(run) => Ok(run.with_view(|v| v.params.clone())),
            None => self.trainer.params().map_err(to_js),
        }
    }

    /// Changes whenever the parameters may have (steps, and restores after a non-finite
    /// step); on the GPU when it trains. Caches of latent means and decoders key on it.
    fn steps_now(&self) -> u64 {
        match self.gpu_run() {
            Some(run) => run.with_view(|v| v.version),
            None => self.trainer.version(),
        }
    }

    fn status_value(&self) -> StepStatus {
        if let Some(run) = self.gpu_run() {
            return run.with_view(|v| {
                let (elbo, reconstruction, kl, kl_weight) = match (v.history.last(), &v.last) {
                    (Some(r), _) => (
                        Some(r.elbo),
                        Some(r.reconstruction),
                        Some(r.kl),
                        Some(r.kl_weight),
                    ),
                    (None, Some((l, w))) => (
                        Some(-(f64::from(l.reconstruction) + f64::from(l.kl))),
                        Some(f64::from(l.reconstruction)),
                        Some(f64::from(l.kl)),
                        Some(*w),
                    ),
                    (None, None) => (None, None, None, None),
                };
                StepStatus {
                    epoch: v.epoch,
                    step: v.steps,
                    elbo,
                    reconstruction,
                    kl,
                    kl_weight,
                    finished: v.finished,
                    lr: v.config.lr,
                    epochs: v.config.epochs,
                    beta: v.config.max_kl_weight,
                    kl_warmup_epochs: v.config.kl_warmup_epochs,
                }
            });
        }
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
            beta: self.trainer.config.max_kl_weight,
            kl_warmup_epochs: self.trainer.config.kl_warmup_epochs,
        }
    }

    /// Runs up to `n_steps` optimisation steps and returns
    /// `{epoch, step, elbo, reconstruction, kl, kl_weight, finished, lr, epochs}`
    /// (losses of the last finished epoch, or of the last step before the first epoch
    /// ends; `elbo` is -(reconstruction + kl) per cell, higher is better).
    pub fn step(&mut self, n_steps: u32) -> Result<JsValue, JsError> {
        if self.gpu_run().is_some() {
            return Err(JsError::new("this session trains on the GPU: use gpu_step"));
        }
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
        match self.gpu_run() {
            Some(run) => run.with_view(|v| to_js_value(&v.history)),
            None => to_js_value(&self.trainer.history),
        }
    }

    /// The ELBO of every finished epoch (for the chart).
    pub fn elbo_history(&self) -> Vec<f64> {
        match self.gpu_run() {
            Some(run) => run.with_view(|v| v.history.iter().map(|r| r.elbo).collect()),
            None => self.trainer.history.iter().map(|r| r.elbo).collect(),
        }
    }

    /// Opens the browser's WebGPU adapter and moves training there, from the current
    /// state. The promise resolves with the adapter's description, or rejects with why
    /// the GPU cannot be used (training then stays on the CPU).
    pub fn start_gpu(&mut self) -> Result<js_sys::Promise, JsError> {
        if let Some(run) = self.gpu_run() {
            return Ok(js_sys::Promise::resolve(&JsValue::from_str(&run.adapter)));
        }
        let state = self.trainer.checkpoint().map_err(to_js)?;
        let schedule = self.trainer.schedule.clone();
        let matrix = self.prep.matrix.clone();
        let slot = self.gpu.clone();
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            let run = GpuRun::start(matrix, schedule, state)
                .await
                .map_err(|e| JsValue::from(JsError::new(&e.to_string())))?;
            let adapter = run.adapter.clone();
            *slot.borrow_mut() = Some(Rc::new(run));
            Ok(JsValue::from_str(&adapter))
        }))
    }

    /// Runs up to `n` steps on the GPU; the promise resolves when they are done (read
    /// `status` then). After a GPU error the run continues on the CPU: see
    /// [`Session::take_gpu_fallback`].
    pub fn gpu_step(&self, n: u32) -> Result<js_sys::Promise, JsError> {
        let run = self
            .gpu_run()
            .ok_or_else(|| JsError::new("the GPU is not in use"))?;
        // Learning rate and beta changed while the GPU was starting went to the CPU
        // trainer (set_lr and set_beta keep both): carry them over.
        let (lr, beta) = (self.trainer.config.lr, self.trainer.config.max_kl_weight);
        let (run_lr, run_beta) = run.with_view(|v| (v.config.lr, v.config.max_kl_weight));
        if lr != run_lr {
            run.set_lr(lr).map_err(to_js)?;
        }
        if beta != run_beta {
            run.set_beta(beta).map_err(to_js)?;
        }
        Ok(wasm_bindgen_futures::future_to_promise(async move {
            run.step(n)
                .await
                .map_err(|e| JsValue::from(JsError::new(&e.to_string())))?;
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// Fault injection for tests of the CPU fallback: the GPU device is lost when step
    /// `step` begins, as after a driver reset. Does nothing when the GPU is not in use.
    pub fn test_lose_gpu_at_step(&self, step: u32) {
        if let Some(run) = self.gpu_run() {
            run.lose_device_at_step(step);
        }
    }

    /// Whether a group of GPU steps is in flight.
    pub fn gpu_busy(&self) -> bool {
        self.gpu_run().is_some_and(|r| r.busy())
    }

    /// Where training runs: `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        if self.gpu_run().is_some() {
            "webgpu".into()
        } else {
            "cpu".into()
        }
    }

    /// After a GPU error: the CPU takes the run over from its last state read back;
    /// returns the error (once), or nothing when the GPU is fine.
    pub fn take_gpu_fallback(&mut self) -> Option<String> {
        let run = self.gpu_run()?;
        let (trainer, why) = run.take_fallback()?;
        self.trainer = trainer;
        *self.gpu.borrow_mut() = None;
        self.cache = None;
        self.explorer = None;
        Some(why)
    }

    fn ensure_latent(&mut self) -> Result<(), JsError> {
        let step = self.steps_now();
        if !matches!(&self.cache, Some((s, _, _)) if *s == step) {
            let params = self.current_params()?;
            let (mean, var) = latent(
                &params,
                &self.prep.matrix,
                &self.prep.batch_codes,
                &self.all_cells,
            );
            self.cache = Some((step, mean, var));
        }
        Ok(())
    }

    /// The last computed latent means (computing them only if there are none yet), so the
    /// charts and the probe's nearest cells match the map without re-encoding every cell.
    fn latest_latent(&mut self) -> Result<(), JsError> {
        if self.cache.is_none() {
            self.ensure_latent()?;
        }
        Ok(())
    }

    /// Latent means of the cells `start..start + count` (clamped to the cells there are)
    /// with the current parameters, row-major; they also replace those rows of the means
    /// that [`Session::kl_per_dim`] and [`Session::nearest_profile`] use. The page
    /// re-encodes a large data set a slice per frame with this, so no frame stalls.
    pub fn latent_range(&mut self, start: usize, count: usize) -> Result<Vec<f32>, JsError> {
        self.latest_latent()?;
        let n = self.prep.matrix.n_cells;
        let start = start.min(n);
        let end = start.saturating_add(count).min(n);
        let params = self.current_params()?;
        let cells: Vec<usize> = (start..end).collect();
        let (mean, var) = latent(&params, &self.prep.matrix, &self.prep.batch_codes, &cells);
        let d = self.n_latent;
        if let Some((step, m, v)) = self.cache.as_mut() {
            m[start * d..end * d].copy_from_slice(&mean);
            v[start * d..end * d].copy_from_slice(&var);
            // Rows from different steps: the next `latent` call encodes every cell again.
            *step = u64::MAX;
        }
        Ok(mean)
    }

    /// Latent means of every cell (input order), row-major n_cells x n_latent.
    pub fn latent(&mut self) -> Result<Vec<f32>, JsError> {
        self.ensure_latent()?;
        Ok(self.cache.as_ref().map(|c| c.1.clone()).unwrap_or_default())
    }

    /// Mean KL(q(z|x) || N(0, I)) of each latent dimension over the training cells, in
    /// nats (the closed form `eval::evaluate` uses), for the encoder of the last
    /// [`Session::latent`] call (the map's).
    pub fn kl_per_dim(&mut self) -> Result<Vec<f64>, JsError> {
        self.latest_latent()?;
        let z = self.n_latent;
        let (_, mean, var) = self.cache.as_ref().expect("latent was just computed");
        let mut kl = vec![0.0f64; z];
        for &c in &self.prep.train_cells {
            for (j, k) in kl.iter_mut().enumerate() {
                let mu = f64::from(mean[c * z + j]);
                let v = f64::from(var[c * z + j]);
                *k += 0.5 * (v + mu * mu - 1.0 - v.ln());
            }
        }
        let n = self.prep.train_cells.len().max(1) as f64;
        Ok(kl.into_iter().map(|k| k / n).collect())
    }

    /// Total counts of every cell over the modelled genes (the library size the model
    /// sees), input order.
    pub fn library_sizes(&self) -> Vec<f32> {
        self.prep
            .matrix
            .library_sizes()
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }

    /// Cell ids, input order (the rows of `latent`).
    pub fn cell_ids(&self) -> Vec<String> {
        self.prep.matrix.cell_ids.clone()
    }

    /// Whether each cell trains (false: removed by QC, or no counts in the model's genes).
    pub fn trained_mask(&self) -> Vec<u8> {
        let mut mask = vec![0u8; self.prep.matrix.n_cells];
        for &c in &self.prep.train_cells {
            mask[c] = 1;
        }
        mask
    }

    /// Batch levels in code order (one unnamed level without a batch column).
    pub fn batch_levels(&self) -> Vec<String> {
        self.prep.batch_levels.clone()
    }

    /// The batch column, when the model has one.
    #[wasm_bindgen(getter)]
    pub fn batch_key(&self) -> Option<String> {
        self.batch_key.clone()
    }

    /// Where the model came from: `"new"`, or a description of the imported model.
    #[wasm_bindgen(getter)]
    pub fn origin(&self) -> String {
        self.origin.clone()
    }

    /// The architecture: `{n_genes, n_batches, n_hidden, n_latent, n_layers, likelihood,
    /// dispersion, ...}` (config.json's `model`).
    pub fn model_config(&self) -> Result<JsValue, JsError> {
        to_js_value(&self.config)
    }

    /// What QC and gene selection did, one line each.
    pub fn preprocess_report(&self) -> Vec<String> {
        self.prep.report.to_lines()
    }

    /// `model.safetensors` of the current parameters, byte for byte what `cellvae train`
    /// writes.
    pub fn model_safetensors(&mut self) -> Result<Vec<u8>, JsError> {
        let params = self.current_params()?;
        to_safetensors(&params).map_err(to_js)
    }

    /// `config.json` of the current model (the format `cellvae train` writes).
    pub fn model_config_json(&self) -> Result<String, JsError> {
        let files = ModelFiles {
            format: "cellvae-model".into(),
            cellvae_version: env!("CARGO_PKG_VERSION").into(),
            model: self.config.clone(),
            gene_ids: self.prep.matrix.gene_ids.clone(),
            gene_names: self.prep.matrix.gene_names.clone(),
            batch_key: self.batch_key.clone(),
            batch_levels: self.prep.batch_levels.clone(),
            preprocessing: serde_json::to_value(&self.prep.report).unwrap_or_default(),
            training: match self.gpu_run() {
                Some(run) => run.with_view(|v| serde_json::to_value(&v.config)),
                None => serde_json::to_value(&self.trainer.config),
            }
            .unwrap_or_default(),
        };
        serde_json::to_string_pretty(&files).map_err(|e| JsError::new(&e.to_string()))
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
        // Both the CPU trainer and the GPU run (the CPU's is what a GPU run starting now
        // picks up).
        self.trainer.set_lr(lr).map_err(to_js)?;
        if let Some(run) = self.gpu_run() {
            run.set_lr(lr).map_err(to_js)?;
        }
        Ok(())
    }

    /// Changes beta (the maximum KL weight) from the next step on.
    pub fn set_beta(&mut self, beta: f32) -> Result<(), JsError> {
        self.trainer.set_beta(beta).map_err(to_js)?;
        if let Some(run) = self.gpu_run() {
            run.set_beta(beta).map_err(to_js)?;
        }
        Ok(())
    }

    /// Expected counts (n x genes) of latent points `z` (n x n_latent) decoded with the
    /// current parameters for batch `batch` and library size `library`.
    pub fn decode(&mut self, z: Vec<f32>, batch: u32, library: f32) -> Result<Vec<f32>, JsError> {
        let step = self.steps_now();
        if self.explorer.is_none() || self.explorer_step != step {
            let params = self.current_params()?;
            self.explorer = Some(Explorer::new(params));
            self.explorer_step = step;
        }
        let explorer = self.explorer.as_mut().expect("explorer was just set");
        Ok(explorer.decode(&z, batch, library).map_err(to_js)?.expected)
    }

    /// Like [`Session::decode`], but only the columns of the genes `genes` (indices into
    /// `gene_names`): n x genes.len(), row-major.
    pub fn decode_genes(
        &mut self,
        z: Vec<f32>,
        batch: u32,
        library: f32,
        genes: Vec<u32>,
    ) -> Result<Vec<f32>, JsError> {
        let g = self.prep.matrix.n_genes;
        if let Some(&bad) = genes.iter().find(|&&i| i as usize >= g) {
            return Err(JsError::new(&format!(
                "gene {bad} does not exist (the model has {g})"
            )));
        }
        let expected = self.decode(z, batch, library)?;
        let mut out = Vec::with_capacity(expected.len() / g.max(1) * genes.len());
        for row in expected.chunks_exact(g) {
            out.extend(genes.iter().map(|&i| row[i as usize]));
        }
        Ok(out)
    }

    /// The `k` training cells nearest to the latent point `z` (by the latent means of the
    /// last [`Session::latent`] call, as on the map) and
    /// their mean observed profile scaled to library size `library`
    /// (mean over the cells of count / cell's total counts * library), for comparison with
    /// the decoded profile: `{cells: [int], distances: [float], mean: [float]}` (mean per
    /// modelled gene).
    pub fn nearest_profile(
        &mut self,
        z: Vec<f32>,
        k: usize,
        library: f32,
    ) -> Result<JsValue, JsError> {
        if z.len() != self.n_latent {
            return Err(JsError::new(&format!(
                "a latent point has {} coordinates",
                self.n_latent
            )));
        }
        self.latest_latent()?;
        let (_, mean, _) = self.cache.as_ref().expect("latent was just computed");
        let d = self.n_latent;
        // Only cells that train (QC-removed cells are not part of the model's data).
        let train = &self.prep.train_cells;
        let mut pts = Vec::with_capacity(train.len() * d);
        for &c in train {
            pts.extend_from_slice(&mean[c * d..(c + 1) * d]);
        }
        let near = nearest_cells(&pts, d, &z, k);
        let m = &self.prep.matrix;
        let sizes = m.library_sizes();
        let mut profile = vec![0.0f64; m.n_genes];
        let mut used = 0usize;
        for &(pos, _) in &near {
            let c = train[pos];
            if sizes[c] <= 0.0 {
                continue;
            }
            let (idx, val) = m.row(c);
            for (&g, &v) in idx.iter().zip(val) {
                profile[g as usize] += f64::from(v) / sizes[c] * f64::from(library);
            }
            used += 1;
        }
        let n = used.max(1) as f64;
        let result = serde_json::json!({
            "cells": near.iter().map(|&(pos, _)| train[pos]).collect::<Vec<_>>(),
            "distances": near.iter().map(|&(_, dist)| dist).collect::<Vec<_>>(),
            "mean": profile.iter().map(|v| (v / n) as f32).collect::<Vec<_>>(),
        });
        to_js_value(&result)
    }

    /// Names of the modelled genes, in the order of `decode`'s columns.
    pub fn gene_names(&self) -> Vec<String> {
        self.prep.matrix.gene_names.clone()
    }
}
