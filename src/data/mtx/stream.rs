//! A Matrix Market file read in one pass, a window of cells at a time ([`MtxCells`]),
//! natively: `cellvae encode` streams a `matrix.mtx(.gz)` from disk so that memory does
//! not grow with the number of cells. The side files (features, barcodes) are read
//! whole, as [`super::read_mtx`] reads them; every entry gets the same checks.
//!
//! One pass needs the entries grouped by cell, in increasing cell order: the order Cell
//! Ranger writes (genes x cells, sorted by column) and the order `scipy.io.mmwrite` of a
//! CSR cells x genes matrix gives. A file in another order stops at the first entry that
//! goes back to an earlier cell, with the line and what to do.

use super::{check_all_seen, parse_entry, read_layout, Layout, Names};
use crate::data::text::byte_lines;
use crate::data::{CountMatrix, InputFile, ReadOptions};
use crate::error::{Error, Result};
use std::io::BufRead;

/// The most bytes of banner and comments before the size line.
const MAX_HEAD_BYTES: usize = 1 << 20;

/// The cells of a Matrix Market file, read in windows ([`MtxCells::next_chunk`]).
pub struct MtxCells {
    name: String,
    reader: Box<dyn BufRead>,
    layout: Layout,
    names: Names,
    /// The features file's name, for the note on kept gene expression features.
    features_name: Option<String>,
    /// The number of the last line read.
    line: usize,
    /// Entries read so far, against the header's count.
    seen: u64,
    /// An entry read past the current window: the first of the next.
    pending: Option<(u32, u32, f32)>,
    /// The cell of the last entry read (entries must not go back).
    last_cell: u32,
    next: usize,
    opts: ReadOptions,
    buf: Vec<u8>,
}

impl MtxCells {
    /// Opens the matrix at `path` (`name` in messages; gzip is recognised by its first
    /// bytes) with its side files, and reads its header.
    pub fn open(
        path: &std::path::Path,
        name: &str,
        features: Option<&InputFile>,
        barcodes: Option<&InputFile>,
        opts: &ReadOptions,
    ) -> Result<MtxCells> {
        let io = |e| Error::Io {
            file: name.to_string(),
            source: e,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        let mut raw = std::io::BufReader::with_capacity(1 << 16, file);
        let gz = crate::data::is_gzip(raw.fill_buf().map_err(io)?);
        let mut reader: Box<dyn BufRead> = if gz {
            Box::new(std::io::BufReader::with_capacity(
                1 << 16,
                flate2::read::MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        // The banner, comments and the size line: up to the first line after the banner
        // that is neither empty nor a comment.
        let mut head = Vec::new();
        let mut line = 0;
        loop {
            let before = head.len();
            let n = reader.read_until(b'\n', &mut head).map_err(io)?;
            if n == 0 {
                break;
            }
            line += 1;
            let text = head[before..].trim_ascii();
            if line > 1 && !text.is_empty() && !text.starts_with(b"%") {
                break;
            }
            if head.len() > MAX_HEAD_BYTES {
                return Err(Error::input_at(
                    name,
                    format!("line {line}"),
                    "more than 1 MiB of comments before the size line; this is not a Matrix \
                     Market file, or its header is damaged",
                ));
            }
        }
        let layout = read_layout(
            name,
            &head,
            &mut byte_lines(&head),
            features,
            barcodes,
            opts,
        )?;
        // A gzip file's length bounds little: allow names for what it could expand to.
        let len = if gz {
            file_len.saturating_mul(8)
        } else {
            file_len
        };
        let mut names = layout.names(name, features, barcodes, len)?;
        let mut genes = CountMatrix {
            n_genes: names.gene_ids.len(),
            gene_names: std::mem::take(&mut names.gene_names),
            ..Default::default()
        };
        genes.make_gene_names_unique(features.map_or(name, |f| f.name.as_str()));
        names.gene_names = genes.gene_names;
        names.notes.extend(genes.notes);
        Ok(MtxCells {
            name: name.to_string(),
            reader,
            layout,
            names,
            features_name: features.map(|f| f.name.clone()),
            line,
            seen: 0,
            pending: None,
            last_cell: 0,
            next: 0,
            opts: *opts,
            buf: Vec::new(),
        })
    }

    /// The number of cells the header declares.
    pub fn n_cells(&self) -> usize {
        self.layout.n_cells
    }

    /// What a whole-file read would note (orientation, names made up, header lines).
    pub fn notes(&self) -> &[String] {
        &self.names.notes
    }

    /// The next window of at most `max_cells` cells (cells without entries included),
    /// named; `None` after the last cell.
    pub fn next_chunk(&mut self, max_cells: usize) -> Result<Option<CountMatrix>> {
        let start = self.next;
        let end = start
            .saturating_add(max_cells.max(1))
            .min(self.layout.n_cells);
        if start >= end {
            return Ok(None);
        }
        let mut triplets = Vec::new();
        let shift = |(c, g, v): (u32, u32, f32)| (c - start as u32, g, v);
        match self.pending.take() {
            Some(t) if (t.0 as usize) < end => triplets.push(shift(t)),
            other => self.pending = other,
        }
        while self.pending.is_none() {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| Error::Io {
                    file: self.name.clone(),
                    source: e,
                })?;
            if n == 0 {
                check_all_seen(&self.name, &self.layout, self.seen)?;
                break;
            }
            self.line += 1;
            let text = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let Some(t) = parse_entry(
                &self.name,
                self.line,
                text,
                &self.layout,
                &mut self.seen,
                &self.opts,
            )?
            else {
                continue;
            };
            if t.0 < self.last_cell {
                return Err(Error::input_at(
                    &self.name,
                    format!("line {}", self.line),
                    format!(
                        "this entry is for cell {} after entries for cell {}: the file is not \
                         ordered by cell, and it is read in one pass (as Cell Ranger writes \
                         it, cell after cell); sort its entries by cell or save the data as .h5ad",
                        t.0 + 1,
                        self.last_cell + 1
                    ),
                ));
            }
            self.last_cell = t.0;
            if (t.0 as usize) < end {
                triplets.push(shift(t));
            } else {
                self.pending = Some(t);
            }
        }
        self.next = end;
        let mut m = CountMatrix::from_triplets(end - start, self.layout.n_genes, triplets);
        m.gene_ids = self.names.gene_ids.clone();
        m.gene_names = self.names.gene_names.clone();
        m.cell_ids = self.names.cell_ids[start..end].to_vec();
        m.format = self.names.format.to_string();
        Ok(Some(match (&self.names.types, &self.features_name) {
            (Some(types), Some(f)) => super::keep_gene_expression(m, types, f),
            _ => m,
        }))
    }
}
