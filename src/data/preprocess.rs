//! Preprocessing before training: quality-control filters, highly variable genes
//! (scanpy's `seurat_v3` flavour) and the report of everything removed.
//!
//! [`preprocess`] runs, in this order, on raw counts:
//!
//! 1. drop cells with no counts (always);
//! 2. drop cells below `min_counts_per_cell` total counts, then cells with fewer than
//!    `min_genes_per_cell` detected genes (scanpy's `filter_cells`);
//! 3. drop genes with no counts (always): those empty in the whole input, then those
//!    whose only counts were in dropped cells;
//! 4. drop genes detected in fewer than `min_cells_per_gene` cells (`filter_genes`);
//! 5. keep the `n_top_genes` highly variable genes ([`highly_variable_genes_seurat_v3`],
//!    per batch when `hvg_batch_key` is set), in their original order;
//! 6. drop cells left with no counts in the kept genes, always (a count model cannot use
//!    a cell whose library size is zero; scanpy would keep them).
//!
//! Every removal is counted in the [`PreprocessReport`]; a filter that would remove every
//! cell or gene is an error that names the filter, its threshold and what the data has.

mod hvg;
mod loess;

pub use hvg::{highly_variable_genes_seurat_v3, seurat_v3, HvgSeuratV3};

use crate::data::{CountMatrix, ObsColumn, ObsValues};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Quality-control and gene-selection settings. The default removes nothing but cells and
/// genes with no counts at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct QcOptions {
    /// Keep cells with at least this many counts (scanpy `filter_cells(min_counts=)`).
    pub min_counts_per_cell: u64,
    /// Keep cells with at least this many detected genes (`filter_cells(min_genes=)`).
    pub min_genes_per_cell: usize,
    /// Keep genes detected in at least this many cells (`filter_genes(min_cells=)`).
    pub min_cells_per_gene: usize,
    /// Keep only this many highly variable genes (seurat_v3 on raw counts); `None` keeps all.
    pub n_top_genes: Option<usize>,
    /// Cell metadata column whose values are the batches for gene selection
    /// (scanpy's `batch_key`); `None` treats all cells as one batch.
    pub hvg_batch_key: Option<String>,
}

/// What [`preprocess`] removed and kept, step by step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PreprocessReport {
    /// The settings used.
    pub options: QcOptions,
    /// Cells in the input.
    pub n_cells_before: usize,
    /// Genes in the input.
    pub n_genes_before: usize,
    /// Cells with no counts at all, dropped first.
    pub all_zero_cells_dropped: usize,
    /// Cells dropped for having fewer than `min_counts_per_cell` counts.
    pub cells_dropped_min_counts: usize,
    /// Cells dropped (after the previous filter) for having fewer than
    /// `min_genes_per_cell` detected genes.
    pub cells_dropped_min_genes: usize,
    /// Genes with no counts in any cell of the input.
    pub all_zero_genes_dropped: usize,
    /// Genes whose only counts were in cells dropped above.
    pub genes_emptied_by_cell_filters: usize,
    /// Genes dropped for being detected in fewer than `min_cells_per_gene` cells.
    pub genes_dropped_min_cells: usize,
    /// Number of batches used for gene selection (0 when no selection was made).
    pub hvg_n_batches: usize,
    /// Highly variable genes kept (`None` when no selection was asked for).
    pub n_highly_variable_genes: Option<usize>,
    /// Genes dropped for not being among the highly variable ones.
    pub genes_dropped_not_highly_variable: usize,
    /// Cells dropped at the end because none of their counts were in the kept genes (after
    /// `min_cells_per_gene` and gene selection).
    pub cells_empty_after_gene_selection: usize,
    /// Cells in the output.
    pub n_cells_after: usize,
    /// Genes in the output.
    pub n_genes_after: usize,
    /// Further things the user should know (e.g. more genes asked for than exist).
    pub notes: Vec<String>,
}

impl PreprocessReport {
    /// The report as short sentences, one per step, for the terminal and the page.
    pub fn to_lines(&self) -> Vec<String> {
        let o = &self.options;
        let mut lines = vec![format!(
            "input: {} cells x {} genes",
            self.n_cells_before, self.n_genes_before
        )];
        if self.all_zero_cells_dropped > 0 {
            lines.push(format!(
                "dropped {} cells with no counts",
                self.all_zero_cells_dropped
            ));
        }
        if o.min_counts_per_cell > 0 {
            lines.push(format!(
                "dropped {} cells with fewer than {} counts (min_counts_per_cell)",
                self.cells_dropped_min_counts, o.min_counts_per_cell
            ));
        }
        if o.min_genes_per_cell > 0 {
            lines.push(format!(
                "dropped {} cells with fewer than {} detected genes (min_genes_per_cell)",
                self.cells_dropped_min_genes, o.min_genes_per_cell
            ));
        }
        if self.all_zero_genes_dropped > 0 {
            lines.push(format!(
                "dropped {} genes with no counts",
                self.all_zero_genes_dropped
            ));
        }
        if self.genes_emptied_by_cell_filters > 0 {
            lines.push(format!(
                "dropped {} genes whose only counts were in the dropped cells",
                self.genes_emptied_by_cell_filters
            ));
        }
        if o.min_cells_per_gene > 0 {
            lines.push(format!(
                "dropped {} genes detected in fewer than {} cells (min_cells_per_gene)",
                self.genes_dropped_min_cells, o.min_cells_per_gene
            ));
        }
        if let Some(n) = self.n_highly_variable_genes {
            let batches = match &o.hvg_batch_key {
                Some(key) => format!("per batch of '{key}' ({} batches)", self.hvg_n_batches),
                None => "one batch".to_string(),
            };
            lines.push(format!(
                "kept {n} highly variable genes (seurat_v3 on raw counts, {batches}), dropped {} others",
                self.genes_dropped_not_highly_variable
            ));
        }
        if self.cells_empty_after_gene_selection > 0 {
            lines.push(format!(
                "dropped {} cells with no counts in the kept genes",
                self.cells_empty_after_gene_selection
            ));
        }
        lines.extend(self.notes.iter().map(|n| format!("note: {n}")));
        lines.push(format!(
            "output: {} cells x {} genes",
            self.n_cells_after, self.n_genes_after
        ));
        lines
    }
}

/// Runs the QC filters and gene selection described in the module docs on raw counts and
/// returns the filtered matrix (genes in their original order) with the report.
///
/// Errors when a filter would remove every cell or gene (naming the filter, its threshold
/// and the largest value the data has), when `n_top_genes` is 0, when the batch key is not
/// a column of the cell metadata (listing those that are), or when a batch cannot be
/// used for seurat_v3 (fewer than 2 cells, or a loess fit that is undefined).
pub fn preprocess(m: &CountMatrix, opts: &QcOptions) -> Result<(CountMatrix, PreprocessReport)> {
    let (selection, report) = select(m, opts)?;
    Ok((selection.apply(m), report))
}

/// What [`preprocess`] keeps: cells and genes of the input, in their original order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// The cells kept (rows of the input, ascending).
    pub cells: Vec<usize>,
    /// The genes kept (columns of the input, ascending).
    pub genes: Vec<usize>,
}

impl Selection {
    /// The input restricted to the selection (what [`preprocess`] returns).
    pub fn apply(&self, m: &CountMatrix) -> CountMatrix {
        let all_cells = self.cells.len() == m.n_cells;
        let all_genes = self.genes.len() == m.n_genes;
        match (all_cells, all_genes) {
            (true, true) => m.clone(),
            (true, false) => m.select_genes(&self.genes),
            (false, true) => m.select_cells(&self.cells),
            (false, false) => m.select_cells(&self.cells).select_genes(&self.genes),
        }
    }
}

/// [`preprocess`] without the filtered copy: which cells and genes it keeps, and the
/// report. No copy of the matrix is made unless highly variable genes are asked for
/// (seurat_v3 runs on the filtered counts): a browser tab holds the data once.
pub fn select(m: &CountMatrix, opts: &QcOptions) -> Result<(Selection, PreprocessReport)> {
    if opts.n_top_genes == Some(0) {
        return Err(Error::Config(
            "n_top_genes is 0: ask for at least one highly variable gene, or leave it unset \
             to keep every gene"
                .into(),
        ));
    }
    if let Some(key) = &opts.hvg_batch_key {
        if opts.n_top_genes.is_none() {
            return Err(Error::Config(format!(
                "the batch key '{key}' for highly variable genes needs n_top_genes as well"
            )));
        }
        batch_column(m, key)?;
    }
    if m.n_cells == 0 || m.n_genes == 0 {
        return Err(Error::Config(format!(
            "the matrix has {} cells and {} genes: nothing to preprocess",
            m.n_cells, m.n_genes
        )));
    }
    let mut report = PreprocessReport {
        options: opts.clone(),
        n_cells_before: m.n_cells,
        n_genes_before: m.n_genes,
        ..Default::default()
    };

    // Cells: no counts, then min_counts, then min_genes.
    let totals = m.library_sizes();
    let detected: Vec<usize> = (0..m.n_cells)
        .map(|c| m.row(c).1.iter().filter(|&&v| v != 0.0).count())
        .collect();
    let mut keep: Vec<usize> = (0..m.n_cells).filter(|&c| detected[c] > 0).collect();
    report.all_zero_cells_dropped = m.n_cells - keep.len();
    if keep.is_empty() {
        return Err(Error::Config(format!(
            "all {} cells have no counts: the matrix is empty",
            m.n_cells
        )));
    }
    let before = keep.len();
    let most_counts = keep.iter().map(|&c| totals[c]).fold(0.0, f64::max);
    keep.retain(|&c| totals[c] >= opts.min_counts_per_cell as f64);
    report.cells_dropped_min_counts = before - keep.len();
    if keep.is_empty() {
        return Err(Error::Config(format!(
            "min_counts_per_cell = {} removes all {before} cells: the largest cell has {most_counts} \
             counts; lower the threshold",
            opts.min_counts_per_cell
        )));
    }
    let before = keep.len();
    let most_genes = keep.iter().map(|&c| detected[c]).max().unwrap_or(0);
    keep.retain(|&c| detected[c] >= opts.min_genes_per_cell);
    report.cells_dropped_min_genes = before - keep.len();
    if keep.is_empty() {
        return Err(Error::Config(format!(
            "min_genes_per_cell = {} removes all {before} cells left after the count filter: the \
             cell with the most detected genes has {most_genes}; lower the threshold",
            opts.min_genes_per_cell
        )));
    }
    let cells_filtered = keep.len() < m.n_cells;

    // Genes: no counts in the input, no counts left, then min_cells.
    let in_input = cells_per_gene(m, 0..m.n_cells);
    let in_kept = if cells_filtered {
        cells_per_gene(m, keep.iter().copied())
    } else {
        in_input.clone()
    };
    report.all_zero_genes_dropped = in_input.iter().filter(|&&n| n == 0).count();
    report.genes_emptied_by_cell_filters = (0..m.n_genes)
        .filter(|&g| in_input[g] > 0 && in_kept[g] == 0)
        .count();
    let nonzero_genes: Vec<usize> = (0..m.n_genes).filter(|&g| in_kept[g] > 0).collect();
    let widest = nonzero_genes.iter().map(|&g| in_kept[g]).max().unwrap_or(0);
    let genes: Vec<usize> = nonzero_genes
        .iter()
        .copied()
        .filter(|&g| in_kept[g] >= opts.min_cells_per_gene)
        .collect();
    report.genes_dropped_min_cells = nonzero_genes.len() - genes.len();
    if genes.is_empty() {
        return Err(Error::Config(format!(
            "min_cells_per_gene = {} removes all {} genes with counts: the most widely detected \
             gene is in {widest} of the {} cells kept; lower the threshold",
            opts.min_cells_per_gene,
            nonzero_genes.len(),
            keep.len()
        )));
    }
    let mut genes = genes;

    // Highly variable genes on the raw counts of what is left.
    if let Some(n_top) = opts.n_top_genes {
        let m1: Cow<'_, CountMatrix> = if cells_filtered {
            Cow::Owned(m.select_cells(&keep))
        } else {
            Cow::Borrowed(m)
        };
        let m2: Cow<'_, CountMatrix> = if genes.len() < m.n_genes {
            Cow::Owned(m1.select_genes(&genes))
        } else {
            m1
        };
        let (codes, labels) = match &opts.hvg_batch_key {
            Some(key) => {
                let (codes, labels) = batch_codes(batch_column(&m2, key)?)?;
                (Some(codes), labels)
            }
            None => (None, Vec::new()),
        };
        let batch = codes.as_deref().map(|c| (c, labels.as_slice()));
        let hvg = hvg::seurat_v3_impl(&m2, n_top, batch)?;
        if n_top >= m2.n_genes {
            report.notes.push(format!(
                "n_top_genes = {n_top} is not fewer than the {} genes left, so every gene was kept",
                m2.n_genes
            ));
        }
        if hvg.n_pseudoinverse > 0 {
            report.notes.push(format!(
                "the loess fit of seurat_v3 used a pseudoinverse at {} vertices (rank-deficient \
                 neighbourhoods, as R's loess does; scanpy stops there)",
                hvg.n_pseudoinverse
            ));
        }
        report.hvg_n_batches = hvg.n_batches;
        report.n_highly_variable_genes = Some(hvg.selected.len());
        report.genes_dropped_not_highly_variable = m2.n_genes - hvg.selected.len();
        if hvg.selected.len() < m2.n_genes {
            genes = hvg.selected.iter().map(|&g| genes[g]).collect();
        }
    }

    // Cells whose counts were all in dropped genes.
    let mut kept_gene = vec![false; m.n_genes];
    for &g in &genes {
        kept_gene[g] = true;
    }
    let nonempty: Vec<usize> = keep
        .iter()
        .copied()
        .filter(|&c| {
            let (idx, val) = m.row(c);
            idx.iter()
                .zip(val)
                .any(|(&g, &v)| v != 0.0 && kept_gene[g as usize])
        })
        .collect();
    report.cells_empty_after_gene_selection = keep.len() - nonempty.len();
    if nonempty.is_empty() {
        return Err(Error::Config(
            "no cell has counts in the genes kept; keep more genes (raise n_top_genes or lower \
             min_cells_per_gene)"
                .into(),
        ));
    }
    report.n_cells_after = nonempty.len();
    report.n_genes_after = genes.len();
    Ok((
        Selection {
            cells: nonempty,
            genes,
        },
        report,
    ))
}

/// Number of the cells `cells` in which each gene has a non-zero count.
fn cells_per_gene(m: &CountMatrix, cells: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut n = vec![0usize; m.n_genes];
    for c in cells {
        let (idx, val) = m.row(c);
        for (&g, &v) in idx.iter().zip(val) {
            if v != 0.0 {
                n[g as usize] += 1;
            }
        }
    }
    n
}

/// The batch column, or an error that lists the columns there are.
fn batch_column<'a>(m: &'a CountMatrix, key: &str) -> Result<&'a ObsColumn> {
    m.obs.get(key).ok_or_else(|| {
        let names: Vec<&str> = m.obs.columns.iter().map(|c| c.name.as_str()).collect();
        let available = if names.is_empty() {
            "the cells have no metadata columns (give a metadata table with --obs)".to_string()
        } else {
            format!("available columns: {}", names.join(", "))
        };
        Error::Config(format!(
            "the batch key '{key}' is not a column of the cell metadata; {available}"
        ))
    })
}

/// Batch codes per cell and the label of each code. Missing values are an error.
fn batch_codes(col: &ObsColumn) -> Result<(Vec<u32>, Vec<String>)> {
    let (codes, labels): (Vec<Option<u32>>, Vec<String>) = match &col.values {
        ObsValues::Categorical { levels, codes } => (codes.clone(), levels.clone()),
        ObsValues::Text(v) => match ObsColumn::categorical_from_strings(&col.name, v).values {
            ObsValues::Categorical { levels, codes } => (codes, levels),
            _ => (Vec::new(), Vec::new()),
        },
        ObsValues::Numeric(v) => {
            let mut distinct: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            let codes = v
                .iter()
                .map(|x| {
                    distinct
                        .binary_search_by(|d| d.total_cmp(x))
                        .ok()
                        .map(|i| i as u32)
                })
                .collect();
            (codes, distinct.iter().map(|d| format!("{d}")).collect())
        }
    };
    let missing = codes.iter().filter(|c| c.is_none()).count();
    if missing > 0 {
        return Err(Error::Config(format!(
            "the batch key '{}' has no value for {missing} cells; give every cell a batch or \
             choose another column",
            col.name
        )));
    }
    Ok((codes.into_iter().flatten().collect(), labels))
}
