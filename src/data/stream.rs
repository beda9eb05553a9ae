//! The cells of the inputs a window at a time ([`CellStream`]), natively: what `cellvae
//! encode` reads so that its memory does not grow with the number of cells.
//!
//! One dataset given as an `.h5ad` (CSR or dense counts), a 10x Cell Ranger `.h5` or a
//! Matrix Market file (with its 10x side files; in one pass, entries ordered by cell) is
//! streamed from disk: `data/h5/stream.rs` and `data/mtx/stream.rs`. Everything else is
//! read whole by [`super::read_inputs`] and handed out in windows: several datasets
//! (joined over shared genes), a separate metadata table (`--obs`, joined by cell id),
//! dense CSV/TSV, an `.h5ad` stored by gene (CSC) or gzip-compressed as a whole.
//! [`CellStream::streamed`] says which it was.

use super::inputs::{group_inputs, list_paths, DatasetFiles};
use super::{h5, mtx, CountMatrix, InputFile, ReadOptions};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Windows of cells from the inputs.
pub struct CellStream {
    source: Source,
    /// The cells handed out so far.
    next: usize,
}

enum Source {
    H5(h5::H5Cells),
    Mtx(mtx::MtxCells),
    Whole(Box<CountMatrix>),
}

impl CellStream {
    /// Opens `paths` (files, or 10x folders) and, when given, the metadata table
    /// `obs_file`, streaming them when they are one dataset of a kind that can be.
    pub fn open(
        paths: &[PathBuf],
        obs_file: Option<&InputFile>,
        opts: &ReadOptions,
    ) -> Result<CellStream> {
        if obs_file.is_none() {
            if let Some(source) = open_streaming(paths, opts)? {
                return Ok(CellStream { source, next: 0 });
            }
        }
        let files = super::load_paths(paths)?;
        let m = super::read_inputs(&files, obs_file, opts)?;
        Ok(CellStream {
            source: Source::Whole(Box::new(m)),
            next: 0,
        })
    }

    /// Whether the cells are read from disk window by window (else they were read whole).
    pub fn streamed(&self) -> bool {
        !matches!(self.source, Source::Whole(_))
    }

    /// The number of cells.
    pub fn n_cells(&self) -> usize {
        match &self.source {
            Source::H5(s) => s.n_cells(),
            Source::Mtx(s) => s.n_cells(),
            Source::Whole(m) => m.n_cells,
        }
    }

    /// What the reader noted (which matrix was read, names made up, ...).
    pub fn notes(&self) -> &[String] {
        match &self.source {
            Source::H5(s) => s.notes(),
            Source::Mtx(s) => s.notes(),
            Source::Whole(m) => &m.notes,
        }
    }

    /// The next window of at most `max_cells` cells with their ids and metadata, in the
    /// order of the file; `None` after the last.
    pub fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CountMatrix>> {
        let chunk = match &mut self.source {
            Source::H5(s) => s.next_chunk(max_cells)?,
            Source::Mtx(s) => s.next_chunk(max_cells)?,
            Source::Whole(m) => {
                let end = self.next.saturating_add(max_cells.max(1)).min(m.n_cells);
                (self.next < end).then(|| {
                    let cells: Vec<usize> = (self.next..end).collect();
                    let mut c = m.select_cells(&cells);
                    c.notes.clear();
                    c
                })
            }
        };
        if let Some(c) = &chunk {
            self.next += c.n_cells;
        }
        Ok(chunk)
    }
}

/// The streaming source for `paths`, when they are one dataset that can be streamed.
fn open_streaming(paths: &[PathBuf], opts: &ReadOptions) -> Result<Option<Source>> {
    let listed = list_paths(paths)?;
    // Roles come from the names alone: the files are not read here.
    let named: Vec<InputFile> = listed
        .iter()
        .map(|p| InputFile::new(p.display().to_string(), Vec::new()))
        .collect();
    let groups = group_inputs(&named)?;
    let [(_, dataset)] = groups.as_slice() else {
        return Ok(None);
    };
    let path_of = |f: &InputFile| -> &Path {
        let i = named
            .iter()
            .position(|n| std::ptr::eq(n, f))
            .unwrap_or_default();
        &listed[i]
    };
    Ok(match dataset {
        DatasetFiles::H5ad(f) => h5::H5Cells::open_h5ad(path_of(f), &f.name, opts)?.map(Source::H5),
        DatasetFiles::TenxH5(f) => {
            h5::H5Cells::open_10x(path_of(f), &f.name, opts)?.map(Source::H5)
        }
        DatasetFiles::Mtx {
            matrix,
            features,
            barcodes,
        } => {
            let read = |f: &InputFile| -> Result<InputFile> {
                let bytes = std::fs::read(path_of(f)).map_err(|e| Error::Io {
                    file: f.name.clone(),
                    source: e,
                })?;
                Ok(InputFile::new(f.name.clone(), bytes))
            };
            let features = features.map(read).transpose()?;
            let barcodes = barcodes.map(read).transpose()?;
            let s = mtx::MtxCells::open(
                path_of(matrix),
                &matrix.name,
                features.as_ref(),
                barcodes.as_ref(),
                opts,
            )?;
            Some(Source::Mtx(s))
        }
        DatasetFiles::Dense(_) => None,
    })
}
