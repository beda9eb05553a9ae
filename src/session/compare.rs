//! Comparing two groups of the session's cells: the model's differential expression
//! ([`crate::de`]) with the gene names and the CSV the page shows and exports.

use super::Session;
use crate::de::{differential_expression, to_csv, DeOptions, DeResult, GeneDe};
use crate::error::Result;
use serde::Serialize;

/// One gene's row of a comparison, as the page's table and volcano plot use it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneRow {
    /// Gene id (as in the data).
    pub id: String,
    /// Gene name.
    pub name: String,
    /// The estimate.
    #[serde(flatten)]
    pub de: GeneDe,
}

/// A comparison of two groups, most probable change first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// One row per modelled gene.
    pub genes: Vec<GeneRow>,
    /// Cells in group 1.
    pub n_cells1: usize,
    /// Cells in group 2 (the rest when no group 2 was given).
    pub n_cells2: usize,
    /// Genes called at the expected false discovery rate.
    pub n_de: usize,
    /// The settings used.
    pub options: DeOptions,
    /// The whole table as CSV (the command line's `cellvae de` columns).
    pub csv: String,
}

impl Session {
    /// Differential expression between `group1` and `group2` (cell positions, as on the
    /// map), or between `group1` and every other cell when `group2` is `None`, with the
    /// current parameters.
    pub fn compare(
        &mut self,
        group1: &[u32],
        group2: Option<&[u32]>,
        opts: &DeOptions,
    ) -> Result<Comparison> {
        // Positions past the data are refused by `differential_expression`, in these words.
        let g1: Vec<usize> = group1.iter().map(|&c| c as usize).collect();
        let g2: Vec<usize> = match group2 {
            Some(g) => g.iter().map(|&c| c as usize).collect(),
            None => {
                let n = self.data.matrix.n_cells;
                let mut in1 = vec![false; n];
                for &c in g1.iter().filter(|&&c| c < n) {
                    in1[c] = true;
                }
                (0..n).filter(|&c| !in1[c]).collect()
            }
        };
        let params = self.params()?;
        let data = &self.data;
        let r: DeResult =
            differential_expression(&params, &data.matrix, &data.batch_codes, &g1, &g2, opts)?;
        let m = &data.matrix;
        let csv = to_csv(&r, &m.gene_ids, &m.gene_names);
        Ok(Comparison {
            genes: r
                .genes
                .into_iter()
                .map(|de| GeneRow {
                    id: m.gene_ids.get(de.gene).cloned().unwrap_or_default(),
                    name: m.gene_names.get(de.gene).cloned().unwrap_or_default(),
                    de,
                })
                .collect(),
            n_cells1: r.n_cells1,
            n_cells2: r.n_cells2,
            n_de: r.n_de,
            options: r.options,
            csv,
        })
    }
}
