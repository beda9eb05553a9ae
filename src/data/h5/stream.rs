//! Cells of an HDF5 file a window at a time ([`H5Cells`]), natively: `cellvae encode`
//! streams an AnnData `.h5ad` (CSR or dense `X`, `layers/counts`, `raw/X`) or a 10x
//! Cell Ranger `.h5` so that memory does not grow with the number of cells. The file is
//! opened with `hdf5-pure`'s streaming reader; `indptr`, the gene names and `obs` are
//! read whole (a few bytes per cell), `data` and `indices` one window of rows at a
//! time.
//!
//! The checks are the whole-file readers' (`h5.rs`), window by window. One difference:
//! an `.h5ad`'s matrix is chosen (X, then layers/counts, then raw/X) by its first
//! window, so a matrix whose first cells hold counts and later ones do not stops with
//! an error at the first such value (naming the cell) instead of being skipped. A matrix
//! stored by gene (CSC) cannot be read by cell: [`H5Cells::open_h5ad`] says so with
//! `Ok(None)` and the caller reads the file whole.

use super::anndata::{self, Layout};
use super::{
    assemble, check_indices, dense_rows, describe_bytes, fixed_array, frame, open_compressed,
    Compressed, Node, Rejection, H5,
};
use crate::data::{CountMatrix, ObsTable, ReadOptions};
use crate::error::{Error, Result};
use hdf5_pure::Dataset;
use hdf5_pure::File;

/// The cells an `.h5ad` or 10x `.h5` holds, read in windows ([`H5Cells::next_chunk`]).
pub struct H5Cells {
    h: H5,
    rows: Rows,
    /// Genes, format, source and notes shared by every window (no cells).
    header: CountMatrix,
    cell_ids: Vec<String>,
    obs: ObsTable,
    /// 10x feature types: only `Gene Expression` is kept when they are mixed.
    types: Option<Vec<String>>,
    next: usize,
    allow_non_counts: bool,
}

/// Where a window's values come from.
enum Rows {
    /// Compressed by cell: `group/{data,indices}` and the whole checked `indptr`.
    Csr {
        group: String,
        data: Dataset,
        indices: Dataset,
        indptr: Vec<usize>,
    },
    /// A dense cells x genes dataset.
    Dense { path: String, ds: Dataset },
}

/// The cells to try per window when choosing an `.h5ad`'s count matrix.
const PROBE_CELLS: usize = 4096;

impl H5Cells {
    /// Opens an `.h5ad` at `path` (`name` in messages). `Ok(None)` when it cannot be
    /// streamed (gzip-compressed as a whole, or its counts are stored by gene).
    pub fn open_h5ad(
        path: &std::path::Path,
        name: &str,
        opts: &ReadOptions,
    ) -> Result<Option<H5Cells>> {
        let Some(h) = H5::open_path(path, name, opts)? else {
            return Ok(None);
        };
        if matches!(h.node("X")?, Node::Missing) {
            // The whole-file reader words this error (and its hints).
            return Ok(None);
        }
        let obs = frame::read(&h, "obs")?;
        let n_obs = obs.as_ref().and_then(frame::Frame::len);
        let candidates = anndata::candidates(&h)?;
        let mut rejected: Vec<(&'static str, Rejection)> = Vec::new();
        let mut chosen = None;
        for c in &candidates {
            let (n_rows, n_cols, layout) = anndata::layout(&h, c.path)?;
            if let Some(n) = n_obs.filter(|&n| n != n_rows) {
                return Err(h.err(
                    format!("/{}", c.path),
                    format!("has {n_rows} rows but obs has {n} cells; the file is inconsistent"),
                ));
            }
            if n_rows == 0 {
                // Nothing to stream: the whole-file reader says what the file holds.
                return Ok(None);
            }
            let rows = match layout {
                Layout::Dense(ds) => Rows::Dense {
                    path: c.path.to_string(),
                    ds,
                },
                Layout::Sparse { csr: false } => return Ok(None),
                Layout::Sparse { csr: true } => {
                    csr_rows(&h, c.path, n_rows, "the sparse matrix is incomplete")?
                }
            };
            let mut probe = CountMatrix {
                n_genes: n_cols,
                ..Default::default()
            };
            match read_window(&h, &rows, 0, PROBE_CELLS.min(n_rows), false, &mut probe)? {
                Some(r) => rejected.push((c.path, r)),
                None => {
                    chosen = Some((c, n_rows, n_cols, rows));
                    break;
                }
            }
        }
        let Some((c, n_cells, n_genes, rows)) = chosen else {
            // The whole-file reader words the refusal (each candidate and why) or, when
            // non-counts are allowed, reads X as it is.
            return Ok(None);
        };
        let var = frame::read(&h, c.var)?;
        let (gene_ids, gene_names) = frame::gene_names(&h, var.as_ref(), c.var, n_genes)?;
        let mut notes = Vec::new();
        if !rejected.is_empty() {
            notes.push(format!(
                "{}: {}; the raw counts were read from {}",
                h.name,
                anndata::summarise(&rejected),
                c.path
            ));
        }
        let (cell_ids, obs) = match obs {
            Some(f) => {
                notes.extend(f.notes);
                let ids = f.index.unwrap_or_else(|| anndata::numbered(n_cells));
                (ids, ObsTable { columns: f.columns })
            }
            None => (anndata::numbered(n_cells), ObsTable::default()),
        };
        let header = header(&h, gene_ids, gene_names, "h5ad", c.path, notes);
        Ok(Some(H5Cells {
            h,
            rows,
            header,
            cell_ids,
            obs,
            types: None,
            next: 0,
            allow_non_counts: false,
        }))
    }

    /// Opens a 10x Cell Ranger `.h5` at `path`; `Ok(None)` when it is gzip-compressed as
    /// a whole.
    pub fn open_10x(
        path: &std::path::Path,
        name: &str,
        opts: &ReadOptions,
    ) -> Result<Option<H5Cells>> {
        let Some(h) = H5::open_path(path, name, opts)? else {
            return Ok(None);
        };
        let hd = super::tenx::header(&h)?;
        let rows = csr_rows(&h, &hd.group, hd.n_cells, hd.hint)?;
        let header = header(
            &h,
            hd.gene_ids,
            hd.gene_names,
            "10x-h5",
            &hd.group,
            Vec::new(),
        );
        Ok(Some(H5Cells {
            h,
            rows,
            header,
            cell_ids: hd.cell_ids,
            obs: ObsTable::default(),
            types: hd.types,
            next: 0,
            allow_non_counts: opts.allow_non_counts,
        }))
    }

    /// The number of cells in the file.
    pub fn n_cells(&self) -> usize {
        self.cell_ids.len()
    }

    /// What a whole-file read would note (which matrix, skipped columns).
    pub fn notes(&self) -> &[String] {
        &self.header.notes
    }

    /// The next window of at most `max_cells` cells, with their ids, metadata and the
    /// file's genes; `None` after the last cell.
    pub fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CountMatrix>> {
        let start = self.next;
        let end = start.saturating_add(max_cells.max(1)).min(self.n_cells());
        if start >= end {
            return Ok(None);
        }
        let mut m = CountMatrix {
            n_cells: end - start,
            gene_ids: self.header.gene_ids.clone(),
            gene_names: self.header.gene_names.clone(),
            format: self.header.format.clone(),
            source: self.header.source.clone(),
            ..Default::default()
        };
        m.n_genes = m.gene_ids.len();
        if let Some(r) = read_window(
            &self.h,
            &self.rows,
            start,
            end,
            self.allow_non_counts,
            &mut m,
        )? {
            return Err(self.h.err(
                r.location,
                format!(
                    "{} (the first cells of {} hold counts, this one does not); re-export the \
                     file with raw UMI counts",
                    r.problem, self.header.source
                ),
            ));
        }
        let cells: Vec<usize> = (start..end).collect();
        m.cell_ids = self.cell_ids[start..end].to_vec();
        m.obs = self.obs.select(&cells);
        self.next = end;
        Ok(Some(match &self.types {
            Some(t) => crate::data::mtx::keep_gene_expression(m, t, &self.h.name),
            None => m,
        }))
    }
}

impl H5 {
    /// Opens the file at `path` for streaming reads (natively): metadata and dataset
    /// windows are read from disk on demand, so memory does not grow with the file.
    /// `Ok(None)` when the file is gzip-compressed as a whole (it cannot be read by
    /// range; the caller reads it whole). The same checks as [`H5::open`]: signature,
    /// length, the Fixed Array guard (a scan of the file in blocks).
    fn open_path(path: &std::path::Path, name: &str, opts: &ReadOptions) -> Result<Option<H5>> {
        use std::io::Read;
        let io = |e| Error::Io {
            file: name.to_string(),
            source: e,
        };
        let mut f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let mut head = Vec::with_capacity(64);
        f.by_ref().take(64).read_to_end(&mut head).map_err(io)?;
        if crate::data::is_gzip(&head) {
            return Ok(None);
        }
        if !hdf5_pure::is_hdf5_bytes(&head) {
            return Err(Error::input(
                name,
                format!(
                    "is not an HDF5 file ({}); export the data as .h5ad, .h5, .mtx or .csv",
                    describe_bytes(&head)
                ),
            ));
        }
        let file = File::open_streaming(path).map_err(|e| {
            Error::input(
                name,
                format!("is a damaged HDF5 file ({e}); download or copy it again"),
            )
        })?;
        let sb = file.superblock();
        let f = std::fs::File::open(path).map_err(io)?;
        if let Some((at, bits)) =
            fixed_array::overflowing_header_in(f, sb.offset_size, sb.length_size).map_err(io)?
        {
            return Err(fixed_array::overflow_error(name, at, bits));
        }
        let declared = sb.base_address.get().saturating_add(sb.eof_address);
        if declared > len {
            return Err(Error::input(
                name,
                format!(
                    "is truncated: its HDF5 header says it is {declared} bytes long but it has \
                     only {len}; download or copy the file again"
                ),
            ));
        }
        Ok(Some(H5 {
            name: name.to_string(),
            file,
            max_dimension: opts.dimension_limit(),
            file_len: len,
            // Windows are read one at a time: no dataset is ever held whole.
            max_expanded: u64::MAX,
        }))
    }
}

/// The header every window copies: genes, format, source, notes.
fn header(
    h: &H5,
    gene_ids: Vec<String>,
    gene_names: Vec<String>,
    format: &str,
    source: &str,
    notes: Vec<String>,
) -> CountMatrix {
    let mut m = CountMatrix {
        n_genes: gene_ids.len(),
        indptr: vec![0],
        gene_ids,
        gene_names,
        format: format.into(),
        source: source.into(),
        notes,
        ..Default::default()
    };
    m.make_gene_names_unique(&h.name);
    m
}

/// The datasets of a CSR group and its checked `indptr` (`n_cells + 1` entries).
fn csr_rows(h: &H5, group: &str, n_cells: usize, hint: &str) -> Result<Rows> {
    let g = open_compressed(h, group, n_cells, hint)?;
    h.check_size(&g.data, &format!("{group}/data"))?;
    h.check_size(&g.indices, &format!("{group}/indices"))?;
    Ok(Rows::Csr {
        group: group.to_string(),
        data: g.data,
        indices: g.indices,
        indptr: g.indptr,
    })
}

/// Reads cells `start..end` into `m` (its `n_genes` set; indptr, indices and data
/// filled), or the first value that is not a count.
fn read_window(
    h: &H5,
    rows: &Rows,
    start: usize,
    end: usize,
    allow_non_counts: bool,
    m: &mut CountMatrix,
) -> Result<Option<Rejection>> {
    m.n_cells = end - start;
    m.indptr = vec![0];
    m.indices.clear();
    m.data.clear();
    match rows {
        Rows::Dense { path, ds } => {
            let r = dense_rows(h, ds, path, start, end - start, allow_non_counts, m)?;
            Ok(r)
        }
        Rows::Csr {
            group,
            data,
            indices,
            indptr,
        } => {
            let (a, b) = (indptr[start], indptr[end]);
            let (dp, ip) = (format!("{group}/data"), format!("{group}/indices"));
            let window = Some((a as u64, (b - a) as u64));
            let raw_idx = h.values(indices, &ip, window)?;
            let mut idx = Vec::with_capacity(raw_idx.len());
            check_indices(h, raw_idx, &ip, a, m.n_genes, "genes", &mut idx)?;
            let values = h.values(data, &dp, window)?;
            if values.len() != b - a || idx.len() != b - a {
                return Err(h.err(
                    format!("group /{group}"),
                    "data or indices could not be read whole; the file may be truncated",
                ));
            }
            let local: Vec<usize> = indptr[start..=end].iter().map(|p| p - a).collect();
            if let Some((k, value, problem)) = values.first_problem(allow_non_counts) {
                let cell = start + local.partition_point(|&p| p <= k).saturating_sub(1);
                let gene = idx.get(k).copied().unwrap_or(0);
                return Ok(Some(Rejection {
                    location: format!(
                        "dataset /{dp}, element {} (cell {cell}, gene {gene})",
                        a + k
                    ),
                    value,
                    problem,
                }));
            }
            let mut data = Vec::with_capacity(values.len());
            values.append_f32(&mut data);
            let c = Compressed {
                indptr: local,
                indices: idx,
                values: data,
                problem: None,
                data_path: dp,
            };
            match assemble(c, true, end - start, m.n_genes) {
                Ok(core) => {
                    m.indptr = core.indptr;
                    m.indices = core.indices;
                    m.data = core.data;
                    Ok(None)
                }
                Err(r) => Ok(Some(r)),
            }
        }
    }
}
