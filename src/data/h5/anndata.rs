//! AnnData `.h5ad`: finds the matrix that holds raw counts (`X`, `layers/counts`,
//! `raw/X` or the old `raw.X`), reads it dense, CSR or CSC, and joins the gene names of
//! its `var` and the cells of `obs`.

use super::frame::{self, Frame};
use super::{assemble, finish, read_compressed, read_dense, shape2, Filled, Node, Rejection, H5};
use crate::data::{CountMatrix, ObsTable, ReadOptions, MAX_NNZ};
use crate::error::{Error, Result};
use hdf5_pure::{AttrValue, Dataset};

/// A matrix that may hold the counts, and the dataframe naming its genes.
pub(super) struct Candidate {
    pub(super) path: &'static str,
    pub(super) var: &'static str,
}

/// How a matrix is stored.
pub(super) enum Layout {
    Dense(Dataset),
    /// `csr`: rows (cells) are the compressed axis; otherwise CSC.
    Sparse {
        csr: bool,
    },
}

/// A matrix read whole, with its gene ids and names.
struct Read {
    matrix: CountMatrix,
    gene_ids: Vec<String>,
    gene_names: Vec<String>,
}

pub(super) fn read(h: &H5, opts: &ReadOptions) -> Result<CountMatrix> {
    if matches!(h.node("X")?, Node::Missing) {
        let hint = if matches!(h.node("matrix")?, Node::Group(_)) {
            "it looks like a 10x Cell Ranger .h5 file: name it .h5"
        } else {
            "write it with anndata's write_h5ad, or export the counts as .mtx or .csv"
        };
        return Err(Error::input(
            &h.name,
            format!("has no X: this is not an AnnData .h5ad file; {hint}"),
        ));
    }
    let obs = frame::read(h, "obs")?;
    let n_obs = obs.as_ref().and_then(Frame::len);

    let candidates = candidates(h)?;

    let mut rejected: Vec<(&'static str, Rejection)> = Vec::new();
    let mut chosen = None;
    for c in &candidates {
        match read_candidate(h, c, n_obs, false)? {
            Ok(r) => {
                chosen = Some((c.path, r));
                break;
            }
            Err(rej) => rejected.push((c.path, rej)),
        }
    }
    let mut notes = Vec::new();
    let (source, read) = match chosen {
        Some((path, r)) => {
            if !rejected.is_empty() {
                notes.push(format!(
                    "{}: {}; the raw counts were read from {path}",
                    h.name,
                    summarise(&rejected)
                ));
            }
            (path, r)
        }
        None if opts.allow_non_counts => {
            let r = read_candidate(h, &candidates[0], n_obs, true)?
                .map_err(|r| h.err(r.location, r.problem))?;
            notes.push(format!(
                "{}: {}; X was read as it is because non-count values are allowed (a count \
                 likelihood cannot be trained on it)",
                h.name,
                summarise(&rejected)
            ));
            ("X", r)
        }
        None => {
            let mut missing = Vec::new();
            if !candidates.iter().any(|c| c.path == "layers/counts") {
                missing.push("no layers/counts");
            }
            if !candidates.iter().any(|c| c.path.starts_with("raw")) {
                missing.push("no raw/X");
            }
            let missing = if missing.is_empty() {
                String::new()
            } else {
                format!(" (and there is {})", missing.join(" and "))
            };
            return Err(Error::input(
                &h.name,
                format!(
                    "holds no raw counts: {}{missing}. A count likelihood needs raw counts; \
                     re-export the file with the raw UMI counts in X or layers/counts",
                    summarise(&rejected)
                ),
            ));
        }
    };

    let n_cells = read.matrix.n_cells;
    let (cell_ids, columns, frame_notes) = match obs {
        Some(f) => {
            let ids = f.index.unwrap_or_else(|| numbered(n_cells));
            (ids, f.columns, f.notes)
        }
        None => (numbered(n_cells), Vec::new(), Vec::new()),
    };
    notes.extend(frame_notes);
    let fill = Filled {
        gene_ids: read.gene_ids,
        gene_names: read.gene_names,
        cell_ids,
        obs: ObsTable { columns },
        format: "h5ad",
        source: source.to_string(),
        notes,
    };
    finish(h, read.matrix, fill)
}

/// The matrices that may hold the counts, in the order they are tried: `X`,
/// `layers/counts`, then `raw/X` (or the old `raw.X`).
pub(super) fn candidates(h: &H5) -> Result<Vec<Candidate>> {
    let mut candidates = vec![Candidate {
        path: "X",
        var: "var",
    }];
    if !matches!(h.node("layers/counts")?, Node::Missing) {
        candidates.push(Candidate {
            path: "layers/counts",
            var: "var",
        });
    }
    if !matches!(h.node("raw/X")?, Node::Missing) {
        candidates.push(Candidate {
            path: "raw/X",
            var: "raw/var",
        });
    } else if !matches!(h.node("raw.X")?, Node::Missing) {
        candidates.push(Candidate {
            path: "raw.X",
            var: "raw.var",
        });
    }
    Ok(candidates)
}

/// "X holds negative values (...), raw/X holds non-integer values (...)".
pub(super) fn summarise(rejected: &[(&str, Rejection)]) -> String {
    let parts: Vec<String> = rejected
        .iter()
        .map(|(path, r)| {
            let v = r.value;
            let what = if v.is_nan() {
                "NaN values".to_string()
            } else if v.is_infinite() {
                "infinite values".to_string()
            } else if v < 0.0 {
                format!(
                    "negative values (scaled or centred data; e.g. {v} in {})",
                    r.location
                )
            } else {
                format!(
                    "non-integer values (normalised or log-transformed data; e.g. {v} in {})",
                    r.location
                )
            };
            format!("{path} holds {what}")
        })
        .collect();
    parts.join(", ")
}

/// Cell ids "0", "1", ... for a file without an obs index (as anndata numbers them).
pub(super) fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

/// Reads one candidate matrix with its gene names; `Ok(Err(..))` when a value is not a
/// count (or not finite).
fn read_candidate(
    h: &H5,
    c: &Candidate,
    n_obs: Option<usize>,
    allow_non_counts: bool,
) -> Result<std::result::Result<Read, Rejection>> {
    let (n_rows, n_cols, layout) = layout(h, c.path)?;
    if let Some(n) = n_obs {
        if n != n_rows {
            return Err(h.err(
                format!("/{}", c.path),
                format!("has {n_rows} rows but obs has {n} cells; the file is inconsistent"),
            ));
        }
    }
    let var = frame::read(h, c.var)?;
    let (gene_ids, gene_names) = frame::gene_names(h, var.as_ref(), c.var, n_cols)?;
    let matrix = match layout {
        Layout::Dense(ds) => read_dense(h, &ds, c.path, n_rows, n_cols, allow_non_counts)?,
        Layout::Sparse { csr } => {
            let hint = "the sparse matrix is incomplete";
            let (n_major, n_minor, minor) = if csr {
                (n_rows, n_cols, "genes")
            } else {
                (n_cols, n_rows, "cells")
            };
            let comp = read_compressed(h, c.path, n_major, n_minor, minor, hint, allow_non_counts)?;
            assemble(comp, csr, n_rows, n_cols)
        }
    };
    Ok(matrix.map(|matrix| Read {
        matrix,
        gene_ids,
        gene_names,
    }))
}

/// The shape (cells, genes) and storage of the matrix at `path`.
pub(super) fn layout(h: &H5, path: &str) -> Result<(usize, usize, Layout)> {
    let at = format!("/{path}");
    match h.node(path)? {
        Node::Dataset(ds) => {
            let shape = ds.shape().map_err(|e| h.fail(path, e))?;
            let (r, c) = match shape.as_slice() {
                [r, c] => (*r, *c),
                _ => {
                    return Err(h.err(
                        at,
                        format!(
                        "has shape {shape:?}; a two-dimensional cells x genes matrix was expected"
                    ),
                    ))
                }
            };
            let max = h.max_dimension;
            if r > max || c > max || (r as u128) * (c as u128) > MAX_NNZ as u128 {
                return Err(h.err(
                    at,
                    format!(
                        "is a dense {r} x {c} matrix, larger than cellvae accepts ({max} \
                         rows or columns, {MAX_NNZ} values); store it sparse (CSR)"
                    ),
                ));
            }
            Ok((r as usize, c as usize, Layout::Dense(ds)))
        }
        Node::Group(g) => {
            let attrs = g.attrs().map_err(|e| h.fail(path, e))?;
            let text = |k: &str| attrs.get(k).and_then(AttrValue::as_str).unwrap_or("");
            let csr = match (text("encoding-type"), text("h5sparse_format")) {
                ("csr_matrix", _) | (_, "csr") => true,
                ("csc_matrix", _) | (_, "csc") => false,
                (enc, _) => {
                    return Err(h.err(
                        at,
                        format!(
                            "is a group with encoding-type \"{enc}\"; a dense array or a \
                             csr_matrix/csc_matrix was expected"
                        ),
                    ))
                }
            };
            let shape = attrs
                .get("shape")
                .or_else(|| attrs.get("h5sparse_shape"))
                .and_then(AttrValue::to_i64s)
                .map(|v| v.into_iter().map(i128::from).collect());
            let (r, c) = shape2(h, &format!("attribute shape of /{path}"), shape)?;
            Ok((r, c, Layout::Sparse { csr }))
        }
        Node::Missing => Err(h.err(at, "is missing")),
    }
}
