//! Compressed sparse matrices (`data`, `indices`, `indptr`) as HDF5 stores them: opened
//! and checked ([`open_compressed`], [`read_indptr`], [`check_indices`]), read a window of
//! stored elements at a time into their final arrays ([`read_compressed`]), and turned
//! into the CSR core of a [`CountMatrix`] ([`assemble`]).

use super::{Rejection, Values, H5};
use crate::data::CountMatrix;
use crate::error::Result;
use hdf5_pure::Dataset;

/// A compressed sparse matrix as stored (`indptr` over the major axis), checked.
pub(super) struct Compressed {
    pub(super) indptr: Vec<usize>,
    pub(super) indices: Vec<u32>,
    /// The stored values as f32.
    pub(super) values: Vec<f32>,
    /// The first stored value that is not a count: its element, the value and why.
    pub(super) problem: Option<(usize, f64, String)>,
    /// HDF5 path of the values, for messages.
    pub(super) data_path: String,
}

/// Stored elements read at once by [`read_compressed`]: the datasets are read a window
/// at a time into the final arrays, so no whole dataset is held in its stored type as
/// well (a 10x file's 64-bit indices are twice the size they end up as).
pub(super) const WINDOW_ELEMENTS: usize = 1 << 22;

/// Reads and checks `group/{data,indices,indptr}` for `n_major` rows of `n_minor` columns
/// (`minor_name` names the minor axis in messages: "genes" or "cells"). A value that is
/// not a count (`allow_non_counts` false) is kept in [`Compressed::problem`] for
/// [`assemble`] to turn into a [`Rejection`].
pub(super) fn read_compressed(
    h: &H5,
    group: &str,
    n_major: usize,
    n_minor: usize,
    minor_name: &str,
    hint: &str,
    allow_non_counts: bool,
) -> Result<Compressed> {
    read_compressed_in_windows(
        h,
        (group, hint),
        (n_major, n_minor, minor_name),
        allow_non_counts,
        WINDOW_ELEMENTS,
    )
}

/// [`read_compressed`], `window` stored elements at a time.
pub(super) fn read_compressed_in_windows(
    h: &H5,
    (group, hint): (&str, &str),
    (n_major, n_minor, minor_name): (usize, usize, &str),
    allow_non_counts: bool,
    window: usize,
) -> Result<Compressed> {
    let CompressedGroup {
        data,
        indices,
        indptr: ptr,
        nnz,
    } = open_compressed(h, group, n_major, hint)?;
    let (dp, ip) = (format!("{group}/data"), format!("{group}/indices"));
    h.check_size(&indices, &ip)?;
    h.check_size(&data, &dp)?;
    let room = |what: &str| {
        h.err(
            format!("group /{group}"),
            format!(
                "needs memory for {nnz} {what} that cannot be had here; use the command \
                 line (cellvae), or keep fewer cells or genes"
            ),
        )
    };
    let mut idx: Vec<u32> = Vec::new();
    idx.try_reserve_exact(nnz).map_err(|_| room("indices"))?;
    let mut values: Vec<f32> = Vec::new();
    values.try_reserve_exact(nnz).map_err(|_| room("values"))?;
    let mut problem = None;
    let mut first = 0;
    while first < nnz {
        let n = window.max(1).min(nnz - first);
        let rows = Some((first as u64, n as u64));
        let raw_idx = h.values(&indices, &ip, rows)?;
        check_indices(h, raw_idx, &ip, first, n_minor, minor_name, &mut idx)?;
        let v = h.values(&data, &dp, rows)?;
        if idx.len() != first + n || v.len() != n {
            return Err(h.err(
                format!("group /{group}"),
                "data or indices could not be read whole",
            ));
        }
        if problem.is_none() {
            problem = v
                .first_problem(allow_non_counts)
                .map(|(k, x, why)| (first + k, x, why));
        }
        v.append_f32(&mut values);
        first += n;
    }
    Ok(Compressed {
        indptr: ptr,
        indices: idx,
        values,
        problem,
        data_path: dp,
    })
}

/// The datasets of a compressed group, with its whole checked `indptr`.
pub(super) struct CompressedGroup {
    pub(super) data: Dataset,
    pub(super) indices: Dataset,
    pub(super) indptr: Vec<usize>,
    pub(super) nnz: usize,
}

/// Opens `group/{data,indices,indptr}` for `n_major` rows: data and indices of one
/// length, `indptr` read and checked ([`read_indptr`]); data and indices not yet read.
pub(super) fn open_compressed(
    h: &H5,
    group: &str,
    n_major: usize,
    hint: &str,
) -> Result<CompressedGroup> {
    let (dp, ip, pp) = (
        format!("{group}/data"),
        format!("{group}/indices"),
        format!("{group}/indptr"),
    );
    let (data, indices, indptr) = (
        h.require(&dp, hint)?,
        h.require(&ip, hint)?,
        h.require(&pp, hint)?,
    );
    let nnz = h.len_1d(&data, &dp)?;
    let n_idx = h.len_1d(&indices, &ip)?;
    let n_ptr = h.len_1d(&indptr, &pp)?;
    if n_idx != nnz {
        return Err(h.err(
            format!("group /{group}"),
            format!("has {nnz} values in data but {n_idx} in indices; they must match"),
        ));
    }
    if n_ptr != n_major + 1 {
        return Err(h.err(
            format!("dataset /{pp}"),
            format!(
                "has {n_ptr} entries but the matrix shape needs {} (one more than its {n_major} rows)",
                n_major + 1
            ),
        ));
    }
    let indptr = read_indptr(h, &indptr, &pp, nnz)?;
    Ok(CompressedGroup {
        data,
        indices,
        indptr,
        nnz,
    })
}

/// Reads `indptr` and checks it: integers, starting at 0, never decreasing, ending at
/// the `nnz` stored values.
pub(super) fn read_indptr(h: &H5, indptr: &Dataset, pp: &str, nnz: usize) -> Result<Vec<usize>> {
    let raw_ptr = h.values(indptr, pp, None)?;
    let mut ptr = Vec::with_capacity(raw_ptr.len());
    for i in 0..raw_ptr.len() {
        let p = raw_ptr.int(i).ok_or_else(|| {
            h.err(
                format!("dataset /{pp}"),
                "holds floating-point values; indptr must be integers",
            )
        })?;
        let prev = ptr.last().copied().unwrap_or(0) as i128;
        if (i == 0 && p != 0) || p < prev || p > nnz as i128 {
            let why = if i == 0 {
                format!("is {p} but indptr must start at 0")
            } else if p < prev {
                format!(
                    "is {p}, smaller than the entry before it ({prev}): indptr must never decrease"
                )
            } else {
                format!("is {p}, past the {nnz} stored values")
            };
            return Err(h.err(format!("dataset /{pp}, element {i}"), why));
        }
        ptr.push(p as usize);
    }
    if ptr.last().copied() != Some(nnz) {
        return Err(h.err(
            format!("dataset /{pp}"),
            format!(
                "ends at {} but there are {nnz} stored values; the matrix is truncated or damaged",
                ptr.last().copied().unwrap_or(0)
            ),
        ));
    }
    Ok(ptr)
}

/// Checks stored indices (element `first` onwards of the dataset at `ip`): integers,
/// each within the `n_minor` columns; appends them to `idx`.
pub(super) fn check_indices(
    h: &H5,
    raw_idx: Values,
    ip: &str,
    first: usize,
    n_minor: usize,
    minor_name: &str,
    idx: &mut Vec<u32>,
) -> Result<()> {
    if raw_idx.is_float() {
        return Err(h.err(
            format!("dataset /{ip}"),
            "holds floating-point values; indices must be integers",
        ));
    }
    for i in 0..raw_idx.len() {
        match raw_idx.int(i) {
            Some(j) if j >= 0 && (j as u128) < n_minor as u128 => idx.push(j as u32),
            j => {
                return Err(h.err(
                    format!("dataset /{ip}, element {}", first + i),
                    format!(
                        "index {} is out of range: there are {n_minor} {minor_name}",
                        j.unwrap_or(-1)
                    ),
                ))
            }
        }
    }
    Ok(())
}

/// Turns a checked compressed matrix into the CSR core of a [`CountMatrix`] (names still
/// empty). `cells_major`: rows of the stored matrix are cells (CSR of cells x genes).
/// The first value that failed [`check_count`] while reading ([`Compressed::problem`])
/// is returned as a [`Rejection`] so the caller can try another matrix.
pub(super) fn assemble(
    c: Compressed,
    cells_major: bool,
    n_cells: usize,
    n_genes: usize,
) -> std::result::Result<CountMatrix, Rejection> {
    if let Some((k, value, problem)) = c.problem {
        let major = c.indptr.partition_point(|&p| p <= k).saturating_sub(1);
        let minor = c.indices.get(k).copied().unwrap_or(0) as usize;
        let (cell, gene) = if cells_major {
            (major, minor)
        } else {
            (minor, major)
        };
        return Err(Rejection {
            location: format!(
                "dataset /{}, element {k} (cell {cell}, gene {gene})",
                c.data_path
            ),
            value,
            problem,
        });
    }
    let data = c.values;
    let n_major = c.indptr.len().saturating_sub(1);
    let row = |r: usize| -> &[u32] {
        match (c.indptr.get(r), c.indptr.get(r + 1)) {
            (Some(&a), Some(&b)) => c.indices.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    };
    if cells_major && (0..n_major).all(|r| row(r).windows(2).all(|w| w[0] < w[1])) {
        let mut m = CountMatrix {
            n_cells,
            n_genes,
            indptr: c.indptr,
            indices: c.indices,
            data,
            ..Default::default()
        };
        m.drop_explicit_zeros();
        return Ok(m);
    }
    // Unsorted or duplicated indices, or genes as the major axis: go through triplets.
    let mut triplets = Vec::with_capacity(data.len());
    for r in 0..n_major {
        let (a, b) = (
            c.indptr.get(r).copied().unwrap_or(0),
            c.indptr.get(r + 1).copied().unwrap_or(0),
        );
        for k in a..b {
            let (minor, v) = (
                c.indices.get(k).copied().unwrap_or(0),
                data.get(k).copied().unwrap_or(0.0),
            );
            triplets.push(if cells_major {
                (r as u32, minor, v)
            } else {
                (minor, r as u32, v)
            });
        }
    }
    Ok(CountMatrix::from_triplets(n_cells, n_genes, triplets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{InputFile, ReadOptions};
    use hdf5_pure::FileBuilder;

    /// A group `m` of a 4 x 5 CSR matrix with 9 stored values, `bad` (if any) at
    /// element 7.
    fn csr_file(bad: Option<f32>) -> H5 {
        let mut data = [1.0f32, 2.0, 3.0, 1.0, 5.0, 1.0, 2.0, 7.0, 1.0];
        if let Some(b) = bad {
            data[7] = b;
        }
        let indices: [i64; 9] = [0, 3, 1, 2, 4, 0, 1, 3, 4];
        let indptr: [i64; 5] = [0, 2, 5, 8, 9];
        let mut fb = FileBuilder::new();
        let mut g = fb.create_group("m");
        g.create_dataset("data").with_f32_data(&data);
        g.create_dataset("indices").with_i64_data(&indices);
        g.create_dataset("indptr").with_i64_data(&indptr);
        fb.add_group(g.finish());
        let bytes = fb.finish().expect("an HDF5 file in memory");
        H5::open(&InputFile::new("m.h5", bytes), &ReadOptions::default()).expect("it opens")
    }

    fn read(h: &H5, window: usize) -> Compressed {
        read_compressed_in_windows(h, ("m", "hint"), (4, 5, "genes"), false, window)
            .expect("it reads")
    }

    #[test]
    fn windows_of_any_size_read_the_same_matrix() {
        let h = csr_file(None);
        let whole = read(&h, WINDOW_ELEMENTS);
        assert_eq!(whole.indices, [0, 3, 1, 2, 4, 0, 1, 3, 4]);
        assert_eq!(whole.values[7], 7.0);
        assert_eq!(whole.indptr, [0, 2, 5, 8, 9]);
        for window in [1, 2, 4, 8, 9] {
            let w = read(&h, window);
            assert_eq!(w.indices, whole.indices, "window {window}");
            assert_eq!(w.values, whole.values, "window {window}");
            assert!(w.problem.is_none(), "window {window}");
        }
    }

    #[test]
    fn a_value_that_is_not_a_count_is_found_at_its_element_in_a_later_window() {
        let h = csr_file(Some(2.5));
        for window in [2, 3, 9] {
            let (k, x, _) = read(&h, window).problem.expect("2.5 is not a count");
            assert_eq!((k, x), (7, 2.5), "window {window}");
        }
        let r = match assemble(read(&h, 3), true, 4, 5) {
            Err(r) => r,
            Ok(_) => panic!("2.5 is refused"),
        };
        assert!(
            r.location.contains("element 7 (cell 2, gene 3)"),
            "{}",
            r.location
        );
    }
}
