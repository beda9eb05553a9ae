//! From a matrix as read to what training needs, shared by the command line and the
//! page: QC and gene selection (reported), the held-out split by input position, batch
//! codes and label codes from metadata columns.

use crate::data::preprocess::{select, PreprocessReport, QcOptions};
use crate::data::{CountMatrix, ObsColumn, ObsValues};
use crate::error::{Error, Result};
use std::collections::HashMap;

/// What to prepare.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// QC filters and highly variable genes.
    pub qc: QcOptions,
    /// Hold out the cell at input position i when i % K == 0 (None: hold out nothing).
    pub holdout_every: Option<usize>,
    /// Metadata column with the batch covariate.
    pub batch_key: Option<String>,
    /// Metadata column with labels (for kNN accuracy and colouring).
    pub label_key: Option<String>,
    /// Model exactly these genes (ids or names), in this order, before QC.
    pub genes: Option<Vec<String>>,
}

/// The data ready for a model.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Every input cell (in input order), restricted to the model's genes.
    pub matrix: CountMatrix,
    /// Positions (rows of `matrix`) of the cells that train.
    pub train_cells: Vec<usize>,
    /// Positions of held-out cells that passed QC.
    pub heldout_cells: Vec<usize>,
    /// Batch code of every cell (all 0 without a batch column).
    pub batch_codes: Vec<u32>,
    /// Batch levels in code order (one unnamed level without a batch column).
    pub batch_levels: Vec<String>,
    /// Label code of every cell (None: missing), with the label levels.
    pub labels: Option<(Vec<Option<u32>>, Vec<String>)>,
    /// What QC and gene selection did.
    pub report: PreprocessReport,
}

/// Codes and levels of a metadata column (text and numbers become categories).
pub fn column_codes(col: &ObsColumn) -> (Vec<Option<u32>>, Vec<String>) {
    match &col.values {
        ObsValues::Categorical { levels, codes } => (codes.clone(), levels.clone()),
        _ => {
            let strings: Vec<String> = (0..col.len()).map(|i| col.value_string(i)).collect();
            match ObsColumn::categorical_from_strings(&col.name, &strings).values {
                ObsValues::Categorical { levels, codes } => (codes, levels),
                _ => (vec![None; col.len()], Vec::new()),
            }
        }
    }
}

pub(crate) fn find_column<'a>(
    m: &'a CountMatrix,
    key: &str,
    option: &str,
) -> Result<&'a ObsColumn> {
    m.obs.get(key).ok_or_else(|| {
        let names: Vec<&str> = m.obs.columns.iter().map(|c| c.name.as_str()).collect();
        Error::Config(format!(
            "{option} {key}: no such metadata column; the columns are: {}",
            if names.is_empty() {
                "(none: give a table with --obs)".to_string()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// Prepares a matrix for training. Held-out cells are chosen by input position before
/// any filtering; QC removals and gene selection are in the report.
pub fn prepare(m: &CountMatrix, opts: &PrepareOptions) -> Result<Prepared> {
    if !m.is_integer_counts() {
        return Err(Error::Config(
            "the matrix holds values that are not non-negative integers: a count likelihood needs raw counts".into(),
        ));
    }
    let restricted;
    let m = match &opts.genes {
        Some(list) => {
            restricted = restrict_genes(m, list)?;
            &restricted
        }
        None => m,
    };
    let mut qc = opts.qc.clone();
    if qc.hvg_batch_key.is_none() && qc.n_top_genes.is_some() {
        qc.hvg_batch_key = opts.batch_key.clone();
    }
    // Which cells and genes QC keeps, without a filtered copy of the matrix.
    let (selection, report) = select(m, &qc)?;
    let matrix = if selection.genes.len() == m.n_genes {
        m.clone()
    } else {
        m.select_genes(&selection.genes)
    };
    let mut kept = vec![false; m.n_cells];
    for &c in &selection.cells {
        kept[c] = true;
    }
    let mut train_cells = Vec::new();
    let mut heldout_cells = Vec::new();
    for (i, &keep) in kept.iter().enumerate() {
        if !keep {
            continue;
        }
        match opts.holdout_every {
            Some(k) if k > 0 && i % k == 0 => heldout_cells.push(i),
            _ => train_cells.push(i),
        }
    }
    if m.n_cells < 2 {
        return Err(Error::Config(format!(
            "the data holds {} cell{}: training needs at least 2 (batch normalisation \
             learns from the spread across the cells of a minibatch); add cells",
            m.n_cells,
            if m.n_cells == 1 { "" } else { "s" }
        )));
    }
    if train_cells.len() < 2 {
        return Err(Error::Config(format!(
            "only {} cells are left to train on after QC{}; lower the QC filters{}",
            train_cells.len(),
            if opts.holdout_every.is_some() {
                " and holding out"
            } else {
                ""
            },
            if opts.holdout_every.is_some() {
                " or --holdout-every"
            } else {
                ""
            },
        )));
    }
    let (batch_codes, batch_levels) = match &opts.batch_key {
        Some(key) => {
            let col = find_column(m, key, "--batch-key")?;
            let (codes, levels) = column_codes(col);
            let mut out = Vec::with_capacity(codes.len());
            for (i, c) in codes.iter().enumerate() {
                match c {
                    Some(c) => out.push(*c),
                    None => {
                        return Err(Error::Config(format!(
                            "batch column {key}: cell {} has no value; every cell needs a batch \
                             (choose another column, or fill in the missing values)",
                            m.cell_ids[i]
                        )))
                    }
                }
            }
            (out, levels)
        }
        None => (vec![0; m.n_cells], vec![String::new()]),
    };
    let labels = match &opts.label_key {
        Some(key) => Some(column_codes(find_column(m, key, "--label-key")?)),
        None => None,
    };
    Ok(Prepared {
        matrix,
        train_cells,
        heldout_cells,
        batch_codes,
        batch_levels,
        labels,
        report,
    })
}

/// The matrix restricted to the listed genes (matched by id, then by name), in list order.
pub fn restrict_genes(m: &CountMatrix, list: &[String]) -> Result<CountMatrix> {
    let by_id: HashMap<&str, usize> = m
        .gene_ids
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let by_name: HashMap<&str, usize> = m
        .gene_names
        .iter()
        .enumerate()
        .map(|(i, g)| (g.as_str(), i))
        .collect();
    let mut cols = Vec::with_capacity(list.len());
    let mut missing = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in list {
        match by_id.get(g.as_str()).or_else(|| by_name.get(g.as_str())) {
            Some(&i) => {
                if seen.insert(i) {
                    cols.push(i);
                }
            }
            None => missing.push(g.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "{} of the {} listed genes are not in the data (e.g. {}); check the gene list",
            missing.len(),
            list.len(),
            missing
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(m.select_genes(&cols))
}

/// A saved model's view of new data: `data` restricted to the model's genes in the
/// model's order (matched by id, then by name) and each cell's batch code by the model's
/// batch column and levels (all 0 without one). What `cellvae eval` and the page's
/// "load a model" both need; a missing gene, batch column or batch level is an error.
pub fn fit_to_model(
    files: &crate::model::io::ModelFiles,
    data: &CountMatrix,
) -> Result<(CountMatrix, Vec<u32>)> {
    let index = |names: &[String]| -> HashMap<String, usize> {
        names
            .iter()
            .enumerate()
            .map(|(i, g)| (g.clone(), i))
            .collect()
    };
    let (by_id, by_name) = (index(&data.gene_ids), index(&data.gene_names));
    let mut cols = Vec::with_capacity(files.gene_ids.len());
    let mut missing = Vec::new();
    for (id, name) in files.gene_ids.iter().zip(&files.gene_names) {
        match by_id.get(id).or_else(|| by_name.get(name)) {
            Some(&i) => cols.push(i),
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "the data lacks {} of the model's {} genes (e.g. {}); use data with the genes the model was trained on",
            missing.len(),
            files.gene_ids.len(),
            missing.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        )));
    }
    let m = data.select_genes(&cols);
    let codes = match &files.batch_key {
        Some(key) => {
            let col = m.obs.get(key).ok_or_else(|| {
                Error::Config(format!(
                    "the model was trained with batch column {key}, which the data lacks"
                ))
            })?;
            let (codes, levels) = column_codes(col);
            codes
                .into_iter()
                .map(|c| {
                    let level = c.map(|c| levels[c as usize].clone()).unwrap_or_default();
                    files
                        .batch_levels
                        .iter()
                        .position(|l| *l == level)
                        .map(|k| k as u32)
                        .ok_or_else(|| {
                            Error::Config(format!(
                                "batch {level:?} was not seen in training (the model knows: {})",
                                files.batch_levels.join(", ")
                            ))
                        })
                })
                .collect::<Result<Vec<u32>>>()?
        }
        None => vec![0; m.n_cells],
    };
    Ok((m, codes))
}

/// A saved model's data: `data` fitted to the model's genes and batches
/// ([`fit_to_model`]), every cell with counts in the model's genes training (or held out
/// at input positions i % K == 0 with `holdout_every`), labels from `label_key`. What
/// `cellvae eval` and the page's "load a model" prepare.
pub fn prepare_for_model(
    files: &crate::model::io::ModelFiles,
    data: &CountMatrix,
    label_key: Option<&str>,
    holdout_every: Option<usize>,
) -> Result<Prepared> {
    let (matrix, batch_codes) = fit_to_model(files, data)?;
    let labels = match label_key {
        Some(k) => Some(column_codes(find_column(&matrix, k, "the label column")?)),
        None => None,
    };
    let mut train_cells = Vec::new();
    let mut heldout_cells = Vec::new();
    for c in (0..matrix.n_cells).filter(|&c| matrix.indptr[c] < matrix.indptr[c + 1]) {
        match holdout_every {
            Some(k) if k > 0 && c % k == 0 => heldout_cells.push(c),
            _ => train_cells.push(c),
        }
    }
    if train_cells.is_empty() && heldout_cells.is_empty() {
        return Err(Error::Config(
            "no cell of the data has counts in the model's genes; use data with the genes the model was trained on".into(),
        ));
    }
    Ok(Prepared {
        matrix,
        train_cells,
        heldout_cells,
        batch_codes,
        batch_levels: files.batch_levels.clone(),
        labels,
        report: crate::data::preprocess::PreprocessReport::default(),
    })
}

impl Prepared {
    /// `config.json` of a model of `config` trained on this data with `training`: the
    /// files `cellvae train` writes and the page saves and loads.
    pub fn model_files(
        &self,
        config: &crate::model::ModelConfig,
        batch_key: Option<String>,
        training: &crate::train::TrainConfig,
    ) -> crate::model::io::ModelFiles {
        crate::model::io::ModelFiles {
            format: "cellvae-model".into(),
            cellvae_version: env!("CARGO_PKG_VERSION").into(),
            model: config.clone(),
            gene_ids: self.matrix.gene_ids.clone(),
            gene_names: self.matrix.gene_names.clone(),
            batch_key,
            batch_levels: self.batch_levels.clone(),
            preprocessing: serde_json::to_value(&self.report).unwrap_or_default(),
            training: serde_json::to_value(training).unwrap_or_default(),
        }
    }

    /// The median total counts of the training cells (at least 1): the library size
    /// the page decodes at by default.
    pub fn median_library(&self) -> f32 {
        let sizes = self.matrix.library_sizes();
        let mut v: Vec<f64> = self.train_cells.iter().map(|&i| sizes[i]).collect();
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
}
