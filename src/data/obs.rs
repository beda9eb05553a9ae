//! Cell metadata: the [`ObsTable`] (string, categorical and numeric columns) and the
//! optional metadata file (`--obs FILE`) joined to a matrix by cell id.

use serde::Serialize;

/// The values of one metadata column.
#[derive(Debug, Clone, PartialEq)]
pub enum ObsValues {
    /// A categorical column: `codes[i]` indexes `levels`; `None` is missing.
    Categorical {
        /// The category labels, in their stored order.
        levels: Vec<String>,
        /// One code per cell.
        codes: Vec<Option<u32>>,
    },
    /// Free text per cell.
    Text(Vec<String>),
    /// Numbers per cell (NaN when missing).
    Numeric(Vec<f64>),
}

/// One named metadata column.
#[derive(Debug, Clone, PartialEq)]
pub struct ObsColumn {
    /// The column name.
    pub name: String,
    /// Its values, one per cell.
    pub values: ObsValues,
}

/// A short description of a column, for `inspect` and the page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ObsColumnSummary {
    /// Column name.
    pub name: String,
    /// `categorical`, `text` or `numeric`.
    pub kind: String,
    /// Number of distinct values (levels actually used for categoricals).
    pub n_levels: usize,
}

impl ObsColumn {
    /// Number of cells in the column.
    pub fn len(&self) -> usize {
        match &self.values {
            ObsValues::Categorical { codes, .. } => codes.len(),
            ObsValues::Text(v) => v.len(),
            ObsValues::Numeric(v) => v.len(),
        }
    }

    /// Whether the column has no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of one cell as text (empty when missing).
    pub fn value_string(&self, cell: usize) -> String {
        match &self.values {
            ObsValues::Categorical { levels, codes } => codes[cell]
                .map(|c| levels[c as usize].clone())
                .unwrap_or_default(),
            ObsValues::Text(v) => v[cell].clone(),
            ObsValues::Numeric(v) => {
                if v[cell].is_nan() {
                    String::new()
                } else {
                    format!("{}", v[cell])
                }
            }
        }
    }

    /// Summary: kind and number of distinct values.
    pub fn summary(&self) -> ObsColumnSummary {
        let (kind, n_levels) = match &self.values {
            ObsValues::Categorical { levels, codes } => {
                let mut used = vec![false; levels.len()];
                for c in codes.iter().flatten() {
                    used[*c as usize] = true;
                }
                ("categorical", used.iter().filter(|&&u| u).count())
            }
            ObsValues::Text(v) => {
                let set: std::collections::HashSet<&String> = v.iter().collect();
                ("text", set.len())
            }
            ObsValues::Numeric(v) => {
                let set: std::collections::HashSet<u64> = v.iter().map(|x| x.to_bits()).collect();
                ("numeric", set.len())
            }
        };
        ObsColumnSummary {
            name: self.name.clone(),
            kind: kind.to_string(),
            n_levels,
        }
    }

    /// Turns a text column into a categorical one (levels in order of first appearance;
    /// empty strings are missing).
    pub fn categorical_from_strings(name: impl Into<String>, values: &[String]) -> ObsColumn {
        let mut levels: Vec<String> = Vec::new();
        let mut index: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
        let mut codes = Vec::with_capacity(values.len());
        for v in values {
            if v.is_empty() {
                codes.push(None);
                continue;
            }
            let next = levels.len() as u32;
            let code = *index.entry(v.as_str()).or_insert_with(|| {
                levels.push(v.clone());
                next
            });
            codes.push(Some(code));
        }
        ObsColumn {
            name: name.into(),
            values: ObsValues::Categorical { levels, codes },
        }
    }

    /// The column restricted to (and reordered by) the given cells.
    pub fn select(&self, keep: &[usize]) -> ObsColumn {
        let values = match &self.values {
            ObsValues::Categorical { levels, codes } => ObsValues::Categorical {
                levels: levels.clone(),
                codes: keep.iter().map(|&i| codes[i]).collect(),
            },
            ObsValues::Text(v) => ObsValues::Text(keep.iter().map(|&i| v[i].clone()).collect()),
            ObsValues::Numeric(v) => ObsValues::Numeric(keep.iter().map(|&i| v[i]).collect()),
        };
        ObsColumn {
            name: self.name.clone(),
            values,
        }
    }
}

/// The metadata of all cells, one column after another.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObsTable {
    /// The columns, each with one value per cell.
    pub columns: Vec<ObsColumn>,
}

impl ObsTable {
    /// The column with this name.
    pub fn get(&self, name: &str) -> Option<&ObsColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Adds a column, replacing one of the same name.
    pub fn insert(&mut self, column: ObsColumn) {
        if let Some(existing) = self.columns.iter_mut().find(|c| c.name == column.name) {
            *existing = column;
        } else {
            self.columns.push(column);
        }
    }

    /// Summaries of every column.
    pub fn summaries(&self) -> Vec<ObsColumnSummary> {
        self.columns.iter().map(ObsColumn::summary).collect()
    }

    /// The table restricted to (and reordered by) the given cells.
    pub fn select(&self, keep: &[usize]) -> ObsTable {
        ObsTable {
            columns: self.columns.iter().map(|c| c.select(keep)).collect(),
        }
    }

    /// Appends the rows of `more` (the same columns, as windows of one file give):
    /// categories are matched by name, a level new to a column is added to it.
    pub fn append(&mut self, more: ObsTable) -> crate::error::Result<()> {
        let same = self.columns.len() == more.columns.len()
            && self
                .columns
                .iter()
                .zip(&more.columns)
                .all(|(a, b)| a.name == b.name);
        if !same {
            return Err(crate::error::Error::Config(
                "internal error: cells to append have other metadata columns; please report".into(),
            ));
        }
        for (a, b) in self.columns.iter_mut().zip(more.columns) {
            match (&mut a.values, b.values) {
                (
                    ObsValues::Categorical { levels, codes },
                    ObsValues::Categorical {
                        levels: more_levels,
                        codes: more_codes,
                    },
                ) => {
                    let map: Vec<u32> = more_levels
                        .into_iter()
                        .map(|l| match levels.iter().position(|x| *x == l) {
                            Some(i) => i as u32,
                            None => {
                                levels.push(l);
                                (levels.len() - 1) as u32
                            }
                        })
                        .collect();
                    codes.extend(more_codes.into_iter().map(|c| c.map(|c| map[c as usize])));
                }
                (ObsValues::Text(v), ObsValues::Text(w)) => v.extend(w),
                (ObsValues::Numeric(v), ObsValues::Numeric(w)) => v.extend(w),
                _ => {
                    return Err(crate::error::Error::Config(format!(
                    "internal error: metadata column {} changes kind between cells; please report",
                    a.name
                )))
                }
            }
        }
        Ok(())
    }
}

/// Words that mean "missing" in a metadata table (besides an empty field).
fn is_missing_marker(value: &str) -> bool {
    matches!(value, "" | "NA" | "N/A" | "nan" | "NaN" | "null" | "None")
}

/// Builds a column from its text values: numbers when every non-missing value parses as
/// one (missing become NaN); otherwise categorical when the number of distinct values is
/// at most `max(50, n / 2)` (n = non-missing values), else free text. Missing markers
/// (`NA`, `nan`, ...) become missing values (empty strings for text).
fn column_from_strings(name: String, mut values: Vec<String>) -> ObsColumn {
    for v in values.iter_mut() {
        if is_missing_marker(v) {
            v.clear();
        }
    }
    let present: Vec<&String> = values.iter().filter(|v| !v.is_empty()).collect();
    if !present.is_empty() && present.iter().all(|v| v.parse::<f64>().is_ok()) {
        let numbers = values
            .iter()
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN))
            .collect();
        return ObsColumn {
            name,
            values: ObsValues::Numeric(numbers),
        };
    }
    let distinct: std::collections::HashSet<&String> = present.iter().copied().collect();
    if distinct.len() <= (present.len() / 2).max(50) {
        ObsColumn::categorical_from_strings(name, &values)
    } else {
        ObsColumn {
            name,
            values: ObsValues::Text(values),
        }
    }
}

/// Reads a cell metadata table (CSV / TSV, optionally gzipped): a header row, cell ids
/// in the first column, one metadata column per further field. Returns the ids (in file
/// order) and the columns, typed as: numeric when every non-missing value is a number;
/// else categorical when it has at most `max(50, n / 2)` distinct values; else text
/// (`NA`, `nan`, empty, ... are missing). A header one field shorter
/// than the rows (R's `write.csv`) is accepted. Duplicate cell ids are an error naming
/// both lines; duplicate column names are made unique (`x`, `x-1`).
pub fn read_obs_table(file: &super::InputFile) -> crate::error::Result<(Vec<String>, ObsTable)> {
    use super::text::{check_not_utf16, detect_delimiter, show, split_fields, text_lines};
    use crate::error::Error;
    let name = file.name.as_str();
    let bytes = file.decompressed()?;
    check_not_utf16(name, &bytes)?;
    let mut lines = text_lines(name, &bytes);
    let (header_line, header) = match lines.next() {
        Some(item) => item?,
        None => {
            return Err(Error::input(
                name,
                "the metadata table is empty; it needs a header row and one row per cell",
            ))
        }
    };
    let delimiter = detect_delimiter(&file.base_name(), header, false);
    let mut fields = Vec::new();
    split_fields(header, delimiter, &mut fields)
        .map_err(|p| Error::input_at(name, format!("line {header_line}"), p))?;
    let header_fields: Vec<String> = fields.iter().map(|f| f.trim().to_string()).collect();
    let mut ids: Vec<String> = Vec::new();
    let mut first_line: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut columns: Vec<Vec<String>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut expected = None;
    for item in lines {
        let (n, line) = item?;
        split_fields(line, delimiter, &mut fields)
            .map_err(|p| Error::input_at(name, format!("line {n}"), p))?;
        let want = match expected {
            Some(w) => w,
            None => {
                let m = header_fields.len();
                let w = fields.len();
                if w != m && w != m + 1 {
                    return Err(Error::input_at(
                        name,
                        format!("line {n}"),
                        format!(
                            "this row has {w} fields but the header (line {header_line}) has {m}; \
                             every row needs a cell id and one value per header column"
                        ),
                    ));
                }
                names = header_fields.iter().skip(m + 1 - w).cloned().collect();
                for (k, col) in names.iter_mut().enumerate() {
                    if col.is_empty() {
                        *col = format!("column_{}", k + 2);
                    }
                }
                super::make_unique(&mut names);
                columns = vec![Vec::new(); w - 1];
                expected = Some(w);
                w
            }
        };
        if fields.len() != want {
            return Err(Error::input_at(
                name,
                format!("line {n}"),
                format!(
                    "this row has {} fields but the table has {want} (a cell id and {} columns); \
                     every row needs the same number of fields",
                    fields.len(),
                    want - 1
                ),
            ));
        }
        let mut values = fields.iter().map(|f| f.trim());
        let id = values.next().unwrap_or_default().to_string();
        if id.is_empty() {
            return Err(Error::input_at(
                name,
                format!("line {n}, field 1"),
                "the cell id is empty; the first column must hold the cell ids (barcodes)",
            ));
        }
        if let Some(first) = first_line.insert(id.clone(), n) {
            return Err(Error::input_at(
                name,
                format!("line {n}"),
                format!(
                    "the cell id {} appears again (first on line {first}); cell ids must be unique",
                    show(&id)
                ),
            ));
        }
        ids.push(id);
        for (col, v) in columns.iter_mut().zip(values) {
            col.push(v.to_string());
        }
    }
    if ids.is_empty() {
        return Err(Error::input(
            name,
            format!("the metadata table has a header (line {header_line}) but no rows; it needs one row per cell"),
        ));
    }
    let table = ObsTable {
        columns: names
            .into_iter()
            .zip(columns)
            .map(|(col_name, values)| column_from_strings(col_name, values))
            .collect(),
    };
    Ok((ids, table))
}

/// A few names for a message: `'a', 'b', 'c'`.
fn examples<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .take(3)
        .map(|n| super::text::show(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A column with one value per matrix cell, taken from table row `rows[cell]`
/// (missing where `None`).
fn pick_rows(column: &ObsColumn, rows: &[Option<usize>]) -> ObsColumn {
    let values = match &column.values {
        ObsValues::Categorical { levels, codes } => ObsValues::Categorical {
            levels: levels.clone(),
            codes: rows
                .iter()
                .map(|r| r.and_then(|i| codes.get(i).copied().flatten()))
                .collect(),
        },
        ObsValues::Text(v) => ObsValues::Text(
            rows.iter()
                .map(|r| r.and_then(|i| v.get(i).cloned()).unwrap_or_default())
                .collect(),
        ),
        ObsValues::Numeric(v) => ObsValues::Numeric(
            rows.iter()
                .map(|r| r.and_then(|i| v.get(i).copied()).unwrap_or(f64::NAN))
                .collect(),
        ),
    };
    ObsColumn {
        name: column.name.clone(),
        values,
    }
}

/// Joins a metadata table (from [`read_obs_table`]) to a matrix by cell id. Matrix cells
/// without a table row get missing values; how many cells lack a row and how many table
/// rows match no cell are reported in `m.notes` with examples; table columns replace
/// matrix columns of the same name (noted). No matching id at all is an error, since
/// that almost always means the wrong table or a different id format.
pub fn join_obs(
    m: &mut super::CountMatrix,
    ids: &[String],
    table: ObsTable,
    file_name: &str,
) -> crate::error::Result<()> {
    use crate::error::Error;
    if let Some(bad) = table.columns.iter().find(|c| c.len() != ids.len()) {
        return Err(Error::input(
            file_name,
            format!(
                "column {} has {} values for {} cell ids; the table is inconsistent",
                super::text::show(&bad.name),
                bad.len(),
                ids.len()
            ),
        ));
    }
    let row_of: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let rows: Vec<Option<usize>> = m
        .cell_ids
        .iter()
        .map(|c| row_of.get(c.as_str()).copied())
        .collect();
    let matched = rows.iter().filter(|r| r.is_some()).count();
    if matched == 0 {
        return Err(Error::input(
            file_name,
            format!(
                "none of the {} cell ids in {file_name} match the matrix's cell ids (e.g. {} vs {}); \
                 the first column of the table must hold the same cell ids (barcodes) as the matrix",
                ids.len(),
                examples(ids.iter()),
                examples(m.cell_ids.iter())
            ),
        ));
    }
    let missing: Vec<&String> = m
        .cell_ids
        .iter()
        .zip(&rows)
        .filter(|(_, r)| r.is_none())
        .map(|(c, _)| c)
        .collect();
    if !missing.is_empty() {
        m.notes.push(format!(
            "{file_name}: {} of {} matrix cells have no row in the table (e.g. {}); their metadata is missing",
            missing.len(),
            m.n_cells,
            examples(missing.iter().copied())
        ));
    }
    let cell_set: std::collections::HashSet<&str> = m.cell_ids.iter().map(String::as_str).collect();
    let unused: Vec<&String> = ids
        .iter()
        .filter(|id| !cell_set.contains(id.as_str()))
        .collect();
    if !unused.is_empty() {
        m.notes.push(format!(
            "{file_name}: {} of {} table rows match no cell of the matrix (e.g. {}) and were ignored",
            unused.len(),
            ids.len(),
            examples(unused.iter().copied())
        ));
    }
    for column in &table.columns {
        if m.obs.get(&column.name).is_some() {
            m.notes.push(format!(
                "{file_name}: column {} replaces the matrix's column of the same name",
                super::text::show(&column.name)
            ));
        }
        m.obs.insert(pick_rows(column, &rows));
    }
    Ok(())
}
