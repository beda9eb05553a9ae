//! A session: everything the page does with loaded data and a model that is not
//! JavaScript glue, native and tested. It prepares data with [`SessionOptions`], builds
//! the model (new, or from saved files), trains it on the CPU or on the GPU
//! ([`Run`]), holds lr and beta in one place, and answers what the page shows: status,
//! history, latent means (cached per parameter version), KL per dimension, decoded
//! profiles, the nearest cells' profile, the files to save.
//!
//! `web.rs` wraps it for JavaScript; the page's Web Worker owns one.

pub mod codec;
mod compare;
mod evaluate;
pub mod gpu_run;
mod lessons;
pub mod options;
mod report;
pub mod resume;
mod teach;
pub mod views;

use crate::error::{Error, Result};
use crate::eval::latent_raw;
use crate::explore::Explorer;
use crate::model::io::to_safetensors;
use crate::model::{CpuBackend, ModelConfig, Params, StepLosses, TrainState};
use crate::pipeline::{prepare, prepare_for_model, Prepared};
use crate::train::{EpochRecord, Schedule, Trainer};
use crate::CountMatrix;
pub use compare::{Comparison, GeneRow};
pub use evaluate::EVAL_SAMPLES;
use gpu_run::{GpuRun, GpuView};
pub use options::{check_beta, check_lr, RunOptions, SessionOptions, Words};
pub use report::{Column, Facts, Status};
use std::rc::Rc;
pub use views::NearestProfile;

/// Where the run trains.
pub enum Run {
    /// On the CPU backend, stepped synchronously.
    Cpu(Box<Trainer<CpuBackend>>),
    /// On the GPU, stepped through [`GpuRun::step`] (the session keeps a handle while
    /// a group of steps is in flight).
    Gpu(Rc<GpuRun>),
    /// The GPU failed and the CPU could not take over: the last view stays to explore.
    Failed(Box<GpuView>, String),
}

/// What starting the GPU needs, taken from the session (see [`Session::gpu_start`]).
pub struct GpuStart {
    data: Rc<Prepared>,
    schedule: Schedule,
    state: TrainState,
    clock: fn() -> f64,
    version: u64,
}

impl GpuStart {
    /// Opens the GPU and uploads the state; hand the result to [`Session::adopt_gpu`].
    pub async fn open(self) -> Result<(GpuRun, u64)> {
        let run = GpuRun::start(self.data, self.schedule, self.state, self.clock).await?;
        Ok((run, self.version))
    }
}

/// Latent means and raw variance outputs of every cell, and the parameter version they
/// were computed at (`u64::MAX`: rows from different versions).
struct Latent {
    version: u64,
    mean: Vec<f32>,
    raw_v: Vec<f32>,
}

/// A training session on loaded data.
pub struct Session {
    data: Rc<Prepared>,
    run: Run,
    config: ModelConfig,
    label_key: Option<String>,
    batch_key: Option<String>,
    origin: String,
    /// The last finite CPU step's losses and KL weight.
    last: Option<(StepLosses, f32)>,
    latent: Option<Latent>,
    explorer: Option<(u64, Explorer)>,
    /// Why the GPU run moved to the CPU, until the page has been told.
    fallback: Option<String>,
    clock: fn() -> f64,
    /// The run record of the last checkpoint ([`Session::run_record`]).
    saved_record: Option<String>,
    /// The prepared data's fingerprint, once computed (run records carry it).
    data_print: Option<String>,
}

impl Session {
    /// Prepares `m` (QC, gene selection, batch and label columns) and builds a new
    /// model and its trainer. `clock` returns seconds.
    pub fn new(m: &CountMatrix, opts: &SessionOptions, clock: fn() -> f64) -> Result<Session> {
        let prep_opts = opts.prepare_options(m, Words::Page)?;
        let (label_key, batch_key) = (prep_opts.label_key.clone(), prep_opts.batch_key.clone());
        let prep = prepare(m, &prep_opts)?;
        let run = opts.run();
        let config = run.model_config(
            prep.matrix.n_genes,
            prep.batch_levels.len(),
            batch_key.is_some(),
            Words::Page,
        )?;
        let params = Params::init(&config, run.seed)?;
        Session::build(
            prep,
            params,
            &run,
            label_key,
            batch_key,
            "new".into(),
            clock,
        )
    }

    /// A session around a saved model (`model.safetensors` bytes and `config.json`
    /// text, as `cellvae train` writes them; or an scvi-tools `model.pt`, whose bytes
    /// come in place of the safetensors and whose configuration is inside) on `m`: the data's genes are matched to
    /// the model's (by id, then name; a missing gene is an error), batches by the
    /// model's batch column. Training may continue, at full beta (no warm-up). Of
    /// `opts` only the label column, lr, beta, seed, minibatch size and epochs apply.
    pub fn from_model(
        m: &CountMatrix,
        safetensors: &[u8],
        config_json: &str,
        opts: &SessionOptions,
        clock: fn() -> f64,
    ) -> Result<Session> {
        // An scvi-tools model.pt (a torch zip) carries its own configuration.
        let scvi = crate::model::scvi::is_torch_zip(safetensors);
        let weights_name = if scvi {
            "model.pt"
        } else {
            "model.safetensors"
        };
        let (files, params) =
            crate::model::io::read_model(safetensors, weights_name, config_json, "config.json")?;
        let label_key = opts.label_key(m);
        let prep = prepare_for_model(&files, m, label_key.as_deref(), None)?;
        let mut run = opts.run();
        run.kl_warmup_epochs = Some(0);
        run.n_latent = files.model.n_latent;
        let origin = format!(
            "a model from {} ({}: {} genes, {}-D latent, {} hidden x {} layers, {:?})",
            if scvi { "model.pt" } else { "config.json" },
            if scvi {
                "scvi-tools".to_string()
            } else {
                format!("cellvae {}", files.cellvae_version)
            },
            files.model.n_genes,
            files.model.n_latent,
            files.model.n_hidden,
            files.model.n_layers,
            files.model.likelihood
        );
        Session::build(
            prep,
            params,
            &run,
            label_key,
            files.batch_key,
            origin,
            clock,
        )
    }

    fn build(
        prep: Prepared,
        params: Params,
        run: &RunOptions,
        label_key: Option<String>,
        batch_key: Option<String>,
        origin: String,
        clock: fn() -> f64,
    ) -> Result<Session> {
        let tc = run.train_config(prep.train_cells.len(), Words::Page)?;
        let trainer = Trainer::new(
            CpuBackend::new(),
            tc,
            TrainState::new(params),
            prep.train_cells.clone(),
            prep.batch_codes.clone(),
            clock,
        )?;
        Ok(Session::around(
            prep, trainer, label_key, batch_key, origin, clock,
        ))
    }

    /// A session around a CPU trainer on `prep`.
    fn around(
        prep: Prepared,
        trainer: Trainer<CpuBackend>,
        label_key: Option<String>,
        batch_key: Option<String>,
        origin: String,
        clock: fn() -> f64,
    ) -> Session {
        Session {
            data: Rc::new(prep),
            config: trainer.resume_state().params.config.clone(),
            run: Run::Cpu(Box::new(trainer)),
            label_key,
            batch_key,
            origin,
            last: None,
            latent: None,
            explorer: None,
            fallback: None,
            clock,
            saved_record: None,
            data_print: None,
        }
    }

    // ---- training -----------------------------------------------------------------

    /// Runs up to `n_steps` steps on the CPU (stopping when training is done).
    pub fn step(&mut self, n_steps: u32) -> Result<Status> {
        let Run::Cpu(trainer) = &mut self.run else {
            return Err(Error::Config(
                "this session trains on the GPU: its steps run through the GPU run".into(),
            ));
        };
        for _ in 0..n_steps {
            if trainer.finished() {
                break;
            }
            let kl_weight = trainer.config.kl_weight(trainer.epoch());
            let (losses, _) = trainer.step(&self.data.matrix)?;
            if losses.finite {
                self.last = Some((losses, kl_weight));
            }
        }
        Ok(self.status())
    }

    /// Changes the learning rate from the next step on.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        let lr = check_lr(lr, Words::Page)?;
        let beta = self.status().beta;
        self.set_hyper(lr, beta)
    }

    /// Changes beta (the maximum KL weight) from the next step on.
    pub fn set_beta(&mut self, beta: f32) -> Result<()> {
        let beta = check_beta(beta, Words::Page)?;
        let lr = self.status().lr;
        self.set_hyper(lr, beta)
    }

    fn set_hyper(&mut self, lr: f32, beta: f32) -> Result<()> {
        match &mut self.run {
            Run::Cpu(t) => {
                t.set_lr(lr)?;
                t.set_beta(beta)
            }
            Run::Gpu(run) => run.set_hyper(lr, beta),
            Run::Failed(_, why) => Err(Error::Gpu(why.clone())),
        }
    }

    /// What opening the GPU needs (a checkpoint of the CPU run, its schedule and data).
    /// Errors when the run is not on the CPU.
    pub fn gpu_start(&mut self) -> Result<GpuStart> {
        let Run::Cpu(trainer) = &mut self.run else {
            return Err(Error::Config("the run is not on the CPU".into()));
        };
        Ok(GpuStart {
            state: trainer.checkpoint()?,
            schedule: trainer.schedule.clone(),
            data: self.data.clone(),
            clock: self.clock,
            version: trainer.version(),
        })
    }

    /// Moves training to the GPU run opened from [`Session::gpu_start`], unless the CPU
    /// run moved on since (then the run stays on the CPU: an error says so). lr and
    /// beta set while the GPU opened carry over.
    pub fn adopt_gpu(&mut self, run: GpuRun, started_at_version: u64) -> Result<()> {
        let Run::Cpu(trainer) = &self.run else {
            return Err(Error::Config("the run is not on the CPU".into()));
        };
        if trainer.version() != started_at_version {
            return Err(Error::Config(
                "training moved on while the GPU was opening; start the GPU again".into(),
            ));
        }
        run.set_hyper(trainer.config.lr, trainer.config.max_kl_weight)?;
        self.run = Run::Gpu(Rc::new(run));
        Ok(())
    }

    /// The GPU run, to step it (`None` on the CPU).
    pub fn gpu_run(&self) -> Option<Rc<GpuRun>> {
        match &self.run {
            Run::Gpu(run) => Some(run.clone()),
            _ => None,
        }
    }

    /// After a group of GPU steps: when the GPU failed, the CPU takes the run over from
    /// its last state read back (or the run is marked failed). Returns why the GPU was
    /// left, once.
    pub fn take_gpu_fallback(&mut self) -> Option<String> {
        if let Run::Gpu(run) = &self.run {
            match run.take_fallback() {
                Some(Ok((trainer, why))) => {
                    self.run = Run::Cpu(Box::new(trainer));
                    self.fallback = Some(why);
                    self.latent = None;
                    self.explorer = None;
                }
                Some(Err(why)) => {
                    let view = run.with_view(|v| v.clone());
                    self.run = Run::Failed(Box::new(view), why.clone());
                    self.fallback = Some(why);
                }
                None => {}
            }
        }
        self.fallback.take()
    }

    /// Fault injection for tests of the CPU fallback: the GPU device is lost when step
    /// `step` begins. Does nothing when the GPU is not in use.
    pub fn test_lose_gpu_at_step(&self, step: u32) {
        if let Run::Gpu(run) = &self.run {
            run.lose_device_at_step(step);
        }
    }

    /// Fault injection for tests of the CPU fallback: `kind` (`"lost"`: the device is
    /// destroyed; `"oom"`: a buffer allocation runs out of memory; `"shader"`: a shader
    /// fails validation) at training step `step` (see
    /// [`GpuBackend::fault_at_step`](crate::model::GpuBackend::fault_at_step)). An
    /// error when the kind is unknown or the GPU is not in use.
    pub fn test_gpu_fault(&self, kind: &str, step: u32) -> Result<()> {
        let fault = crate::model::GpuFault::parse(kind).ok_or_else(|| {
            Error::Config(format!(
                "unknown GPU fault '{kind}': expected lost, oom or shader"
            ))
        })?;
        match &self.run {
            Run::Gpu(run) => {
                run.fault_at_step(step, fault);
                Ok(())
            }
            _ => Err(Error::Config(
                "training does not run on the GPU: there is no GPU to fail".into(),
            )),
        }
    }

    /// Where training runs: `"webgpu"` or `"cpu"`.
    pub fn training_backend(&self) -> &'static str {
        match &self.run {
            Run::Cpu(_) => "cpu",
            Run::Gpu(_) | Run::Failed(..) => "webgpu",
        }
    }

    /// One GPU training step's kernels in recording order (empty: training is on the
    /// CPU, or no GPU step ran yet).
    pub fn step_kernels(&self) -> Vec<crate::backend::gpu::kernels::KernelRun> {
        match &self.run {
            Run::Gpu(run) => run.with_view(|v| v.step_kernels.clone()),
            Run::Cpu(_) | Run::Failed(..) => Vec::new(),
        }
    }

    /// The run (to inspect it).
    pub fn run(&self) -> &Run {
        &self.run
    }

    /// Finished epochs.
    pub fn history(&self) -> Vec<EpochRecord> {
        match &self.run {
            Run::Cpu(t) => t.history.clone(),
            Run::Gpu(run) => run.with_view(|v| v.history.clone()),
            Run::Failed(v, _) => v.history.clone(),
        }
    }

    /// A number that changes whenever the parameters may have (steps, restores after a
    /// non-finite step, a GPU read-back). Caches of latent means and decoders key on it.
    pub fn params_version(&self) -> u64 {
        match &self.run {
            Run::Cpu(t) => t.version(),
            Run::Gpu(run) => run.with_view(|v| v.version),
            Run::Failed(v, _) => v.version,
        }
    }

    /// The current parameters (on the GPU: the last read back).
    pub fn params(&mut self) -> Result<Params> {
        match &mut self.run {
            Run::Cpu(t) => t.params(),
            Run::Gpu(run) => Ok(run.with_view(|v| v.params.clone())),
            Run::Failed(v, _) => Ok(v.params.clone()),
        }
    }

    // ---- latent space ---------------------------------------------------------------

    fn encode(&mut self, cells: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
        let params = self.params()?;
        Ok(latent_raw(
            &params,
            &self.data.matrix,
            &self.data.batch_codes,
            cells,
        ))
    }

    fn ensure_latent(&mut self, fresh: bool) -> Result<&Latent> {
        let version = self.params_version();
        let stale = match &self.latent {
            None => true,
            Some(l) => fresh && l.version != version,
        };
        if stale {
            let all: Vec<usize> = (0..self.data.matrix.n_cells).collect();
            let (mean, raw_v) = self.encode(&all)?;
            self.latent = Some(Latent {
                version,
                mean,
                raw_v,
            });
        }
        self.latent
            .as_ref()
            .ok_or_else(|| Error::Config("internal: no latent means".into()))
    }

    /// Latent means of every cell with the current parameters (input order),
    /// row-major n_cells x n_latent.
    pub fn latent(&mut self) -> Result<Vec<f32>> {
        Ok(self.ensure_latent(true)?.mean.clone())
    }

    /// Latent means of the cells `start..start + count` (clamped to the cells there
    /// are) with the current parameters; they also replace those rows of the means that
    /// [`Session::kl_per_dim`] and [`Session::nearest_profile`] use, so a large data set
    /// can be re-encoded a slice at a time.
    pub fn latent_range(&mut self, start: usize, count: usize) -> Result<Vec<f32>> {
        self.ensure_latent(false)?;
        let n = self.data.matrix.n_cells;
        let start = start.min(n);
        let end = start.saturating_add(count).min(n);
        let cells: Vec<usize> = (start..end).collect();
        let (mean, raw_v) = self.encode(&cells)?;
        let d = self.config.n_latent;
        if let Some(l) = self.latent.as_mut() {
            l.mean[start * d..end * d].copy_from_slice(&mean);
            l.raw_v[start * d..end * d].copy_from_slice(&raw_v);
            // Rows from different versions: the next full `latent` encodes every cell.
            l.version = u64::MAX;
        }
        Ok(mean)
    }

    /// Mean KL(q(z|x) || N(0, I)) of each latent dimension over the training cells, in
    /// nats, for the latent means last computed (the map's).
    pub fn kl_per_dim(&mut self) -> Result<Vec<f64>> {
        let d = self.config.n_latent;
        let data = self.data.clone();
        let l = self.ensure_latent(false)?;
        Ok(views::kl_per_dim(&l.mean, &l.raw_v, d, &data.train_cells))
    }

    /// The `k` training cells nearest the latent point `z` (by the latent means last
    /// computed, as on the map) and their mean observed profile at library size
    /// `library`, for comparison with the decoded profile.
    pub fn nearest_profile(&mut self, z: &[f32], k: usize, library: f32) -> Result<NearestProfile> {
        let d = self.config.n_latent;
        let data = self.data.clone();
        let l = self.ensure_latent(false)?;
        views::nearest_profile(&data.matrix, &l.mean, d, &data.train_cells, z, k, library)
    }

    /// Expected counts (n x genes) of the latent points `z` (n x n_latent) decoded with
    /// the current parameters for batch `batch` and library size `library`.
    pub fn decode(&mut self, z: &[f32], batch: u32, library: f32) -> Result<Vec<f32>> {
        let version = self.params_version();
        if !matches!(&self.explorer, Some((v, _)) if *v == version) {
            let params = self.params()?;
            self.explorer = Some((version, Explorer::new(params)));
        }
        match &mut self.explorer {
            Some((_, explorer)) => Ok(explorer.decode(z, batch, library)?.expected),
            None => Err(Error::Config("internal: no decoder".into())),
        }
    }

    /// Like [`Session::decode`], only the columns of `genes` (indices into the modelled
    /// genes): n x genes.len(), row-major.
    pub fn decode_genes(
        &mut self,
        z: &[f32],
        batch: u32,
        library: f32,
        genes: &[u32],
    ) -> Result<Vec<f32>> {
        let g = self.data.matrix.n_genes;
        if let Some(&bad) = genes.iter().find(|&&i| i as usize >= g) {
            return Err(Error::Config(format!(
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

    // ---- data and model -------------------------------------------------------------

    /// The prepared data (every input cell, the modelled genes).
    pub fn data(&self) -> &Prepared {
        &self.data
    }

    /// The architecture.
    pub fn model_config(&self) -> &ModelConfig {
        &self.config
    }

    /// The label column used by default for colouring.
    pub fn label_key(&self) -> Option<&str> {
        self.label_key.as_deref()
    }

    /// The batch column, when the model has one.
    pub fn batch_key(&self) -> Option<&str> {
        self.batch_key.as_deref()
    }

    /// Where the model came from: `"new"`, or a description of the imported model.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `model.safetensors` of the current parameters, byte for byte what `cellvae train`
    /// writes.
    pub fn model_safetensors(&mut self) -> Result<Vec<u8>> {
        to_safetensors(&self.params()?)
    }

    /// `config.json` of the current model (the format `cellvae train` writes).
    pub fn model_config_json(&self) -> Result<String> {
        let training = self.training_config();
        let files = self
            .data
            .model_files(&self.config, self.batch_key.clone(), &training);
        serde_json::to_string_pretty(&files)
            .map_err(|e| Error::Config(format!("cannot write config.json: {e}")))
    }

    /// The training settings in force.
    fn training_config(&self) -> crate::train::TrainConfig {
        match &self.run {
            Run::Cpu(t) => t.config.clone(),
            Run::Gpu(run) => run.with_view(|v| v.config.clone()),
            Run::Failed(v, _) => v.config.clone(),
        }
    }

    /// The current model as scvi-tools' `model.pt` (what `cellvae export --format
    /// scvi-tools` writes): `scvi.model.SCVI.load(dir, adata=...)` loads it.
    pub fn scvi_model(&mut self) -> Result<Vec<u8>> {
        let params = self.params()?;
        let training = self.training_config();
        let files = self
            .data
            .model_files(&self.config, self.batch_key.clone(), &training);
        crate::model::scvi::write::write_scvi_model(&files, &params)
    }

    /// An AnnData `.h5ad` of the session's cells (the modelled genes; the counts as `X`
    /// unless `keep_counts` is false), their metadata, the latent means with the current
    /// parameters (`obsm["X_cellvae"]`) and the settings (`uns["cellvae"]`): what `cellvae
    /// train --out-h5ad` writes.
    pub fn h5ad(&mut self, keep_counts: bool) -> Result<Vec<u8>> {
        let mean = self.latent()?;
        let training = self.training_config();
        let settings = serde_json::json!({
            "model": self.config,
            "training": training,
            "batch_key": self.batch_key,
            "origin": self.origin,
        });
        let text = serde_json::to_string_pretty(&settings)
            .map_err(|e| Error::Config(format!("cannot write the settings: {e}")))?;
        crate::data::h5ad_out::write_h5ad(&crate::data::h5ad_out::H5adContent {
            matrix: &self.data.matrix,
            keep_counts,
            obsm: vec![("X_cellvae", &mean, self.config.n_latent)],
            uns: vec![("cellvae", text)],
        })
    }
}
