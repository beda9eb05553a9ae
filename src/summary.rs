//! A summary of a matrix as read, before any filtering: what `cellvae inspect` prints
//! and what the page shows after loading.

use crate::data::obs::ObsColumnSummary;
use crate::data::CountMatrix;
use serde::Serialize;

/// The facts about a matrix as read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Format(s) read, e.g. `10x-mtx` or `10x-h5+10x-h5`.
    pub format: String,
    /// What inside the file held the counts (`X`, `layers/counts`, ...), may be empty.
    pub source: String,
    /// Number of cells.
    pub n_cells: usize,
    /// Number of genes.
    pub n_genes: usize,
    /// Number of non-zero values.
    pub nnz: usize,
    /// Sum of all values.
    pub total_counts: f64,
    /// Smallest value (0 when any value is an implicit zero).
    pub min_value: f64,
    /// Largest value.
    pub max_value: f64,
    /// Whether every value is a non-negative integer.
    pub integer_counts: bool,
    /// Cells with no counts at all.
    pub empty_cells: usize,
    /// Genes with no counts at all.
    pub empty_genes: usize,
    /// Metadata columns.
    pub obs_columns: Vec<ObsColumnSummary>,
    /// Things done while reading that the user should know.
    pub notes: Vec<String>,
}

impl Summary {
    /// Computes the summary of a matrix.
    pub fn of(m: &CountMatrix) -> Summary {
        let (min_value, max_value) = m.value_range().unwrap_or((0.0, 0.0));
        let mut gene_seen = vec![false; m.n_genes];
        for &g in &m.indices {
            gene_seen[g as usize] = true;
        }
        Summary {
            format: m.format.clone(),
            source: m.source.clone(),
            n_cells: m.n_cells,
            n_genes: m.n_genes,
            nnz: m.nnz(),
            total_counts: m.total_counts(),
            min_value,
            max_value,
            integer_counts: m.is_integer_counts(),
            empty_cells: (0..m.n_cells)
                .filter(|&c| m.indptr[c] == m.indptr[c + 1])
                .count(),
            empty_genes: gene_seen.iter().filter(|&&s| !s).count(),
            obs_columns: m.obs.summaries(),
            notes: m.notes.clone(),
        }
    }

    /// A human-readable multi-line report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let src = if self.source.is_empty() {
            String::new()
        } else {
            format!(" ({})", self.source)
        };
        s.push_str(&format!("format        {}{}\n", self.format, src));
        s.push_str(&format!("cells         {}\n", self.n_cells));
        s.push_str(&format!("genes         {}\n", self.n_genes));
        let density = if self.n_cells * self.n_genes > 0 {
            100.0 * self.nnz as f64 / (self.n_cells as f64 * self.n_genes as f64)
        } else {
            0.0
        };
        s.push_str(&format!(
            "non-zeros     {} ({density:.2}% dense)\n",
            self.nnz
        ));
        s.push_str(&format!("total counts  {}\n", self.total_counts));
        s.push_str(&format!(
            "value range   {} .. {}\n",
            self.min_value, self.max_value
        ));
        s.push_str(&format!(
            "raw counts    {}\n",
            if self.integer_counts {
                "yes (every value is a non-negative integer)"
            } else {
                "NO: values are not all non-negative integers; a count likelihood needs raw counts"
            }
        ));
        s.push_str(&format!(
            "empty         {} cells, {} genes with no counts\n",
            self.empty_cells, self.empty_genes
        ));
        if self.obs_columns.is_empty() {
            s.push_str("metadata      none\n");
        } else {
            s.push_str("metadata\n");
            for c in &self.obs_columns {
                s.push_str(&format!(
                    "  {:<24} {:<12} {} levels\n",
                    c.name, c.kind, c.n_levels
                ));
            }
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s
    }
}
