//! HDF5 inputs, read with the pure-Rust `hdf5-pure` (natively and in wasm32): 10x Cell
//! Ranger `.h5` ([`read_10x_h5`]) and AnnData `.h5ad` ([`read_h5ad`]).
//!
//! Both readers check everything before they trust it: the HDF5 signature (a PNG or a
//! text file renamed `.h5ad` is named as such), the file length against the size its
//! superblock declares (a truncated download), every shape against
//! [`ReadOptions::max_dimension`] (default [`super::MAX_DIMENSION`]), each dataset's size
//! against the file and the decompression limit (`h5/limits.rs`), and
//! [`MAX_NNZ`] before anything is allocated, `indptr` (starts at 0, never decreases, ends at
//! the number of stored values), every index against its axis, and every value through
//! [`check_count`]. Any failure is an [`Error::Input`] naming the file, the HDF5 path and
//! the problem; a half-read matrix never leaves a reader.
//!
//! Stored datatypes are checked before reading: values may be any integer width or
//! `f16`/`f32`/`f64` (half precision widened exactly, `h5/float16.rs`); indices and
//! `indptr` any integer width.
//!
//! AnnData handling (which matrix is used, `obs`/`var` encodings) is in `h5/anndata.rs`
//! and `h5/frame.rs`; the Cell Ranger layout in `h5/tenx.rs`.

mod anndata;
mod compressed;
mod fixed_array;
mod float16;
mod frame;
mod limits;
#[cfg(not(target_arch = "wasm32"))]
mod stream;
mod tenx;

#[cfg(not(target_arch = "wasm32"))]
pub use stream::H5Cells;

use super::{check_count, CountMatrix, InputFile, ReadOptions, MAX_NNZ};
use crate::error::{Error, Result};
use compressed::{assemble, read_compressed};
#[cfg(not(target_arch = "wasm32"))]
use compressed::{check_indices, open_compressed, Compressed};
use hdf5_pure::{DType, Dataset, File, FormatError, Group};

/// Reads a 10x Genomics Cell Ranger `.h5` (v3: group `/matrix` with `data`, `indices`,
/// `indptr`, `shape`, `barcodes`, `features/id`, `features/name`; v2: one group per
/// genome with `genes` and `gene_names`). Cells are the columns of the stored genes x
/// cells CSC matrix, which is the CSR layout of cells x genes. `format` is `10x-h5` and
/// `source` the group read (`matrix` for v3).
pub fn read_10x_h5(file: &InputFile, opts: &ReadOptions) -> Result<CountMatrix> {
    let h = H5::open(file, opts)?;
    tenx::read(&h, opts)
}

/// Reads an AnnData `.h5ad` (current encoding and the old one of anndata < 0.7). `X` may
/// be dense, CSR or CSC. When `X` is not raw counts, `layers/counts` and then `raw/X`
/// (`raw.X`) are tried and the first that holds counts is used (`source` says which, and
/// a note says why `X` was skipped); when none does, the error names each candidate and
/// why it is not counts, unless `opts.allow_non_counts` (then `X` is read as it is).
/// Gene names come from `var` (`raw/var` with `raw/X`), cell ids and metadata from `obs`.
/// `format` is `h5ad`.
pub fn read_h5ad(file: &InputFile, opts: &ReadOptions) -> Result<CountMatrix> {
    let h = H5::open(file, opts)?;
    anndata::read(&h, opts)
}

/// An open HDF5 file with the name used in every error message.
struct H5 {
    name: String,
    file: File,
    /// The most rows or columns a shape may claim ([`ReadOptions::dimension_limit`]).
    max_dimension: u64,
    /// The file's length (decompressed), which bounds what its datasets can hold.
    file_len: u64,
    /// The most bytes one dataset may expand to ([`ReadOptions::expanded_limit`]).
    max_expanded: u64,
}

/// An [`InputFile`]'s bytes as an `hdf5-pure` [`hdf5_pure::Source`]: read in place,
/// shared with the input (`hdf5-pure`'s in-memory reader would own a copy).
struct SharedBytes(std::sync::Arc<Vec<u8>>);

impl hdf5_pure::Source for SharedBytes {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::result::Result<(), FormatError> {
        let past_end = || FormatError::UnexpectedEof {
            expected: usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .saturating_add(buf.len()),
            available: self.0.len(),
        };
        let start = usize::try_from(offset).map_err(|_| past_end())?;
        let end = start.checked_add(buf.len()).ok_or_else(past_end)?;
        let from = self.0.get(start..end).ok_or_else(past_end)?;
        buf.copy_from_slice(from);
        Ok(())
    }
}

/// What a path inside the file leads to.
enum Node {
    Group(Group),
    Dataset(Dataset),
    Missing,
}

impl H5 {
    /// Checks the signature and the length, then opens the file (gunzipping it first
    /// when the whole file is gzip-compressed). A file that is not gzip is read in place
    /// ([`SharedBytes`]): in a browser tab a second copy of a 400 MB file is what pushed
    /// loading past 2 GB.
    fn open(input: &InputFile, opts: &ReadOptions) -> Result<H5> {
        let bytes = input.decompressed_within(opts.expanded_limit())?;
        if !hdf5_pure::is_hdf5_bytes(&bytes) {
            return Err(Error::input(
                &input.name,
                format!(
                    "is not an HDF5 file ({}); export the data as .h5ad, .h5, .mtx or .csv",
                    describe_bytes(&bytes)
                ),
            ));
        }
        let len = bytes.len() as u64;
        let damaged = |e: hdf5_pure::Error| {
            Error::input(
                &input.name,
                format!("is a damaged HDF5 file ({e}); download or copy it again"),
            )
        };
        let file = match input.shared() {
            Some(shared) => {
                let file = File::from_source(SharedBytes(shared)).map_err(damaged)?;
                let sb = file.superblock();
                fixed_array::refuse_overflowing_header_in_bytes(
                    &input.name,
                    &bytes,
                    sb.offset_size,
                    sb.length_size,
                )?;
                file
            }
            None => {
                let file = File::from_bytes(bytes.into_owned()).map_err(damaged)?;
                fixed_array::refuse_overflowing_header(&input.name, &file)?;
                file
            }
        };
        let sb = file.superblock();
        let declared = sb.base_address.get().saturating_add(sb.eof_address);
        if declared > len {
            return Err(Error::input(
                &input.name,
                format!(
                    "is truncated: its HDF5 header says it is {declared} bytes long but it has \
                     only {len}; download or copy the file again"
                ),
            ));
        }
        Ok(H5 {
            name: input.name.clone(),
            file,
            max_dimension: opts.dimension_limit(),
            file_len: len,
            max_expanded: opts.expanded_limit(),
        })
    }

    /// An error at an HDF5 path (or a finer location).
    fn err(&self, location: impl std::fmt::Display, problem: impl std::fmt::Display) -> Error {
        Error::input_at(&self.name, location, problem)
    }

    /// An `hdf5-pure` failure while reading `path`.
    fn fail(&self, path: &str, e: hdf5_pure::Error) -> Error {
        self.err(
            format!("/{path}"),
            format!("cannot be read ({e}); the file may be damaged: download or copy it again"),
        )
    }

    /// What `path` (from the root, no leading `/`) leads to.
    fn node(&self, path: &str) -> Result<Node> {
        match self.file.group(path) {
            Ok(g) => Ok(Node::Group(g)),
            Err(hdf5_pure::Error::NotAGroup(p)) if p.trim_matches('/') == path => {
                match self.file.dataset(path) {
                    Ok(d) => Ok(Node::Dataset(d)),
                    Err(hdf5_pure::Error::NotADataset(_)) => Ok(Node::Missing),
                    Err(e) => Err(self.fail(path, e)),
                }
            }
            Err(hdf5_pure::Error::NotAGroup(_))
            | Err(hdf5_pure::Error::Format(FormatError::PathNotFound(_))) => Ok(Node::Missing),
            Err(e) => Err(self.fail(path, e)),
        }
    }

    /// The dataset at `path`, if there is one.
    fn dataset(&self, path: &str) -> Result<Option<Dataset>> {
        Ok(match self.node(path)? {
            Node::Dataset(d) => Some(d),
            _ => None,
        })
    }

    /// The dataset at `path`, which must exist (`hint` says what the file then is not).
    fn require(&self, path: &str, hint: &str) -> Result<Dataset> {
        self.dataset(path)?
            .ok_or_else(|| self.err(format!("/{path}"), format!("dataset is missing; {hint}")))
    }

    /// Number of elements of a one-dimensional dataset, refusing absurd lengths.
    fn len_1d(&self, ds: &Dataset, path: &str) -> Result<usize> {
        let shape = ds.shape().map_err(|e| self.fail(path, e))?;
        match shape.as_slice() {
            [n] if *n <= MAX_NNZ => Ok(*n as usize),
            [n] => Err(self.err(
                format!("dataset /{path}"),
                format!("has {n} entries, more than the {MAX_NNZ} cellvae accepts"),
            )),
            _ => Err(self.err(
                format!("dataset /{path}"),
                format!("has shape {shape:?}; a one-dimensional array was expected"),
            )),
        }
    }

    /// A string dataset of exactly `n` entries (numbers are formatted as text).
    fn strings_n(&self, path: &str, n: usize, hint: &str) -> Result<Vec<String>> {
        let ds = self.require(path, hint)?;
        let v = self.strings(&ds, path)?;
        if v.len() != n {
            return Err(self.err(
                format!("dataset /{path}"),
                format!(
                    "has {} entries but the matrix has {n} along that axis",
                    v.len()
                ),
            ));
        }
        Ok(v)
    }

    /// Reads a dataset as text: strings as they are, numbers formatted.
    fn strings(&self, ds: &Dataset, path: &str) -> Result<Vec<String>> {
        self.check_size(ds, path)?;
        let dtype = ds.dtype().map_err(|e| self.fail(path, e))?;
        match dtype {
            DType::String | DType::VariableLengthString => {
                ds.read_string().map_err(|e| self.fail(path, e))
            }
            _ => {
                let v = self.values(ds, path, None)?;
                Ok((0..v.len()).map(|i| format_number(v.get(i))).collect())
            }
        }
    }

    /// Reads a numeric dataset (or the rows `start..start + count` of it) in a type
    /// wide enough for its stored datatype.
    fn values(&self, ds: &Dataset, path: &str, rows: Option<(u64, u64)>) -> Result<Values> {
        macro_rules! read {
            ($all:ident, $win:ident) => {
                match rows {
                    None => ds.$all(),
                    Some((s, n)) => ds.$win(s, n),
                }
                .map_err(|e| self.fail(path, e))?
            };
        }
        if rows.is_none() {
            self.check_size(ds, path)?;
        }
        let dtype = ds.dtype().map_err(|e| self.fail(path, e))?;
        Ok(match dtype {
            DType::F32 => Values::F32(read!(read_f32, read_f32_rows)),
            DType::F64 => Values::F64(read!(read_f64, read_f64_rows)),
            DType::I8 | DType::I16 | DType::I32 | DType::U8 | DType::U16 | DType::Enum(_) => {
                Values::I32(read!(read_i32, read_i32_rows))
            }
            DType::I64 | DType::U32 => Values::I64(read!(read_i64, read_i64_rows)),
            DType::U64 => Values::U64(read!(read_u64, read_u64_rows)),
            DType::Other(dt) if float16::binary16_order(&dt).is_some() => {
                let big_endian = float16::binary16_order(&dt) == Some(true);
                Values::F32(float16::decode(&read!(read_raw, read_raw_rows), big_endian))
            }
            other => {
                return Err(self.err(
                    format!("dataset /{path}"),
                    format!("holds {other} values where numbers were expected"),
                ))
            }
        })
    }
}

/// Names what some bytes that are not HDF5 look like, for the error message.
fn describe_bytes(b: &[u8]) -> String {
    let kind = if b.is_empty() {
        return "the file is empty".into();
    } else if b.starts_with(b"\x89PNG") {
        "a PNG image"
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        "a JPEG image"
    } else if b.starts_with(b"%PDF") {
        "a PDF document"
    } else if b.starts_with(b"PK\x03\x04") {
        "a ZIP archive (a zipped .zarr store or a spreadsheet?)"
    } else if b.starts_with(b"%%MatrixMarket") {
        "a Matrix Market file; name it .mtx"
    } else if b.starts_with(b"\x1f\x8b") {
        "a gzip stream inside a gzip stream"
    } else {
        let head = &b[..b.len().min(60)];
        if head
            .iter()
            .all(|&c| c == b'\t' || c == b'\n' || c == b'\r' || (0x20..0x7f).contains(&c))
        {
            let text: String = String::from_utf8_lossy(head)
                .chars()
                .take_while(|&c| c != '\n' && c != '\r')
                .collect();
            return format!("it holds text, starting with \"{text}\"");
        }
        let hex: Vec<String> = b.iter().take(8).map(|x| format!("{x:02x}")).collect();
        return format!("it starts with the bytes {}", hex.join(" "));
    };
    format!("it starts with the bytes of {kind}")
}

/// Formats a number read as text: integers without a decimal point.
fn format_number(v: f64) -> String {
    format!("{v}")
}

/// A numeric array as stored, in a type wide enough for its datatype.
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
}

/// A value that is not a count (or not finite), where it is and why.
struct Rejection {
    /// Where: dataset, element, cell and gene.
    location: String,
    /// The value found.
    value: f64,
    /// [`check_count`]'s sentence.
    problem: String,
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
            Values::I32(v) => v.len(),
            Values::I64(v) => v.len(),
            Values::U64(v) => v.len(),
        }
    }

    /// Element `i` as f64 (NaN past the end).
    fn get(&self, i: usize) -> f64 {
        let v = match self {
            Values::F32(v) => v.get(i).map(|&x| x as f64),
            Values::F64(v) => v.get(i).copied(),
            Values::I32(v) => v.get(i).map(|&x| x as f64),
            Values::I64(v) => v.get(i).map(|&x| x as f64),
            Values::U64(v) => v.get(i).map(|&x| x as f64),
        };
        v.unwrap_or(f64::NAN)
    }

    /// Element `i` as an integer, `None` for floating-point storage.
    fn int(&self, i: usize) -> Option<i128> {
        match self {
            Values::F32(_) | Values::F64(_) => None,
            Values::I32(v) => v.get(i).map(|&x| x as i128),
            Values::I64(v) => v.get(i).map(|&x| x as i128),
            Values::U64(v) => v.get(i).map(|&x| x as i128),
        }
    }

    fn is_float(&self) -> bool {
        matches!(self, Values::F32(_) | Values::F64(_))
    }

    /// The first element failing [`check_count`]: its position, value and problem.
    fn first_problem(&self, allow_non_counts: bool) -> Option<(usize, f64, String)> {
        fn scan<T: Copy>(
            v: &[T],
            f: impl Fn(T) -> f64,
            allow: bool,
        ) -> Option<(usize, f64, String)> {
            v.iter().enumerate().find_map(|(i, &x)| {
                let x = f(x);
                check_count(x, allow).err().map(|p| (i, x, p))
            })
        }
        match self {
            Values::F32(v) => {
                let (i, x, p) = scan(v, |x| x as f64, allow_non_counts)?;
                // Report an f32 as it was written (0.326, not 0.32600000500679016).
                let shown = v
                    .get(i)
                    .and_then(|s| s.to_string().parse::<f64>().ok())
                    .unwrap_or(x);
                match check_count(shown, allow_non_counts) {
                    Err(q) => Some((i, shown, q)),
                    Ok(()) => Some((i, x, p)),
                }
            }
            Values::F64(v) => scan(v, |x| x, allow_non_counts),
            Values::I32(v) if !allow_non_counts => scan(v, |x| x as f64, false),
            Values::I64(v) if !allow_non_counts => scan(v, |x| x as f64, false),
            _ => None,
        }
    }

    /// Appends the values as f32 to `out` (counts are exact up to 2^24).
    fn append_f32(self, out: &mut Vec<f32>) {
        match self {
            Values::F32(v) => out.extend_from_slice(&v),
            Values::F64(v) => out.extend(v.into_iter().map(|x| x as f32)),
            Values::I32(v) => out.extend(v.into_iter().map(|x| x as f32)),
            Values::I64(v) => out.extend(v.into_iter().map(|x| x as f32)),
            Values::U64(v) => out.extend(v.into_iter().map(|x| x as f32)),
        }
    }
}

/// Reads a dense cells x genes dataset a window of rows at a time into the CSR core.
fn read_dense(
    h: &H5,
    ds: &Dataset,
    path: &str,
    n_cells: usize,
    n_genes: usize,
    allow_non_counts: bool,
) -> Result<std::result::Result<CountMatrix, Rejection>> {
    h.check_size(ds, path)?;
    let rows_per_window = (4_000_000 / n_genes.max(1)).max(1);
    let mut m = CountMatrix {
        n_cells,
        n_genes,
        indptr: Vec::with_capacity(n_cells + 1),
        ..Default::default()
    };
    m.indptr.push(0);
    let mut start = 0;
    while start < n_cells {
        let count = rows_per_window.min(n_cells - start);
        if let Some(r) = dense_rows(h, ds, path, start, count, allow_non_counts, &mut m)? {
            return Ok(Err(r));
        }
        start += count;
    }
    Ok(Ok(m))
}

/// Appends the rows `start..start + count` of a dense cells x `m.n_genes` dataset to the
/// CSR arrays of `m` (whose `indptr` holds at least its leading 0); a value that is not a
/// count is returned as a [`Rejection`].
fn dense_rows(
    h: &H5,
    ds: &Dataset,
    path: &str,
    start: usize,
    count: usize,
    allow_non_counts: bool,
    m: &mut CountMatrix,
) -> Result<Option<Rejection>> {
    let n_genes = m.n_genes;
    let v = h.values(ds, path, Some((start as u64, count as u64)))?;
    if v.len() != count * n_genes {
        return Err(h.err(
            format!("dataset /{path}"),
            "could not be read whole; the file may be truncated",
        ));
    }
    if let Some((k, value, problem)) = v.first_problem(allow_non_counts) {
        let (cell, gene) = (start + k / n_genes.max(1), k % n_genes.max(1));
        return Ok(Some(Rejection {
            location: format!(
                "dataset /{path}, element {} (cell {cell}, gene {gene})",
                start * n_genes + k
            ),
            value,
            problem,
        }));
    }
    for r in 0..count {
        for g in 0..n_genes {
            let x = v.get(r * n_genes + g);
            if x != 0.0 {
                m.indices.push(g as u32);
                m.data.push(x as f32);
            }
        }
        m.indptr.push(m.indices.len());
    }
    Ok(None)
}

/// Fills names and metadata into a CSR core and checks the result.
fn finish(h: &H5, mut m: CountMatrix, fill: Filled) -> Result<CountMatrix> {
    m.gene_ids = fill.gene_ids;
    m.gene_names = fill.gene_names;
    m.cell_ids = fill.cell_ids;
    m.obs = fill.obs;
    m.format = fill.format.into();
    m.source = fill.source;
    m.notes = fill.notes;
    m.make_gene_names_unique(&h.name);
    m.validate().map_err(|e| {
        Error::input(
            &h.name,
            format!("internal error after reading ({e}); please report this"),
        )
    })?;
    Ok(m)
}

/// Everything besides the matrix itself.
struct Filled {
    gene_ids: Vec<String>,
    gene_names: Vec<String>,
    cell_ids: Vec<String>,
    obs: super::ObsTable,
    format: &'static str,
    source: String,
    notes: Vec<String>,
}

/// Reads a shape dataset or attribute value into (rows, columns), refusing absurd sizes.
fn shape2(h: &H5, location: &str, v: Option<Vec<i128>>) -> Result<(usize, usize)> {
    let max = h.max_dimension;
    match v.as_deref() {
        Some(&[a, b]) if (0..=max as i128).contains(&a) && (0..=max as i128).contains(&b) => {
            Ok((a as usize, b as usize))
        }
        Some(&[a, b]) => Err(h.err(
            location,
            format!("the shape {a} x {b} is negative or larger than the {max} rows or columns cellvae accepts"),
        )),
        _ => Err(h.err(location, "the shape must be two non-negative integers")),
    }
}
