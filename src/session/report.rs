//! What a session reports: the training status (often) and the facts the page needs
//! once per session (sizes, names, metadata, architecture).

use super::gpu_run::GpuView;
use super::{Run, Session};
use crate::model::{ModelConfig, StepLosses};
use crate::pipeline::column_codes;
use crate::train::EpochRecord;

/// What the page shows about training (field names are the page's).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    /// Epochs finished.
    pub epoch: u32,
    /// Steps taken.
    pub step: u32,
    /// ELBO per cell of the last finished epoch (or of the last step before the first
    /// epoch ends), higher is better.
    pub elbo: Option<f64>,
    /// Reconstruction error per cell, as `elbo`.
    pub reconstruction: Option<f64>,
    /// KL per cell, as `elbo`.
    pub kl: Option<f64>,
    /// The KL weight then.
    pub kl_weight: Option<f32>,
    /// Whether the configured epochs are done.
    pub finished: bool,
    /// The learning rate now (after any recovery lowered it).
    pub lr: f32,
    /// Epochs configured.
    pub epochs: u32,
    /// Beta, the maximum KL weight.
    pub beta: f32,
    /// Epochs of KL warm-up.
    pub kl_warmup_epochs: u32,
    /// Where training runs: `"cpu"` or `"webgpu"`.
    pub training_backend: &'static str,
    /// Recoveries from a divergence so far (non-finite or exploding losses: the run
    /// went back to a snapshot and lowered the learning rate).
    pub recoveries: usize,
    /// The last recovery in words, for a note on the page: the step, why, the step
    /// gone back to and the new learning rate (`None` before any).
    pub last_recovery: Option<String>,
}

/// A metadata column's codes for every cell, with its levels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Each cell's level (None: missing).
    pub codes: Vec<Option<u32>>,
    /// The levels in code order.
    pub levels: Vec<String>,
}

/// What the page needs once per session: sizes, names, metadata, the architecture and
/// where the model came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Facts {
    /// Latent dimensions.
    pub n_latent: usize,
    /// Cells in the map (every input cell).
    pub n_cells: usize,
    /// Genes modelled.
    pub n_genes: usize,
    /// Cells that train.
    pub n_train: usize,
    /// The modelled genes, in the order of decoded profiles.
    pub gene_names: Vec<String>,
    /// Cell ids, input order (the rows of the latent means).
    pub cell_ids: Vec<String>,
    /// Each cell's total counts over the modelled genes.
    pub library_sizes: Vec<f32>,
    /// The median library size of the training cells.
    pub median_library: f32,
    /// Every metadata column.
    pub columns: Vec<Column>,
    /// The architecture.
    pub model: ModelConfig,
    /// Batch levels in code order.
    pub batch_levels: Vec<String>,
    /// What QC and gene selection did, one line each.
    pub preprocess_report: Vec<String>,
    /// `"new"`, or a description of the imported model.
    pub origin: String,
    /// The batch column, when the model has one.
    pub batch_key: Option<String>,
    /// The label column used by default for colouring.
    pub label_key: Option<String>,
}

impl Session {
    /// The status now.
    pub fn status(&self) -> Status {
        let from = |last: &Option<(StepLosses, f32)>, history: &[EpochRecord]| match (
            history.last(),
            last,
        ) {
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
        let view = |v: &GpuView| {
            let (elbo, reconstruction, kl, kl_weight) = from(&v.last, &v.history);
            Status {
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
                training_backend: "webgpu",
                recoveries: v.recoveries.len(),
                last_recovery: v.recoveries.last().map(|r| r.to_string()),
            }
        };
        match &self.run {
            Run::Cpu(t) => {
                let (elbo, reconstruction, kl, kl_weight) = from(&self.last, &t.history);
                Status {
                    epoch: t.epoch(),
                    step: t.steps(),
                    elbo,
                    reconstruction,
                    kl,
                    kl_weight,
                    finished: t.finished(),
                    lr: t.config.lr,
                    epochs: t.config.epochs,
                    beta: t.config.max_kl_weight,
                    kl_warmup_epochs: t.config.kl_warmup_epochs,
                    training_backend: "cpu",
                    recoveries: t.recoveries.len(),
                    last_recovery: t.last_recovery(),
                }
            }
            Run::Gpu(run) => run.with_view(view),
            Run::Failed(v, _) => view(v),
        }
    }

    /// What the page needs once per session.
    pub fn facts(&self) -> Facts {
        let m = &self.data.matrix;
        let columns = m
            .obs
            .columns
            .iter()
            .map(|col| {
                let (codes, levels) = column_codes(col);
                Column {
                    name: col.name.clone(),
                    codes,
                    levels,
                }
            })
            .collect();
        Facts {
            n_latent: self.config.n_latent,
            n_cells: m.n_cells,
            n_genes: m.n_genes,
            n_train: self.data.train_cells.len(),
            gene_names: m.gene_names.clone(),
            cell_ids: m.cell_ids.clone(),
            library_sizes: m.library_sizes().into_iter().map(|v| v as f32).collect(),
            median_library: self.data.median_library(),
            columns,
            model: self.config.clone(),
            batch_levels: self.data.batch_levels.clone(),
            preprocess_report: self.data.report.to_lines(),
            origin: self.origin.clone(),
            batch_key: self.batch_key.clone(),
            label_key: self.label_key.clone(),
        }
    }
}
