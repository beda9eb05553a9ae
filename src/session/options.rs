//! Settings of a run, one path from what a user chose to [`ModelConfig`] and
//! [`TrainConfig`], shared by the page ([`SessionOptions`], from a JS object) and the
//! command line (`cellvae train`). Every check happens here, once, before any data is
//! prepared or any parameter allocated, and its message names the setting in the words
//! of the front end that asked ([`Words`]): `--lr` on the command line, "learning rate"
//! in the page.

use crate::data::preprocess::QcOptions;
use crate::data::CountMatrix;
use crate::error::{Error, Result};
use crate::model::{Dispersion, Likelihood, ModelConfig};
use crate::pipeline::PrepareOptions;
use crate::train::TrainConfig;

/// Which front end's names a message uses for a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Words {
    /// The command line's flags (`--n-latent`).
    Cli,
    /// The page's labels ("latent dimensions").
    Page,
}

/// A setting a user can get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// Latent dimensions.
    NLatent,
    /// Hidden units per layer.
    NHidden,
    /// Hidden layers.
    NLayers,
    /// Learning rate.
    Lr,
    /// Beta, the maximum KL weight.
    Beta,
    /// Cells per minibatch.
    BatchSize,
    /// Epochs.
    Epochs,
    /// Highly variable genes to keep.
    TopGenes,
    /// The batch column.
    BatchKey,
    /// The label column.
    LabelKey,
    /// Batch in the encoder.
    EncodeBatch,
    /// Dispersion sharing.
    Dispersion,
}

impl Words {
    /// The name of `s` for this front end.
    pub fn name(self, s: Setting) -> &'static str {
        use Setting::*;
        match (self, s) {
            (Words::Cli, NLatent) => "--n-latent",
            (Words::Cli, NHidden) => "--n-hidden",
            (Words::Cli, NLayers) => "--n-layers",
            (Words::Cli, Lr) => "--lr",
            (Words::Cli, Beta) => "--beta",
            (Words::Cli, BatchSize) => "--batch-size",
            (Words::Cli, Epochs) => "--epochs",
            (Words::Cli, TopGenes) => "--top-genes",
            (Words::Cli, BatchKey) => "--batch-key",
            (Words::Cli, LabelKey) => "--label-key",
            (Words::Cli, EncodeBatch) => "--encode-batch",
            (Words::Cli, Dispersion) => "--dispersion gene-batch",
            (Words::Page, NLatent) => "latent dimensions",
            (Words::Page, NHidden) => "hidden units",
            (Words::Page, NLayers) => "layers",
            (Words::Page, Lr) => "learning rate",
            (Words::Page, Beta) => "beta",
            (Words::Page, BatchSize) => "minibatch size",
            (Words::Page, Epochs) => "epochs",
            (Words::Page, TopGenes) => "highly variable genes",
            (Words::Page, BatchKey) => "batch column",
            (Words::Page, LabelKey) => "label column",
            (Words::Page, EncodeBatch) => "batch in the encoder",
            (Words::Page, Dispersion) => "dispersion per gene and batch",
        }
    }

    fn error(self, s: Setting, problem: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}: {problem}", self.name(s)))
    }
}

/// The settings of a model and its training, as a user gives them.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunOptions {
    /// Latent dimensions (Z).
    pub n_latent: usize,
    /// Hidden units per layer (H).
    pub n_hidden: usize,
    /// Hidden layers in the encoder and in the decoder.
    pub n_layers: usize,
    /// Count likelihood.
    pub likelihood: Likelihood,
    /// Dispersion sharing.
    pub dispersion: Dispersion,
    /// Whether the encoder sees the batch too.
    pub encode_batch: bool,
    /// Adam learning rate.
    pub lr: f32,
    /// Maximum KL weight.
    pub beta: f32,
    /// Epochs of KL warm-up (None: scvi-tools' 400).
    pub kl_warmup_epochs: Option<u32>,
    /// Epochs (None: scvi-tools' heuristic for the number of cells).
    pub epochs: Option<u32>,
    /// Cells per minibatch.
    pub batch_size: usize,
    /// Seed of every random draw.
    pub seed: u64,
}

impl Default for RunOptions {
    /// scvi-tools' defaults, except a 2-D latent space (the page's default: the map is
    /// the latent space itself); the command line sets its own `n_latent`.
    fn default() -> Self {
        RunOptions {
            n_latent: 2,
            n_hidden: 128,
            n_layers: 1,
            likelihood: Likelihood::Nb,
            dispersion: Dispersion::Gene,
            encode_batch: false,
            lr: 1e-3,
            beta: 1.0,
            kl_warmup_epochs: None,
            epochs: None,
            batch_size: 128,
            seed: 0,
        }
    }
}

/// Checks a learning rate (positive and finite).
pub fn check_lr(lr: f32, words: Words) -> Result<f32> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(words.error(
            Setting::Lr,
            format_args!("must be a positive number, not {lr}"),
        ))
    }
}

/// Checks beta, the maximum KL weight (non-negative and finite).
pub fn check_beta(beta: f32, words: Words) -> Result<f32> {
    if beta.is_finite() && beta >= 0.0 {
        Ok(beta)
    } else {
        Err(words.error(
            Setting::Beta,
            format_args!("must be a non-negative number, not {beta}"),
        ))
    }
}

fn check_range(words: Words, s: Setting, v: usize, lo: usize, hi: usize) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(words.error(s, format_args!("must be between {lo} and {hi}, not {v}")))
    }
}

impl RunOptions {
    /// Checks every setting that does not depend on the data.
    pub fn validate(&self, words: Words) -> Result<()> {
        check_range(words, Setting::NLatent, self.n_latent, 1, 256)?;
        check_range(words, Setting::NHidden, self.n_hidden, 1, 8192)?;
        check_range(words, Setting::NLayers, self.n_layers, 1, 8)?;
        check_range(words, Setting::BatchSize, self.batch_size, 1, 1 << 20)?;
        if self.epochs == Some(0) {
            return Err(words.error(Setting::Epochs, "must be at least 1"));
        }
        check_lr(self.lr, words)?;
        check_beta(self.beta, words)?;
        Ok(())
    }

    /// The architecture for `n_genes` genes and `n_batches` batches; `has_batch` says
    /// whether a batch column was chosen (the batch settings need one).
    pub fn model_config(
        &self,
        n_genes: usize,
        n_batches: usize,
        has_batch: bool,
        words: Words,
    ) -> Result<ModelConfig> {
        self.validate(words)?;
        if self.encode_batch && !has_batch {
            return Err(words.error(Setting::EncodeBatch, "needs a batch column"));
        }
        if self.dispersion == Dispersion::GeneBatch && !has_batch {
            return Err(words.error(Setting::Dispersion, "needs a batch column"));
        }
        let mut config = ModelConfig::scvi_defaults(n_genes, n_batches);
        config.n_latent = self.n_latent;
        config.n_hidden = self.n_hidden;
        config.n_layers = self.n_layers;
        config.likelihood = self.likelihood;
        config.dispersion = self.dispersion;
        config.encode_batch = self.encode_batch;
        config.validate()?;
        Ok(config)
    }

    /// The training settings for `n_train_cells` cells (scvi-tools' defaults where not
    /// given).
    pub fn train_config(&self, n_train_cells: usize, words: Words) -> Result<TrainConfig> {
        self.validate(words)?;
        let mut tc = TrainConfig::scvi_defaults(n_train_cells);
        if let Some(e) = self.epochs {
            tc.epochs = e;
        }
        if let Some(w) = self.kl_warmup_epochs {
            tc.kl_warmup_epochs = w;
        }
        tc.lr = self.lr;
        tc.max_kl_weight = self.beta;
        tc.batch_size = self.batch_size;
        tc.seed = self.seed;
        Ok(tc)
    }
}

/// What the page asks for when it prepares a run: the data settings and the fields of
/// [`RunOptions`], flat, every one optional (a JS object deserialises into it; an
/// unknown field is an error, so a misspelt setting is never silently ignored).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionOptions {
    /// See [`RunOptions::n_latent`].
    pub n_latent: usize,
    /// See [`RunOptions::n_hidden`].
    pub n_hidden: usize,
    /// See [`RunOptions::n_layers`].
    pub n_layers: usize,
    /// See [`RunOptions::likelihood`].
    pub likelihood: Likelihood,
    /// See [`RunOptions::dispersion`].
    pub dispersion: Dispersion,
    /// See [`RunOptions::encode_batch`].
    pub encode_batch: bool,
    /// See [`RunOptions::lr`].
    pub lr: f32,
    /// See [`RunOptions::beta`].
    pub beta: f32,
    /// See [`RunOptions::kl_warmup_epochs`].
    pub kl_warmup_epochs: Option<u32>,
    /// See [`RunOptions::epochs`].
    pub epochs: Option<u32>,
    /// See [`RunOptions::batch_size`].
    pub batch_size: usize,
    /// See [`RunOptions::seed`].
    pub seed: u64,
    /// The label column (None or empty: `cell_type` when there is one).
    pub label_key: Option<String>,
    /// The batch column (None or empty: one batch).
    pub batch_key: Option<String>,
    /// Highly variable genes to keep (None or 0: every gene).
    pub top_genes: Option<usize>,
    /// QC: minimum total counts per cell.
    pub min_counts: u64,
    /// QC: minimum detected genes per cell.
    pub min_genes: usize,
    /// Hold out the cell at input position i when i % K == 0 (None or 0: none), for the
    /// evaluation panel's held-out metrics (as `cellvae train --holdout-every`).
    pub holdout_every: Option<usize>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions::with_run(RunOptions::default())
    }
}

impl SessionOptions {
    /// Page options with the run settings `r` and default data settings.
    pub fn with_run(r: RunOptions) -> SessionOptions {
        SessionOptions {
            n_latent: r.n_latent,
            n_hidden: r.n_hidden,
            n_layers: r.n_layers,
            likelihood: r.likelihood,
            dispersion: r.dispersion,
            encode_batch: r.encode_batch,
            lr: r.lr,
            beta: r.beta,
            kl_warmup_epochs: r.kl_warmup_epochs,
            epochs: r.epochs,
            batch_size: r.batch_size,
            seed: r.seed,
            label_key: None,
            batch_key: None,
            top_genes: None,
            min_counts: 0,
            min_genes: 0,
            holdout_every: None,
        }
    }

    /// The model and training settings.
    pub fn run(&self) -> RunOptions {
        RunOptions {
            n_latent: self.n_latent,
            n_hidden: self.n_hidden,
            n_layers: self.n_layers,
            likelihood: self.likelihood,
            dispersion: self.dispersion,
            encode_batch: self.encode_batch,
            lr: self.lr,
            beta: self.beta,
            kl_warmup_epochs: self.kl_warmup_epochs,
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
        }
    }

    /// The batch column, when one was chosen.
    pub fn batch_key(&self) -> Option<String> {
        self.batch_key.clone().filter(|k| !k.is_empty())
    }

    /// The label column: the chosen one, else `cell_type` when the data has it.
    pub fn label_key(&self, m: &CountMatrix) -> Option<String> {
        match &self.label_key {
            Some(k) if !k.is_empty() => Some(k.clone()),
            _ => m.obs.get("cell_type").map(|_| "cell_type".to_string()),
        }
    }

    /// Checks the settings against the data `m` (columns exist, the gene count is
    /// possible) and returns what [`crate::pipeline::prepare`] needs.
    pub fn prepare_options(&self, m: &CountMatrix, words: Words) -> Result<PrepareOptions> {
        self.run().validate(words)?;
        let batch_key = self.batch_key();
        let label_key = self.label_key(m);
        for (s, key) in [
            (Setting::BatchKey, &batch_key),
            (Setting::LabelKey, &label_key),
        ] {
            if let Some(k) = key {
                if m.obs.get(k).is_none() {
                    let names: Vec<&str> = m.obs.columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(words.error(
                        s,
                        format_args!(
                            "the data has no column {k:?}; its columns are: {}",
                            if names.is_empty() {
                                "none (add a metadata table)".to_string()
                            } else {
                                names.join(", ")
                            }
                        ),
                    ));
                }
            }
        }
        let top = self.top_genes.filter(|&n| n > 0);
        if let Some(n) = top {
            if n > m.n_genes {
                return Err(words.error(
                    Setting::TopGenes,
                    format_args!(
                        "{n} is more than the {} genes in the data; choose at most {}",
                        m.n_genes, m.n_genes
                    ),
                ));
            }
        }
        Ok(PrepareOptions {
            qc: QcOptions {
                n_top_genes: top,
                min_counts_per_cell: self.min_counts,
                min_genes_per_cell: self.min_genes,
                ..Default::default()
            },
            label_key,
            batch_key,
            holdout_every: self.holdout_every.filter(|&k| k > 0),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_setting_in_each_front_ends_words() {
        let bad = RunOptions {
            lr: -1.0,
            ..Default::default()
        };
        let page = bad.validate(Words::Page).unwrap_err().to_string();
        let cli = bad.validate(Words::Cli).unwrap_err().to_string();
        assert!(
            page.contains("learning rate") && !page.contains("--"),
            "{page}"
        );
        assert!(cli.contains("--lr"), "{cli}");
        let wide = RunOptions {
            n_hidden: 0,
            ..Default::default()
        };
        let e = wide.model_config(10, 1, false, Words::Page).unwrap_err();
        assert!(e.to_string().contains("hidden units"), "{e}");
        let enc = RunOptions {
            encode_batch: true,
            ..Default::default()
        };
        let e = enc.model_config(10, 1, false, Words::Page).unwrap_err();
        assert!(e.to_string().contains("batch in the encoder"), "{e}");
    }

    #[test]
    fn configs_carry_every_setting() {
        let o = RunOptions {
            n_latent: 5,
            n_hidden: 64,
            n_layers: 2,
            likelihood: Likelihood::Zinb,
            dispersion: Dispersion::GeneBatch,
            encode_batch: true,
            lr: 2e-3,
            beta: 0.5,
            kl_warmup_epochs: Some(7),
            epochs: Some(11),
            batch_size: 64,
            seed: 3,
        };
        let m = o.model_config(100, 3, true, Words::Cli).unwrap();
        assert_eq!(
            (m.n_latent, m.n_hidden, m.n_layers, m.n_genes, m.n_batches),
            (5, 64, 2, 100, 3)
        );
        assert_eq!(
            (m.likelihood, m.dispersion, m.encode_batch),
            (Likelihood::Zinb, Dispersion::GeneBatch, true)
        );
        let t = o.train_config(1000, Words::Cli).unwrap();
        assert_eq!(
            (t.epochs, t.kl_warmup_epochs, t.batch_size, t.seed),
            (11, 7, 64, 3)
        );
        assert_eq!((t.lr, t.max_kl_weight), (2e-3, 0.5));
        // Defaults follow scvi-tools' epoch heuristic.
        let d = RunOptions::default()
            .train_config(1000, Words::Cli)
            .unwrap();
        assert_eq!(d.epochs, 400);
    }

    #[test]
    fn page_options_deserialise_flat_and_reject_unknown_fields() {
        let o: SessionOptions =
            serde_json::from_str(r#"{"n_latent": 4, "lr": 0.01, "batch_key": "sample"}"#).unwrap();
        assert_eq!((o.run().n_latent, o.run().lr), (4, 0.01));
        assert_eq!(o.batch_key(), Some("sample".into()));
        assert!(serde_json::from_str::<SessionOptions>(r#"{"n_latnet": 4}"#).is_err());
    }
}
