//! Matrix Market (`.mtx`, `.mtx.gz`) and 10x Genomics triplets (`matrix.mtx` +
//! `features.tsv` / `genes.tsv` + `barcodes.tsv`, each optionally gzipped).
//!
//! 10x stores genes as rows and cells as columns (1-based); the reader turns that into
//! the crate's CSR cells x genes. Accepted: `coordinate` matrices, field `integer`,
//! `real`/`double` or `pattern` (every stored entry is 1), symmetry `general`.
//!
//! Orientation: with [`Orientation::Auto`] rows are genes (10x) unless the features and
//! barcodes files only fit the transposed matrix (rows = cells, as `scipy.io.mmwrite` of
//! an AnnData `X` gives); [`Orientation::CellsAsRows`] / [`Orientation::CellsAsColumns`]
//! force it. The header's sizes are checked against [`super::MAX_DIMENSION`] (or
//! [`ReadOptions::max_dimension`]) and [`MAX_NNZ`]
//! before anything is allocated, and allocations are bounded by the file's size.

use super::text::{
    byte_lines, check_not_utf16, detect_delimiter, duplicates, line_str, parse_index, parse_number,
    show, show_bytes, split_fields, text_lines,
};
use super::{check_count, CountMatrix, InputFile, Orientation, ReadOptions, MAX_NNZ};
use crate::error::{Error, Result};

#[cfg(not(target_arch = "wasm32"))]
mod stream;
#[cfg(not(target_arch = "wasm32"))]
pub use stream::MtxCells;

/// Genes as listed in a features / genes file.
struct FeatureList {
    ids: Vec<String>,
    names: Vec<String>,
    /// Third column (`Gene Expression`, `Antibody Capture`, ...) when present.
    types: Option<Vec<String>>,
}

/// The most cells (or genes) a matrix without a barcodes (features) file may declare
/// beyond one per byte of the file: their names are made here, so a three-line file must
/// not ask for 50 million of them.
pub const MAX_UNNAMED: u64 = 1_000_000;

/// Reads a Matrix Market file, with the 10x features and barcodes files when given.
///
/// Without a features file genes are named `gene_1`, `gene_2`, ...; without barcodes
/// cells are named `cell_1`, ...; both are reported in `notes`. When the features file
/// has a type column mixing `Gene Expression` with other features (antibodies, CRISPR
/// guides), only the gene expression features are kept (as scanpy's `read_10x_mtx`
/// does) and that is noted. Duplicated gene names are made unique (`A`, `A-1`).
/// The format is `10x-mtx` when both names files are given, else `mtx`. Without a
/// names file an axis may not be longer than [`MAX_UNNAMED`] or the file's size in bytes.
pub fn read_mtx(
    matrix: &InputFile,
    features: Option<&InputFile>,
    barcodes: Option<&InputFile>,
    opts: &ReadOptions,
) -> Result<CountMatrix> {
    let name = matrix.name.as_str();
    let bytes = matrix.decompressed_within(opts.expanded_limit())?;
    let mut lines = byte_lines(&bytes);
    let layout = read_layout(name, &bytes, &mut lines, features, barcodes, opts)?;
    let triplets = parse_entries(name, &mut lines, &layout, opts)?;
    let names = layout.names(name, features, barcodes, bytes.len() as u64)?;
    let mut m = CountMatrix::from_triplets(layout.n_cells, layout.n_genes, triplets);
    names.apply(&mut m, features);
    finish(m, name, features, barcodes)
}

/// What the banner, the size line and the side files say, before any entry.
struct Layout {
    /// Field `pattern`: no values, every entry is 1.
    pattern: bool,
    /// The line number of the size line.
    size_line: usize,
    /// Rows, columns and entries as the size line gives them.
    rows: u64,
    cols: u64,
    nnz: u64,
    cells_as_rows: bool,
    n_cells: usize,
    n_genes: usize,
    gene_list: Option<FeatureList>,
    cell_list: Option<Vec<String>>,
    notes: Vec<String>,
}

/// Genes and cells named, with the notes and the format, for every matrix of a file.
struct Names {
    gene_ids: Vec<String>,
    gene_names: Vec<String>,
    types: Option<Vec<String>>,
    cell_ids: Vec<String>,
    notes: Vec<String>,
    format: &'static str,
}

impl Names {
    /// Names `m` (all of the file's cells) and keeps only its gene expression features.
    fn apply(self, m: &mut CountMatrix, features: Option<&InputFile>) {
        m.gene_ids = self.gene_ids;
        m.gene_names = self.gene_names;
        m.cell_ids = self.cell_ids;
        m.notes = self.notes;
        m.format = self.format.to_string();
        if let (Some(types), Some(f)) = (self.types, features) {
            *m = keep_gene_expression(std::mem::take(m), &types, &f.name);
        }
    }
}

/// Reads the banner and the size line from `lines` (the start of `bytes`) and checks
/// them with the features and barcodes files: sizes, orientation, header lines.
fn read_layout(
    name: &str,
    bytes: &[u8],
    lines: &mut super::text::ByteLines<'_>,
    features: Option<&InputFile>,
    barcodes: Option<&InputFile>,
    opts: &ReadOptions,
) -> Result<Layout> {
    check_not_utf16(name, bytes)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::input(
            name,
            "the file is empty; a Matrix Market file starts with a %%MatrixMarket line",
        ));
    }
    let pattern = parse_banner(name, lines.next())?;
    let (size_line, rows, cols, nnz) = parse_size(name, lines, opts.dimension_limit())?;

    let mut notes = Vec::new();
    let mut gene_list = features.map(read_features).transpose()?;
    if let (Some(list), Some(f)) = (gene_list.as_mut(), features) {
        if drop_header_line(&mut list.ids, rows, cols, GENE_HEADER_WORDS) {
            list.names.remove(0);
            if let Some(t) = list.types.as_mut() {
                t.remove(0);
            }
            notes.push(format!(
                "{}: the first line looks like a header and was skipped",
                f.name
            ));
        }
    }
    let mut cell_list = barcodes.map(read_barcodes).transpose()?;
    if let (Some(list), Some(b)) = (cell_list.as_mut(), barcodes) {
        if drop_header_line(list, rows, cols, CELL_HEADER_WORDS) {
            notes.push(format!(
                "{}: the first line looks like a header and was skipped",
                b.name
            ));
        }
    }

    let n_features = gene_list.as_ref().map(|g| g.ids.len() as u64);
    let n_barcodes = cell_list.as_ref().map(|c| c.len() as u64);
    let cells_as_rows = match opts.orientation {
        Orientation::CellsAsRows => true,
        Orientation::CellsAsColumns => false,
        Orientation::Auto => {
            let fits = |genes: u64, cells: u64| {
                n_features.is_none_or(|n| n == genes) && n_barcodes.is_none_or(|n| n == cells)
            };
            (n_features.is_some() || n_barcodes.is_some()) && !fits(rows, cols) && fits(cols, rows)
        }
    };
    let (n_genes, n_cells, gene_side, cell_side) = if cells_as_rows {
        (cols, rows, "column", "row")
    } else {
        (rows, cols, "row", "column")
    };
    if let (Some(n), Some(f)) = (n_features, features) {
        if n != n_genes {
            return Err(Error::input(
                &f.name,
                format!(
                    "lists {n} genes but {name} has {n_genes} genes (its {gene_side}s); the features / genes \
                     file must list one gene per matrix {gene_side}: use files from the same folder"
                ),
            ));
        }
    }
    if let (Some(n), Some(b)) = (n_barcodes, barcodes) {
        if n != n_cells {
            return Err(Error::input(
                &b.name,
                format!(
                    "lists {n} barcodes but {name} has {n_cells} cells (its {cell_side}s); the barcodes \
                     file must list one cell per matrix {cell_side}: use files from the same folder"
                ),
            ));
        }
    }
    if cells_as_rows {
        notes.push(format!(
            "{name}: read with cells as rows and genes as columns{}",
            if opts.orientation == Orientation::Auto {
                " (the transpose of the 10x layout), because that is how the features and barcodes files fit"
            } else {
                ", as asked"
            }
        ));
    }
    Ok(Layout {
        pattern,
        size_line,
        rows,
        cols,
        nnz,
        cells_as_rows,
        // Both sizes are at most MAX_DIMENSION (checked in parse_size), so they fit usize.
        n_cells: n_cells as usize,
        n_genes: n_genes as usize,
        gene_list,
        cell_list,
        notes,
    })
}

impl Layout {
    /// The genes' and cells' names (from the side files, or made here for a file of
    /// `file_len` bytes: a tiny file must not make 50 million of them).
    fn names(
        &self,
        name: &str,
        features: Option<&InputFile>,
        barcodes: Option<&InputFile>,
        file_len: u64,
    ) -> Result<Names> {
        let (gene_side, cell_side) = if self.cells_as_rows {
            ("column", "row")
        } else {
            ("row", "column")
        };
        let (n_cells, n_genes) = (self.n_cells, self.n_genes);
        for (n, side, what, given) in [
            (n_cells, cell_side, "cells", barcodes.is_some()),
            (n_genes, gene_side, "genes", features.is_some()),
        ] {
            let n = n as u64;
            if !given && n > MAX_UNNAMED && n > file_len {
                let other = if what == "cells" {
                    "barcodes"
                } else {
                    "features"
                };
                return Err(Error::input_at(
                    name,
                    format!("line {}", self.size_line),
                    format!(
                        "the header says {n} {what} (its {side}s), but the file is only {} and no \
                         {other} file names them; without one cellvae accepts at most {MAX_UNNAMED} \
                         {what}, or one per byte of the file; the header is damaged, or give the \
                         {other} file from the same folder",
                        super::human_bytes(file_len),
                    ),
                ));
            }
        }
        let mut notes = self.notes.clone();
        let (gene_ids, gene_names, types) = match &self.gene_list {
            Some(list) => (list.ids.clone(), list.names.clone(), list.types.clone()),
            None => {
                let ids: Vec<String> = (1..=n_genes).map(|g| format!("gene_{g}")).collect();
                notes.push(format!(
                    "{name}: no features / genes file was given, so genes are named gene_1 ... gene_{n_genes}"
                ));
                (ids.clone(), ids, None)
            }
        };
        let cell_ids = match &self.cell_list {
            Some(list) => list.clone(),
            None => {
                notes.push(format!(
                    "{name}: no barcodes file was given, so cells are named cell_1 ... cell_{n_cells}"
                ));
                (1..=n_cells).map(|c| format!("cell_{c}")).collect()
            }
        };
        Ok(Names {
            gene_ids,
            gene_names,
            types,
            cell_ids,
            notes,
            format: if features.is_some() && barcodes.is_some() {
                "10x-mtx"
            } else {
                "mtx"
            },
        })
    }
}

/// Keeps only `Gene Expression` features when the type column mixes them with others
/// (as scanpy's readers do by default); shared with the 10x `.h5` reader.
pub(crate) fn keep_gene_expression(
    m: CountMatrix,
    types: &[String],
    features_name: &str,
) -> CountMatrix {
    const GEX: &str = "Gene Expression";
    let keep: Vec<usize> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| *t == GEX)
        .map(|(g, _)| g)
        .collect();
    if keep.is_empty() || keep.len() == types.len() || types.len() != m.n_genes {
        return m;
    }
    let mut other: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| *t != GEX)
        .collect();
    other.sort_unstable();
    other.dedup();
    let dropped = m.n_genes - keep.len();
    let mut kept = m.select_genes(&keep);
    kept.notes.push(format!(
        "{features_name}: kept the {} Gene Expression features and dropped {dropped} others ({})",
        keep.len(),
        other.join(", ")
    ));
    kept
}

/// Final steps: unique gene names, a note on repeated barcodes, the consistency check.
fn finish(
    mut m: CountMatrix,
    name: &str,
    features: Option<&InputFile>,
    barcodes: Option<&InputFile>,
) -> Result<CountMatrix> {
    let feature_name = features.map_or(name, |f| f.name.as_str());
    m.make_gene_names_unique(feature_name);
    if let Some(b) = barcodes {
        let (n, example) = duplicates(&m.cell_ids);
        if n > 0 {
            m.notes.push(format!(
                "{}: {n} barcodes appear more than once (e.g. {}); joins by cell id will give them the same metadata",
                b.name,
                show(example.unwrap_or_default())
            ));
        }
    }
    m.validate().map_err(|e| {
        Error::input(
            name,
            format!("internal check failed after reading ({e}); please report this"),
        )
    })?;
    Ok(m)
}

/// Checks the `%%MatrixMarket matrix coordinate <field> general` banner; says whether
/// the field is `pattern` (no values: every entry is 1).
fn parse_banner(name: &str, first: Option<(usize, &[u8])>) -> Result<bool> {
    let line = first.map(|(_, l)| l).unwrap_or_default();
    let text = String::from_utf8_lossy(line).to_ascii_lowercase();
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let fix = "a Matrix Market file starts with '%%MatrixMarket matrix coordinate integer general'";
    if words.first() != Some(&"%%matrixmarket") {
        return Err(Error::input_at(
            name,
            "line 1",
            format!(
                "this is not a Matrix Market file ({} found); {fix}",
                show_bytes(line)
            ),
        ));
    }
    let get = |i: usize| words.get(i).copied().unwrap_or("");
    if get(1) != "matrix" {
        return Err(Error::input_at(
            name,
            "line 1",
            format!("the object is {} not 'matrix'; {fix}", show(get(1))),
        ));
    }
    match get(2) {
        "coordinate" => {}
        "array" => {
            return Err(Error::input_at(
                name,
                "line 1",
                "dense Matrix Market 'array' files are not supported; save the matrix in 'coordinate' format or as a CSV",
            ))
        }
        other => {
            return Err(Error::input_at(name, "line 1", format!("unknown format {}; {fix}", show(other))));
        }
    }
    let pattern = match get(3) {
        "integer" | "real" | "double" => false,
        "pattern" => true,
        other => {
            return Err(Error::input_at(
                name,
                "line 1",
                format!(
                    "the value type {} cannot hold counts; expected integer, real or pattern",
                    show(other)
                ),
            ))
        }
    };
    if get(4) != "general" {
        return Err(Error::input_at(
            name,
            "line 1",
            format!(
                "symmetry {} is not supported: a genes x cells count matrix is 'general'",
                show(get(4))
            ),
        ));
    }
    Ok(pattern)
}

/// Reads the size line (after `%` comments): rows, columns, entries; refuses sizes
/// that are absurd before anything is allocated.
fn parse_size(
    name: &str,
    lines: &mut super::text::ByteLines<'_>,
    max_dimension: u64,
) -> Result<(usize, u64, u64, u64)> {
    for (n, line) in lines.by_ref() {
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed.starts_with(b"%") {
            continue;
        }
        let at = format!("line {n}");
        let words: Vec<&[u8]> = trimmed
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let sizes: Vec<u64> = words.iter().filter_map(|w| parse_index(w)).collect();
        let [rows, cols, nnz] = match sizes[..] {
            [r, c, z] if words.len() == 3 => [r, c, z],
            _ => {
                return Err(Error::input_at(
                    name,
                    at,
                    format!(
                        "the size line must hold three whole numbers (rows, columns, entries), found {}",
                        show_bytes(trimmed)
                    ),
                ))
            }
        };
        for (what, v) in [("rows", rows), ("columns", cols)] {
            if v > max_dimension {
                return Err(Error::input_at(
                    name,
                    at,
                    format!(
                        "the header says {v} {what}, more than the {max_dimension} this reader accepts; \
                         the file is damaged or not a count matrix"
                    ),
                ));
            }
        }
        let cells = u128::from(rows) * u128::from(cols);
        if u128::from(nnz) > cells || nnz > MAX_NNZ {
            return Err(Error::input_at(
                name,
                at,
                format!(
                    "the header says {nnz} entries for a {rows} x {cols} matrix, which {}; the file is damaged",
                    if nnz > MAX_NNZ { "is more than this reader accepts" } else { "cannot hold that many" }
                ),
            ));
        }
        return Ok((n, rows, cols, nnz));
    }
    Err(Error::input(
        name,
        "the file ends before the size line (rows, columns, entries); the file is truncated",
    ))
}

/// Parses the entries into (cell, gene, value) triplets, 0-based.
fn parse_entries(
    name: &str,
    lines: &mut super::text::ByteLines<'_>,
    layout: &Layout,
    opts: &ReadOptions,
) -> Result<Vec<(u32, u32, f32)>> {
    // An entry line takes at least 4 bytes ("1 1\n"): never reserve more than the file holds.
    let capacity = usize::try_from(layout.nnz)
        .unwrap_or(usize::MAX)
        .min(lines.remaining_len() / 4 + 1);
    let mut triplets: Vec<(u32, u32, f32)> = Vec::with_capacity(capacity);
    let mut seen: u64 = 0;
    for (n, line) in lines {
        if let Some(t) = parse_entry(name, n, line, layout, &mut seen, opts)? {
            triplets.push(t);
        }
    }
    check_all_seen(name, layout, seen)?;
    Ok(triplets)
}

/// Parses line `n`: `None` for a blank or comment line, else the entry as 0-based
/// (cell, gene, value), counted in `seen` against the header's number of entries.
fn parse_entry(
    name: &str,
    n: usize,
    line: &[u8],
    layout: &Layout,
    seen: &mut u64,
    opts: &ReadOptions,
) -> Result<Option<(u32, u32, f32)>> {
    let n_fields = if layout.pattern { 2 } else { 3 };
    let mut tokens: [&[u8]; 3] = [&[]; 3];
    let mut found = 0;
    for t in line
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|t| !t.is_empty())
    {
        if let Some(slot) = tokens.get_mut(found) {
            *slot = t;
        }
        found += 1;
    }
    let [first, second, third] = tokens;
    if found == 0 || first.starts_with(b"%") {
        return Ok(None);
    }
    *seen += 1;
    let nnz = layout.nnz;
    if *seen > nnz {
        return Err(Error::input_at(
            name,
            format!("line {n}"),
            format!(
                "the header (line {}) says {nnz} {} but the file holds more; \
                 the header or the file is damaged",
                layout.size_line,
                entries(nnz)
            ),
        ));
    }
    if found != n_fields {
        return Err(Error::input_at(
            name,
            format!("line {n}"),
            format!(
                "an entry needs {n_fields} fields ({}) but this line has {found} ({}); the file is damaged",
                if n_fields == 2 { "row column" } else { "row column value" },
                show_bytes(line)
            ),
        ));
    }
    let row = index_in(name, n, 1, first, layout.rows, "rows")?;
    let col = index_in(name, n, 2, second, layout.cols, "columns")?;
    let value = if layout.pattern {
        1.0
    } else {
        let v = parse_number(third).ok_or_else(|| {
            Error::input_at(
                name,
                format!("line {n}, field 3"),
                format!(
                    "{} is not a number; the third field of an entry is its count",
                    show_bytes(third)
                ),
            )
        })?;
        check_count(v, opts.allow_non_counts)
            .map_err(|p| Error::input_at(name, format!("line {n}, field 3"), p))?;
        v
    };
    let (cell, gene) = if layout.cells_as_rows {
        (row, col)
    } else {
        (col, row)
    };
    Ok(Some((cell, gene, value as f32)))
}

/// The truncation check once every line is read: as many entries as the header says.
fn check_all_seen(name: &str, layout: &Layout, seen: u64) -> Result<()> {
    if seen < layout.nnz {
        return Err(Error::input(
            name,
            format!(
                "the header (line {}) says {} {} but the file holds only {seen}; \
                 the file is truncated: download or copy it again",
                layout.size_line,
                layout.nnz,
                entries(layout.nnz)
            ),
        ));
    }
    Ok(())
}

/// A 1-based index checked against its bound, returned 0-based.
fn index_in(
    name: &str,
    n: usize,
    field_number: usize,
    token: &[u8],
    bound: u64,
    what: &str,
) -> Result<u32> {
    match parse_index(token) {
        Some(i) if i >= 1 && i <= bound => Ok((i - 1) as u32),
        Some(i) => Err(Error::input_at(
            name,
            format!("line {n}, field {field_number}"),
            format!("index {i} is outside 1..={bound} (the header says {bound} {what}); the file is damaged"),
        )),
        None => Err(Error::input_at(
            name,
            format!("line {n}, field {field_number}"),
            format!("{} is not a whole number; row and column indices are 1-based integers", show_bytes(token)),
        )),
    }
}

/// Reads a features / genes file: id, name, type columns (or one column).
fn read_features(file: &InputFile) -> Result<FeatureList> {
    let bytes = file.decompressed()?;
    check_not_utf16(&file.name, &bytes)?;
    let mut list = FeatureList {
        ids: Vec::new(),
        names: Vec::new(),
        types: None,
    };
    let mut types = Vec::new();
    let mut delimiter = None;
    let mut fields = Vec::new();
    for item in text_lines(&file.name, &bytes) {
        let (n, line) = item?;
        let d = *delimiter.get_or_insert_with(|| detect_delimiter(&file.base_name(), line, false));
        split_fields(line, d, &mut fields)
            .map_err(|p| Error::input_at(&file.name, format!("line {n}"), p))?;
        let id = fields.first().map(|f| f.trim()).unwrap_or_default();
        if id.is_empty() {
            return Err(Error::input_at(
                &file.name,
                format!("line {n}, field 1"),
                "the gene id is empty",
            ));
        }
        let gene_name = fields
            .get(1)
            .map(|f| f.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(id);
        list.ids.push(id.to_string());
        list.names.push(gene_name.to_string());
        types.push(
            fields
                .get(2)
                .map(|f| f.trim().to_string())
                .unwrap_or_default(),
        );
    }
    if list.ids.is_empty() {
        return Err(Error::input(
            &file.name,
            "the features / genes file is empty; it must list one gene per line",
        ));
    }
    if types.iter().any(|t| !t.is_empty()) {
        list.types = Some(types);
    }
    Ok(list)
}

/// Reads a barcodes file: the first field of each line.
fn read_barcodes(file: &InputFile) -> Result<Vec<String>> {
    let bytes = file.decompressed()?;
    check_not_utf16(&file.name, &bytes)?;
    let mut out = Vec::new();
    for (n, line) in byte_lines(&bytes) {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let line = line_str(&file.name, n, line)?;
        let first = line
            .split(['\t', ','])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"');
        if first.is_empty() {
            return Err(Error::input_at(
                &file.name,
                format!("line {n}"),
                "the barcode is empty",
            ));
        }
        out.push(first.to_string());
    }
    if out.is_empty() {
        return Err(Error::input(
            &file.name,
            "the barcodes file is empty; it must list one cell barcode per line",
        ));
    }
    Ok(out)
}

/// First fields of a features file's header line.
const GENE_HEADER_WORDS: &[&str] = &[
    "gene",
    "genes",
    "gene_id",
    "gene_ids",
    "id",
    "feature",
    "feature_id",
    "ensembl_id",
    "gene_name",
    "symbol",
];
/// First fields of a barcodes file's header line.
const CELL_HEADER_WORDS: &[&str] = &["barcode", "barcodes", "cell", "cells", "cell_id", "x"];

/// Drops a first line that looks like a column header (`gene_id`, `barcode`, ...; never
/// a real gene or barcode) when the lines after it fit one of the matrix's sizes. Says whether it did.
fn drop_header_line(ids: &mut Vec<String>, rows: u64, cols: u64, words: &[&str]) -> bool {
    let len = ids.len() as u64;
    let looks_like_header = ids
        .first()
        .is_some_and(|f| words.contains(&f.to_ascii_lowercase().as_str()));
    if looks_like_header && (len - 1 == rows || len - 1 == cols) {
        ids.remove(0);
        return true;
    }
    false
}

/// "entry" or "entries".
fn entries(n: u64) -> &'static str {
    if n == 1 {
        "entry"
    } else {
        "entries"
    }
}
