//! Dense count tables: CSV / TSV (optionally gzipped) with a header row and one label
//! column, cells as rows or as columns.
//!
//! Layout: the first line is the header; the first field of every later line is its
//! label (a cell id or a gene name) and the rest are counts. A first line of numbers
//! only is refused: the table has no header, and reading its first row and column as
//! names would silently drop a row and a column of counts. A header with one field
//! fewer than the rows (R's `write.csv` / `write.table` without a corner cell) is
//! accepted. The delimiter is taken from the header (tab, comma, semicolon, or spaces
//! for R's `write.table`), preferring the one the extension names. Blank lines are
//! skipped; a UTF-8 byte-order mark and CRLF line ends are accepted.
//!
//! # Orientation
//!
//! With [`Orientation::Auto`] the first rule that applies decides:
//!
//! 1. the header's first field names the label column: `gene`, `gene_id`, `symbol`,
//!    `feature`, ... means rows are genes (cells as columns); `cell`, `barcode`,
//!    `cell_id`, ... means rows are cells;
//! 2. most labels on one side look like cell barcodes (a run of 8 or more of `ACGTN`,
//!    e.g. `AAACCTGAGATAGGAG-1`, `LN2_CACACTCCAGGCGATA-1`) and not on the other: that
//!    side holds the cells;
//! 3. most labels on one side look like Ensembl gene ids (`ENSG00000141510`) and not on
//!    the other: that side holds the genes;
//! 4. shape: the longer side is taken to be genes (more columns than rows means cells as
//!    rows; more rows than columns means cells as columns; a square table is read as
//!    cells as rows, the AnnData / pandas convention). A transcriptome has ~20,000-30,000
//!    genes and dense tables are only practical for modest cell numbers, so this is the
//!    usual case; a table of a few highly variable genes over many cells breaks it, which
//!    is why the decision and its reason are always reported in `notes`.
//!
//! [`Orientation::CellsAsRows`] / [`Orientation::CellsAsColumns`] override the rules.

use super::text::{
    check_not_utf16, delimiter_name, detect_delimiter, duplicates, parse_count, show, split_fields,
    text_lines,
};
use super::{CountMatrix, InputFile, Orientation, ReadOptions, MAX_DIMENSION};
use crate::error::{Error, Result};

/// The table as read, rows x columns as in the file, values sparse by row.
struct Table {
    corner: String,
    row_labels: Vec<String>,
    col_labels: Vec<String>,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    data: Vec<f32>,
    delimiter: u8,
}

/// Reads a dense CSV / TSV count table (see the module docs for the layout and the
/// orientation rules). The format is `csv` for comma- or semicolon-separated tables,
/// `tsv` otherwise. Every value goes through [`super::check_count`]; duplicated gene
/// names are made unique and reported; the orientation decision is reported in `notes`.
pub fn read_dense(file: &InputFile, opts: &ReadOptions) -> Result<CountMatrix> {
    let table = read_table(file, opts)?;
    let (cells_as_rows, reason) = match opts.orientation {
        Orientation::CellsAsRows => (true, "as asked".to_string()),
        Orientation::CellsAsColumns => (false, "as asked".to_string()),
        Orientation::Auto => decide_orientation(&table),
    };
    let Table {
        corner: _,
        row_labels,
        col_labels,
        indptr,
        indices,
        data,
        delimiter,
    } = table;
    let (n_rows, n_cols) = (row_labels.len(), col_labels.len());
    let mut m = if cells_as_rows {
        CountMatrix {
            n_cells: n_rows,
            n_genes: n_cols,
            indptr,
            indices,
            data,
            gene_ids: col_labels,
            cell_ids: row_labels,
            ..Default::default()
        }
    } else {
        let (indptr, indices, data) = transpose(n_rows, n_cols, &indptr, &indices, &data);
        CountMatrix {
            n_cells: n_cols,
            n_genes: n_rows,
            indptr,
            indices,
            data,
            gene_ids: row_labels,
            cell_ids: col_labels,
            ..Default::default()
        }
    };
    m.gene_names = m.gene_ids.clone();
    m.format = if matches!(delimiter, b',' | b';') {
        "csv"
    } else {
        "tsv"
    }
    .to_string();
    let (layout, other) = if cells_as_rows {
        ("cells as rows", "cells-as-columns")
    } else {
        ("cells as columns", "cells-as-rows")
    };
    m.notes.push(format!(
        "{}: read as {} ({} cells x {} genes, {}-separated) {reason}; if that is wrong, set the orientation to {other}",
        file.name,
        layout,
        m.n_cells,
        m.n_genes,
        delimiter_name(delimiter)
    ));
    let (n_dup, example) = duplicates(&m.cell_ids);
    if n_dup > 0 {
        m.notes.push(format!(
            "{}: {n_dup} cell ids appear more than once (e.g. {})",
            file.name,
            show(example.unwrap_or_default())
        ));
    }
    m.make_gene_names_unique(&file.name);
    m.validate().map_err(|e| {
        Error::input(
            &file.name,
            format!("internal check failed after reading ({e}); please report this"),
        )
    })?;
    Ok(m)
}

/// Parses the header and the rows, checking every value.
fn read_table(file: &InputFile, opts: &ReadOptions) -> Result<Table> {
    let name = file.name.as_str();
    let bytes = file.decompressed_within(opts.expanded_limit())?;
    check_not_utf16(name, &bytes)?;
    let mut lines = text_lines(name, &bytes);
    let (header_line, header) =
        match lines.next() {
            Some(item) => item?,
            None => return Err(Error::input(
                name,
                "the file is empty; a count table needs a header row and one row per cell or gene",
            )),
        };
    let delimiter = detect_delimiter(&file.base_name(), header, true);
    let mut fields = Vec::new();
    split_fields(header, delimiter, &mut fields)
        .map_err(|p| Error::input_at(name, format!("line {header_line}"), p))?;
    let header_fields: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
    if header_fields.len() >= 2
        && header_fields
            .iter()
            .all(|f| !f.is_empty() && f.parse::<f64>().is_ok())
    {
        let shown: Vec<&str> = header_fields.iter().take(4).map(String::as_str).collect();
        return Err(Error::input_at(
            name,
            format!("line {header_line}"),
            format!(
                "the first row holds only numbers ({}{}): the table has no header row. \
                 Read as it is, its first row would become the gene (or cell) names and \
                 its first column the other names, silently; add a header row naming the \
                 genes or cells and make the first column the other names (pandas: \
                 df.to_csv(path) with named index and columns; R: write.csv(m) with \
                 dimnames)",
                shown.join(", "),
                if header_fields.len() > 4 { ", ..." } else { "" }
            ),
        ));
    }
    if header_fields.len() as u64 > MAX_DIMENSION {
        return Err(Error::input_at(
            name,
            format!("line {header_line}"),
            format!("the header has more than {MAX_DIMENSION} fields; this is not a count table"),
        ));
    }

    let mut table = Table {
        corner: String::new(),
        row_labels: Vec::new(),
        col_labels: Vec::new(),
        indptr: vec![0],
        indices: Vec::new(),
        data: Vec::new(),
        delimiter,
    };
    // Fields per data row, fixed by the first data row (header or header + 1).
    let mut expected: Option<usize> = None;
    for item in lines {
        let (n, line) = item?;
        split_fields(line, delimiter, &mut fields)
            .map_err(|p| Error::input_at(name, format!("line {n}"), p))?;
        let want = match expected {
            Some(w) => w,
            None => {
                let w = first_row_layout(
                    name,
                    &header_fields,
                    header_line,
                    n,
                    fields.len(),
                    delimiter,
                )?;
                if w == header_fields.len() {
                    table.corner = header_fields.first().cloned().unwrap_or_default();
                    table.col_labels = header_fields.iter().skip(1).cloned().collect();
                } else {
                    table.col_labels = header_fields.clone();
                }
                expected = Some(w);
                w
            }
        };
        if fields.len() != want {
            return Err(Error::input_at(
                name,
                format!("line {n}"),
                format!(
                    "this row has {} fields but the table has {want} (a label and {} values, as the header on line {header_line} says); \
                     every row needs the same number of fields",
                    fields.len(),
                    want - 1
                ),
            ));
        }
        let mut values = fields.iter();
        let label = values.next().map(|f| f.trim()).unwrap_or_default();
        table.row_labels.push(label.to_string());
        for (j, f) in values.enumerate() {
            let v = parse_count(name, n, j + 2, f.as_bytes(), opts.allow_non_counts)?;
            if v != 0.0 {
                table.indices.push(j as u32);
                table.data.push(v as f32);
            }
        }
        table.indptr.push(table.data.len());
    }
    if table.row_labels.is_empty() {
        return Err(Error::input(
            name,
            format!(
                "the file has a header (line {header_line}) but no data rows; a count table needs one row per cell or gene"
            ),
        ));
    }
    if table.row_labels.len() as u64 > MAX_DIMENSION {
        return Err(Error::input(
            name,
            format!("the table has more than {MAX_DIMENSION} rows; this reader does not accept that many"),
        ));
    }
    Ok(table)
}

/// Decides from the first data row whether the header has a corner field: returns the
/// number of fields every row must have.
fn first_row_layout(
    name: &str,
    header: &[String],
    header_line: usize,
    n: usize,
    found: usize,
    delimiter: u8,
) -> Result<usize> {
    let m = header.len();
    if found == m || found == m + 1 {
        if found < 2 {
            return Err(Error::input_at(
                name,
                format!("line {n}"),
                format!(
                    "the rows have no values, only a label (read as {}-separated); \
                     separate the fields with tabs or commas",
                    delimiter_name(delimiter)
                ),
            ));
        }
        return Ok(found);
    }
    Err(Error::input_at(
        name,
        format!("line {n}"),
        format!(
            "this row has {found} fields but the header (line {header_line}) has {m}; \
             every row needs a label and one value per header column"
        ),
    ))
}

/// Whether a label looks like a cell barcode: a run of at least 8 of `ACGTN` that is
/// not part of a longer word (`AAACCTGAGATAGGAG-1`, `LN2_CACACTCCAGGCGATA-1-2`).
pub(crate) fn looks_like_barcode(label: &str) -> bool {
    label.split(|c: char| !c.is_ascii_alphabetic()).any(|word| {
        word.len() >= 8
            && word
                .bytes()
                .all(|b| matches!(b, b'A' | b'C' | b'G' | b'T' | b'N'))
    })
}

/// Whether a label looks like an Ensembl gene id (`ENSG00000141510`, `ENSMUSG00000051951.3`).
fn looks_like_ensembl_gene(label: &str) -> bool {
    let base = label.split('.').next().unwrap_or_default();
    let digits = base.bytes().rev().take_while(u8::is_ascii_digit).count();
    let prefix = base.get(..base.len() - digits).unwrap_or_default();
    base.starts_with("ENS") && digits >= 6 && prefix.ends_with('G')
}

/// Whether most of the first 1,000 labels pass a test.
fn mostly(labels: &[String], test: fn(&str) -> bool) -> bool {
    let sample = labels.get(..labels.len().min(1000)).unwrap_or_default();
    !sample.is_empty() && sample.iter().filter(|l| test(l)).count() * 2 > sample.len()
}

/// Applies the orientation rules of the module docs: (cells as rows, reason).
fn decide_orientation(t: &Table) -> (bool, String) {
    const GENE_WORDS: &[&str] = &[
        "gene",
        "genes",
        "gene_id",
        "gene_ids",
        "geneid",
        "gene_name",
        "gene_names",
        "gene_symbol",
        "symbol",
        "feature",
        "features",
        "feature_id",
        "ensembl",
        "ensembl_id",
    ];
    const CELL_WORDS: &[&str] = &[
        "cell",
        "cells",
        "cell_id",
        "cell_ids",
        "cellid",
        "barcode",
        "barcodes",
        "cell_barcode",
        "obs_names",
    ];
    let corner = t.corner.to_ascii_lowercase();
    let first = format!("because the header's first field is {}", show(&t.corner));
    if GENE_WORDS.contains(&corner.as_str()) {
        return (false, first);
    }
    if CELL_WORDS.contains(&corner.as_str()) {
        return (true, first);
    }
    let (rows_bc, cols_bc) = (
        mostly(&t.row_labels, looks_like_barcode),
        mostly(&t.col_labels, looks_like_barcode),
    );
    if rows_bc != cols_bc {
        let side = if rows_bc { "row" } else { "column" };
        return (
            rows_bc,
            format!("because the {side} labels look like cell barcodes"),
        );
    }
    let (rows_ens, cols_ens) = (
        mostly(&t.row_labels, looks_like_ensembl_gene),
        mostly(&t.col_labels, looks_like_ensembl_gene),
    );
    if rows_ens != cols_ens {
        let side = if rows_ens { "row" } else { "column" };
        return (
            cols_ens,
            format!("because the {side} labels look like Ensembl gene ids"),
        );
    }
    let (n_rows, n_cols) = (t.row_labels.len(), t.col_labels.len());
    let reason = format!(
        "because the labels do not say which side holds cells, and with {n_rows} rows and {n_cols} columns \
         the longer side is taken to be genes"
    );
    (n_cols >= n_rows, reason)
}

/// Transposes a CSR matrix (`n_rows` x `n_cols`) into CSR `n_cols` x `n_rows`, with
/// sorted indices (counting sort, O(nnz)).
fn transpose(
    n_rows: usize,
    n_cols: usize,
    indptr: &[usize],
    indices: &[u32],
    data: &[f32],
) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
    let mut out_ptr = vec![0usize; n_cols + 1];
    for &c in indices {
        out_ptr[c as usize + 1] += 1;
    }
    for c in 0..n_cols {
        out_ptr[c + 1] += out_ptr[c];
    }
    let mut next = out_ptr.clone();
    let mut out_idx = vec![0u32; indices.len()];
    let mut out_data = vec![0f32; data.len()];
    for r in 0..n_rows {
        for k in indptr[r]..indptr[r + 1] {
            let c = indices[k] as usize;
            out_idx[next[c]] = r as u32;
            out_data[next[c]] = data[k];
            next[c] += 1;
        }
    }
    (out_ptr, out_idx, out_data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_patterns() {
        assert!(looks_like_barcode("AAACCTGAGATAGGAG-1"));
        assert!(looks_like_barcode("LN2_CACACTCCAGGCGATA-1-2"));
        assert!(!looks_like_barcode("CACNA1A"));
        assert!(!looks_like_barcode("HES4"));
        assert!(looks_like_ensembl_gene("ENSG00000141510"));
        assert!(looks_like_ensembl_gene("ENSMUSG00000051951.3"));
        assert!(!looks_like_ensembl_gene("ENST00000141510"));
        assert!(!looks_like_ensembl_gene("TP53"));
    }

    #[test]
    fn transpose_small() {
        // [[1, 0, 2], [0, 3, 0]]
        let (p, i, d) = transpose(2, 3, &[0, 2, 3], &[0, 2, 1], &[1.0, 2.0, 3.0]);
        assert_eq!(p, vec![0, 1, 2, 3]);
        assert_eq!(i, vec![0, 1, 0]);
        assert_eq!(d, vec![1.0, 3.0, 2.0]);
    }
}
