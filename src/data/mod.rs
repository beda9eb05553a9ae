//! Reading a user's counts: every format goes to one [`CountMatrix`] (CSR, cells x genes).
//!
//! The readers work on bytes ([`InputFile`]), so the command line (which reads paths) and
//! the browser (which gets `File` objects) share them. [`read_inputs`] groups the files a
//! user gave into datasets (a 10x triplet, an `.h5`, an `.h5ad`, a dense table),
//! reads each, and concatenates several over their shared genes with a `sample` column.
//!
//! | module | formats |
//! |---|---|
//! | [`mtx`] | Matrix Market `.mtx(.gz)`, 10x triplets (`features.tsv`/`genes.tsv` + `barcodes.tsv`) |
//! | [`dense`] | dense CSV / TSV (`.gz`), cells as rows or columns |
//! | [`h5`] | 10x Cell Ranger v3 `.h5`, AnnData `.h5ad` (current and old encodings) |
//! | [`obs`] | a cell metadata table joined by cell id |
//! | [`inputs`] | grouping the files given into datasets, concatenation, the `sample` column |
//! | [`preprocess`] | QC filters, highly variable genes (seurat_v3), library sizes |

pub mod dense;
pub mod h5;
pub mod h5ad_out;
pub mod inputs;
pub mod mtx;
pub mod obs;
pub mod preprocess;
#[cfg(not(target_arch = "wasm32"))]
pub mod stream;
pub mod synthetic;
mod text;
pub use text::quote_field;

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;

pub use inputs::{concatenate, group_inputs, read_inputs};
#[cfg(not(target_arch = "wasm32"))]
pub use inputs::{list_paths, load_paths};
pub use obs::{ObsColumn, ObsTable, ObsValues};

/// One file as the user gave it: its name (a path natively, a file name in the browser)
/// and its bytes, still compressed if it was.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path or name, used in every error message and to recognise the format.
    pub name: String,
    /// The raw bytes of the file, shared: the HDF5 reader reads them in place
    /// ([`InputFile::shared`]) rather than holding a second copy.
    pub bytes: std::sync::Arc<Vec<u8>>,
}

impl InputFile {
    /// Wraps a name and bytes.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        InputFile {
            name: name.into(),
            bytes: std::sync::Arc::new(bytes),
        }
    }

    /// The bytes, shared without a copy, when they are not gzip (a `.gz` is read
    /// through [`InputFile::decompressed_within`]).
    pub fn shared(&self) -> Option<std::sync::Arc<Vec<u8>>> {
        (!is_gzip(&self.bytes)).then(|| std::sync::Arc::clone(&self.bytes))
    }

    /// The file name without its folders, lower-cased, without a trailing `.gz`.
    pub fn base_name(&self) -> String {
        let base = self
            .name
            .rsplit(['/', '\\'])
            .next()
            .unwrap_or(&self.name)
            .to_ascii_lowercase();
        base.strip_suffix(".gz").map(str::to_string).unwrap_or(base)
    }

    /// The bytes, decompressed when they are gzip (detected by the magic number, not
    /// the name), at most [`MAX_EXPANDED_BYTES`] of them (see
    /// [`InputFile::decompressed_within`]).
    pub fn decompressed(&self) -> Result<std::borrow::Cow<'_, [u8]>> {
        self.decompressed_within(MAX_EXPANDED_BYTES)
    }

    /// The bytes, decompressed when they are gzip, with a cap: a file that expands to
    /// more than `limit` bytes is refused as too large (not damaged) before any memory
    /// is set aside for it (a small `.gz` can expand to gigabytes). The stream is
    /// inflated twice: once counting (64 KiB at a time, stopping as soon as the cap is
    /// passed), then into a buffer of exactly the size counted (so a valid file needs
    /// its size once, never the doubling a growing buffer takes). A truncated or damaged
    /// gzip stream is an error, never a partial read; so is a gzip stream inside the
    /// gzip stream (a file compressed twice).
    pub fn decompressed_within(&self, limit: u64) -> Result<std::borrow::Cow<'_, [u8]>> {
        if !is_gzip(&self.bytes) {
            return Ok(std::borrow::Cow::Borrowed(&self.bytes));
        }
        let damaged = |e: std::io::Error| {
            Error::input(
                &self.name,
                format!(
                    "the gzip stream is truncated or damaged ({e}); \
                     download or copy the file again"
                ),
            )
        };
        let mut chunk = vec![0u8; 64 << 10];
        let mut head = [0u8; 2];
        let mut size = 0u64;
        let mut decoder = flate2::read::MultiGzDecoder::new(&self.bytes[..]);
        loop {
            let n = decoder.read(&mut chunk).map_err(damaged)?;
            if n == 0 {
                break;
            }
            if size < 2 {
                let k = (2 - size as usize).min(n);
                head[size as usize..size as usize + k].copy_from_slice(&chunk[..k]);
            }
            size += n as u64;
            if size > limit {
                return Err(Error::input(
                    &self.name,
                    format!(
                        "expands to more than {} when decompressed ({} compressed): too \
                         large to read here, not damaged; cellvae reads at most {} of \
                         decompressed data per file{}; split the cells into several files, \
                         or keep fewer genes or cells before exporting",
                        human_bytes(limit),
                        human_bytes(self.bytes.len() as u64),
                        human_bytes(limit),
                        if cfg!(target_arch = "wasm32") {
                            " in the browser (the command line reads more)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        if size >= 2 && is_gzip(&head) {
            return Err(Error::input(
                &self.name,
                "is gzip-compressed twice (a .gz inside the .gz); decompress it once \
                 (`gunzip`) and give the result, or compress the original file only once",
            ));
        }
        let mut out = Vec::with_capacity(size as usize);
        flate2::read::MultiGzDecoder::new(&self.bytes[..])
            .take(size)
            .read_to_end(&mut out)
            .map_err(damaged)?;
        Ok(std::borrow::Cow::Owned(out))
    }
}

/// The most bytes a compressed input may expand to: 4 GiB natively, 1 GiB on wasm32
/// (a browser tab's memory is 4 GiB at most, and the parsed matrix needs room too).
pub const MAX_EXPANDED_BYTES: u64 = if cfg!(target_arch = "wasm32") {
    1 << 30
} else {
    4 << 30
};

fn is_gzip(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0x1f && b[1] == 0x8b
}

/// `n` bytes in words: "2 GiB", "12.5 MiB", "300 bytes".
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if v.fract() == 0.0 {
                format!("{v} {unit}")
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{n} bytes")
}

/// Whether dense tables hold cells as rows or as columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Orientation {
    /// Decide from the header and the shape.
    #[default]
    Auto,
    /// One row per cell, one column per gene.
    CellsAsRows,
    /// One column per cell, one row per gene.
    CellsAsColumns,
}

/// Options for reading.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Accept finite values that are not non-negative integers (normalised data), for
    /// inspection only: a count likelihood needs raw counts, so training refuses them.
    pub allow_non_counts: bool,
    /// Orientation of dense CSV/TSV tables.
    pub orientation: Orientation,
    /// The most bytes a compressed count matrix may expand to (`None`:
    /// [`MAX_EXPANDED_BYTES`]); metadata and 10x side files always use the default.
    pub max_expanded_bytes: Option<u64>,
    /// The most rows or columns (cells, genes) a file's header may claim (`None`:
    /// [`MAX_DIMENSION`]; a value above it is clamped to it). Checked before anything
    /// is allocated; the fuzz targets set it low.
    pub max_dimension: Option<u64>,
}

impl ReadOptions {
    /// The decompression limit in force.
    pub fn expanded_limit(&self) -> u64 {
        self.max_expanded_bytes.unwrap_or(MAX_EXPANDED_BYTES)
    }

    /// The dimension limit in force (at most [`MAX_DIMENSION`]).
    pub fn dimension_limit(&self) -> u64 {
        self.max_dimension
            .map_or(MAX_DIMENSION, |d| d.min(MAX_DIMENSION))
    }
}

/// A sparse count matrix, cells x genes, in CSR layout, with its names and metadata.
#[derive(Debug, Clone, Default)]
pub struct CountMatrix {
    /// Number of cells (rows).
    pub n_cells: usize,
    /// Number of genes (columns).
    pub n_genes: usize,
    /// Row pointers, `n_cells + 1` entries.
    pub indptr: Vec<usize>,
    /// Gene index of each stored value, sorted within a row.
    pub indices: Vec<u32>,
    /// Stored values (counts), no explicit zeros.
    pub data: Vec<f32>,
    /// Gene ids (e.g. Ensembl ids; the names again when the file has no ids).
    pub gene_ids: Vec<String>,
    /// Gene names, unique (duplicates are made unique with `-1`, `-2`, ... and reported).
    pub gene_names: Vec<String>,
    /// Cell ids (barcodes).
    pub cell_ids: Vec<String>,
    /// Cell metadata.
    pub obs: ObsTable,
    /// The format read: `10x-mtx`, `mtx`, `10x-h5`, `h5ad`, `csv`, `tsv`; several joined by `+`.
    pub format: String,
    /// What inside the file held the counts (`X`, `layers/counts`, `raw/X`, ...), when it matters.
    pub source: String,
    /// Things done to the input that the user must be told (renamed genes, joins, ...).
    pub notes: Vec<String>,
}

/// Largest number of rows, columns or stored values accepted from a header before
/// anything is allocated (protects against absurd or hostile dimensions).
pub const MAX_DIMENSION: u64 = 50_000_000;
/// Largest number of stored values accepted.
pub const MAX_NNZ: u64 = 2_000_000_000;

/// Checks one value read from a file: finite always; a non-negative integer unless
/// `allow_non_counts`. Returns the problem as a sentence.
pub fn check_count(value: f64, allow_non_counts: bool) -> std::result::Result<(), String> {
    if value.is_nan() {
        return Err("the value is NaN; counts must be finite non-negative integers".into());
    }
    if value.is_infinite() {
        return Err(format!(
            "the value is {value}; counts must be finite non-negative integers"
        ));
    }
    if value.abs() > f64::from(f32::MAX) {
        return Err(format!(
            "the value {value:e} is too large: it overflows a 32-bit float (above 3.4e38) and \
             would be read as infinity; counts must be finite non-negative integers"
        ));
    }
    if allow_non_counts {
        return Ok(());
    }
    if value < 0.0 {
        return Err(format!(
            "the value {value} is negative: this looks like scaled or centred data, not counts; \
             a count likelihood needs the raw UMI counts"
        ));
    }
    if value.fract() != 0.0 {
        return Err(format!(
            "the value {value} is not an integer: normalised or log-transformed data is not counts, \
             and a count likelihood needs the raw UMI counts (use the raw matrix, e.g. layers/counts)"
        ));
    }
    Ok(())
}

/// Makes names unique the way scanpy's `var_names_make_unique` does (`A`, `A-1`, `A-2`),
/// returning how many were renamed.
pub fn make_unique(names: &mut [String]) -> usize {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for n in names.iter() {
        *seen.entry(n.clone()).or_insert(0) += 1;
    }
    let dupes: std::collections::HashSet<String> = seen
        .iter()
        .filter(|(_, &c)| c > 1)
        .map(|(k, _)| k.clone())
        .collect();
    if dupes.is_empty() {
        return 0;
    }
    let mut taken: std::collections::HashSet<String> = names.iter().cloned().collect();
    let mut counter: HashMap<String, usize> = HashMap::new();
    let mut first_seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut renamed = 0;
    for n in names.iter_mut() {
        if !dupes.contains(n.as_str()) {
            continue;
        }
        if first_seen.insert(n.clone()) {
            continue; // the first occurrence keeps its name
        }
        let c = counter.entry(n.clone()).or_insert(0);
        let new_name = loop {
            *c += 1;
            let candidate = format!("{n}-{c}");
            if !taken.contains(&candidate) {
                break candidate;
            }
        };
        taken.insert(new_name.clone());
        *n = new_name;
        renamed += 1;
    }
    renamed
}

impl CountMatrix {
    /// Builds a CSR matrix from (cell, gene, value) triplets. Triplets may come in any
    /// order; duplicates are summed; zeros are dropped. Indices must already be checked.
    pub fn from_triplets(
        n_cells: usize,
        n_genes: usize,
        mut triplets: Vec<(u32, u32, f32)>,
    ) -> Self {
        triplets.sort_unstable_by_key(|&(c, g, _)| (c, g));
        let mut indptr = vec![0usize; n_cells + 1];
        let mut indices = Vec::with_capacity(triplets.len());
        let mut data: Vec<f32> = Vec::with_capacity(triplets.len());
        let mut last: Option<(u32, u32)> = None;
        for (c, g, v) in triplets {
            if last == Some((c, g)) {
                if let Some(d) = data.last_mut() {
                    *d += v;
                }
                continue;
            }
            last = Some((c, g));
            indptr[c as usize + 1] += 1;
            indices.push(g);
            data.push(v);
        }
        for i in 0..n_cells {
            indptr[i + 1] += indptr[i];
        }
        let mut m = CountMatrix {
            n_cells,
            n_genes,
            indptr,
            indices,
            data,
            ..Default::default()
        };
        m.drop_explicit_zeros();
        m
    }

    /// Removes stored zeros, keeping the CSR structure valid.
    pub fn drop_explicit_zeros(&mut self) {
        if !self.data.contains(&0.0) {
            return;
        }
        let mut new_indptr = Vec::with_capacity(self.n_cells + 1);
        new_indptr.push(0);
        let mut w = 0;
        for c in 0..self.n_cells {
            for k in self.indptr[c]..self.indptr[c + 1] {
                if self.data[k] != 0.0 {
                    self.data[w] = self.data[k];
                    self.indices[w] = self.indices[k];
                    w += 1;
                }
            }
            new_indptr.push(w);
        }
        self.data.truncate(w);
        self.indices.truncate(w);
        self.indptr = new_indptr;
    }

    /// Number of stored (non-zero) values.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Sum of all counts (in f64, exact for integer counts).
    pub fn total_counts(&self) -> f64 {
        self.data.iter().map(|&v| v as f64).sum()
    }

    /// The stored values of one cell: (gene indices, values).
    pub fn row(&self, cell: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[cell]..self.indptr[cell + 1];
        (&self.indices[r.clone()], &self.data[r])
    }

    /// One cell as a dense vector of length `n_genes`.
    pub fn dense_row(&self, cell: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.n_genes];
        let (idx, val) = self.row(cell);
        for (&g, &v) in idx.iter().zip(val) {
            out[g as usize] = v;
        }
        out
    }

    /// Total counts of each cell (library sizes).
    pub fn library_sizes(&self) -> Vec<f64> {
        (0..self.n_cells)
            .map(|c| self.row(c).1.iter().map(|&v| v as f64).sum())
            .collect()
    }

    /// Smallest and largest value, counting implicit zeros (None for an empty matrix).
    pub fn value_range(&self) -> Option<(f64, f64)> {
        if self.n_cells == 0 || self.n_genes == 0 {
            return None;
        }
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &v in &self.data {
            lo = lo.min(v as f64);
            hi = hi.max(v as f64);
        }
        if self.nnz() < self.n_cells * self.n_genes {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        Some((lo, hi))
    }

    /// Whether every value is a non-negative integer (raw counts).
    pub fn is_integer_counts(&self) -> bool {
        self.data.iter().all(|&v| v >= 0.0 && v.fract() == 0.0)
    }

    /// Makes gene names unique, recording a note when any were renamed.
    pub fn make_gene_names_unique(&mut self, file: &str) {
        let renamed = make_unique(&mut self.gene_names);
        if renamed > 0 {
            self.notes.push(format!(
                "{file}: {renamed} duplicated gene names were made unique by appending -1, -2, ..."
            ));
        }
    }

    /// Appends the cells of `more`, which has the same genes and metadata columns (the
    /// windows of one file), after the cells of `self`.
    pub fn append(&mut self, more: CountMatrix) -> Result<()> {
        if more.n_genes != self.n_genes {
            return Err(Error::Config(
                "internal error: cells to append have other genes; please report".into(),
            ));
        }
        if self.indptr.is_empty() {
            self.indptr.push(0);
        }
        let base = self.indices.len();
        self.indptr
            .extend(more.indptr.iter().skip(1).map(|&p| p + base));
        self.indices.extend(more.indices);
        self.data.extend(more.data);
        self.cell_ids.extend(more.cell_ids);
        if self.n_cells == 0 {
            self.obs = more.obs;
        } else {
            self.obs.append(more.obs)?;
        }
        self.n_cells += more.n_cells;
        Ok(())
    }

    /// Keeps the given cells (in the given order), with their metadata.
    pub fn select_cells(&self, keep: &[usize]) -> CountMatrix {
        // Sized exactly: growing by doubling would hold up to twice the matrix.
        let nnz: usize = keep.iter().map(|&c| self.row(c).0.len()).sum();
        let mut indptr = Vec::with_capacity(keep.len() + 1);
        indptr.push(0);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        for &c in keep {
            let (i, v) = self.row(c);
            indices.extend_from_slice(i);
            data.extend_from_slice(v);
            indptr.push(indices.len());
        }
        CountMatrix {
            n_cells: keep.len(),
            n_genes: self.n_genes,
            indptr,
            indices,
            data,
            gene_ids: self.gene_ids.clone(),
            gene_names: self.gene_names.clone(),
            cell_ids: keep.iter().map(|&c| self.cell_ids[c].clone()).collect(),
            obs: self.obs.select(keep),
            format: self.format.clone(),
            source: self.source.clone(),
            notes: self.notes.clone(),
        }
    }

    /// Keeps the given genes (in the given order).
    pub fn select_genes(&self, keep: &[usize]) -> CountMatrix {
        let mut new_index = vec![u32::MAX; self.n_genes];
        for (new, &old) in keep.iter().enumerate() {
            new_index[old] = new as u32;
        }
        // Sized exactly: growing by doubling would hold up to twice the matrix.
        let nnz = self
            .indices
            .iter()
            .filter(|&&g| new_index.get(g as usize).is_some_and(|&n| n != u32::MAX))
            .count();
        let mut indptr = Vec::with_capacity(self.n_cells + 1);
        indptr.push(0);
        let mut indices = Vec::with_capacity(nnz);
        let mut data = Vec::with_capacity(nnz);
        let mut row: Vec<(u32, f32)> = Vec::new();
        for c in 0..self.n_cells {
            row.clear();
            let (i, v) = self.row(c);
            for (&g, &x) in i.iter().zip(v) {
                let n = new_index[g as usize];
                if n != u32::MAX {
                    row.push((n, x));
                }
            }
            row.sort_unstable_by_key(|p| p.0);
            for &(g, x) in &row {
                indices.push(g);
                data.push(x);
            }
            indptr.push(indices.len());
        }
        CountMatrix {
            n_cells: self.n_cells,
            n_genes: keep.len(),
            indptr,
            indices,
            data,
            gene_ids: keep.iter().map(|&g| self.gene_ids[g].clone()).collect(),
            gene_names: keep.iter().map(|&g| self.gene_names[g].clone()).collect(),
            cell_ids: self.cell_ids.clone(),
            obs: self.obs.clone(),
            format: self.format.clone(),
            source: self.source.clone(),
            notes: self.notes.clone(),
        }
    }

    /// Checks internal consistency (lengths, sorted in-range indices); used by tests and
    /// after every reader so a half-read matrix can never leave the reader.
    pub fn validate(&self) -> std::result::Result<(), String> {
        // checked_add: a decoded n_cells may be usize::MAX (fuzz finding, codec).
        if self.n_cells.checked_add(1) != Some(self.indptr.len()) {
            return Err("indptr length".into());
        }
        if self.indices.len() != self.data.len()
            || *self.indptr.last().unwrap_or(&0) != self.data.len()
        {
            return Err("indices/data length".into());
        }
        if self.gene_ids.len() != self.n_genes || self.gene_names.len() != self.n_genes {
            return Err("gene name count".into());
        }
        if self.cell_ids.len() != self.n_cells {
            return Err("cell id count".into());
        }
        if self.indptr.first() != Some(&0) {
            return Err("indptr does not start at 0".into());
        }
        // Non-decreasing and ending at the data's length: every row's range is in bounds.
        if let Some(c) = (0..self.n_cells).find(|&c| self.indptr[c] > self.indptr[c + 1]) {
            return Err(format!("indptr decreases at row {c}"));
        }
        for c in 0..self.n_cells {
            let (i, _) = self.row(c);
            if i.windows(2).any(|w| w[0] >= w[1]) || i.iter().any(|&g| g as usize >= self.n_genes) {
                return Err(format!("row {c}: indices unsorted or out of range"));
            }
        }
        for col in &self.obs.columns {
            if col.len() != self.n_cells {
                return Err(format!("obs column {} has the wrong length", col.name));
            }
        }
        Ok(())
    }
}
