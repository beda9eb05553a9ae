//! AnnData dataframes (`obs`, `var`, `raw/var`) in their encodings:
//!
//! - current (anndata >= 0.8): a group with attributes `_index` (the index dataset) and
//!   `column-order`; each column a dataset (numbers, strings, booleans) or a group:
//!   `categorical` (`categories` + `codes`, code -1 = missing) or nullable
//!   (`values` + `mask`);
//! - 0.7: the same group, with categoricals as integer datasets whose `categories`
//!   attribute references `__categories/<column>`;
//! - old (anndata < 0.7): one compound dataset with an `index` field, categoricals as
//!   integer codes with their labels in `uns/<column>_categories`.

use super::{Node, Values, H5};
use crate::data::{ObsColumn, ObsValues};
use crate::error::Result;
use hdf5_pure::{AttrValue, DType, Dataset, Datatype, DatatypeByteOrder, StringPadding};

/// A dataframe: its index (row names) and its columns, with notes about what was skipped.
pub(super) struct Frame {
    pub(super) index: Option<Vec<String>>,
    pub(super) columns: Vec<ObsColumn>,
    pub(super) notes: Vec<String>,
}

impl Frame {
    /// Number of rows, when the frame says.
    pub(super) fn len(&self) -> Option<usize> {
        self.index
            .as_ref()
            .map(Vec::len)
            .or_else(|| self.columns.first().map(ObsColumn::len))
    }
}

/// Reads the dataframe at `path` (`None` when the file has none there).
pub(super) fn read(h: &H5, path: &str) -> Result<Option<Frame>> {
    match h.node(path)? {
        Node::Group(g) => {
            let attrs = g.attrs().map_err(|e| h.fail(path, e))?;
            let index_name = attrs
                .get("_index")
                .and_then(AttrValue::as_str)
                .unwrap_or("_index")
                .to_string();
            let order: Vec<String> = match attrs.get("column-order") {
                // An empty column-order is written as an empty float array.
                Some(v) => v.as_strings().map(<[String]>::to_vec).unwrap_or_default(),
                None => {
                    let mut names = g.datasets().map_err(|e| h.fail(path, e))?;
                    names.extend(g.groups().map_err(|e| h.fail(path, e))?);
                    names.retain(|n| n != &index_name && n != "__categories");
                    names.sort();
                    names
                }
            };
            let ip = format!("{path}/{index_name}");
            let index = match h.dataset(&ip)? {
                Some(ds) => Some(h.strings(&ds, &ip)?),
                None => None,
            };
            let mut frame = Frame {
                index,
                columns: Vec::new(),
                notes: Vec::new(),
            };
            for name in order {
                if name == index_name {
                    continue;
                }
                match column(h, path, &name)? {
                    Some(values) => frame.push(h, path, name, values)?,
                    None => frame.notes.push(format!(
                        "{}: column {name} of /{path} was skipped (an encoding cellvae does not read)",
                        h.name
                    )),
                }
            }
            Ok(Some(frame))
        }
        Node::Dataset(ds) => compound(h, &ds, path).map(Some),
        Node::Missing => Ok(None),
    }
}

impl Frame {
    /// Adds a column after checking its length against the frame.
    fn push(&mut self, h: &H5, path: &str, name: String, values: ObsValues) -> Result<()> {
        let column = ObsColumn { name, values };
        if let Some(n) = self.len() {
            if column.len() != n {
                return Err(h.err(
                    format!("/{path}/{}", column.name),
                    format!("has {} values but /{path} has {n} rows", column.len()),
                ));
            }
        }
        self.columns.push(column);
        Ok(())
    }
}

/// Gene ids and names for `n` genes from a `var` frame: names from its index (or from a
/// symbol column such as `feature_name` when the index holds ids), ids from `gene_ids`
/// (else the index).
pub(super) fn gene_names(
    h: &H5,
    frame: Option<&Frame>,
    path: &str,
    n: usize,
) -> Result<(Vec<String>, Vec<String>)> {
    let index = match frame.and_then(|f| f.index.clone()) {
        Some(ix) => ix,
        None => (0..n).map(|i| i.to_string()).collect(),
    };
    if index.len() != n {
        return Err(h.err(
            format!("/{path}"),
            format!(
                "names {} genes but the matrix has {n} genes; the file is inconsistent",
                index.len()
            ),
        ));
    }
    let text = |names: &[&str]| -> Option<Vec<String>> {
        let col = frame?
            .columns
            .iter()
            .find(|c| names.contains(&c.name.as_str()))?;
        if matches!(col.values, ObsValues::Numeric(_)) {
            return None;
        }
        Some((0..col.len()).map(|i| col.value_string(i)).collect())
    };
    let ids = text(&["gene_ids", "gene_id"]);
    let symbols = text(&[
        "feature_name",
        "gene_symbols",
        "gene_symbol",
        "gene_name",
        "gene_names",
    ]);
    Ok(match symbols {
        Some(s) => (ids.unwrap_or(index), s),
        None => (ids.unwrap_or_else(|| index.clone()), index),
    })
}

/// Reads one column of a group dataframe (`None`: an encoding not read here).
fn column(h: &H5, frame: &str, name: &str) -> Result<Option<ObsValues>> {
    let p = format!("{frame}/{name}");
    match h.node(&p)? {
        Node::Group(g) => {
            let attrs = g.attrs().map_err(|e| h.fail(&p, e))?;
            let enc = attrs
                .get("encoding-type")
                .and_then(AttrValue::as_str)
                .unwrap_or("");
            let member = |m: &str| h.dataset(&format!("{p}/{m}"));
            if let (Some(cats), Some(codes)) = (member("categories")?, member("codes")?) {
                let levels = h.strings(&cats, &format!("{p}/categories"))?;
                let cp = format!("{p}/codes");
                let codes = h.values(&codes, &cp, None)?;
                return categorical(h, &cp, levels, &codes).map(Some);
            }
            if let (Some(values), Some(mask)) = (member("values")?, member("mask")?) {
                let (vp, mp) = (format!("{p}/values"), format!("{p}/mask"));
                let mask = h.values(&mask, &mp, None)?;
                let masked = |i: usize| mask.get(i) != 0.0;
                let dtype = values.dtype().map_err(|e| h.fail(&vp, e))?;
                if matches!(dtype, DType::String | DType::VariableLengthString) {
                    let mut v = h.strings(&values, &vp)?;
                    v.iter_mut()
                        .enumerate()
                        .filter(|(i, _)| masked(*i))
                        .for_each(|(_, s)| s.clear());
                    return Ok(Some(ObsValues::Text(v)));
                }
                let v = h.values(&values, &vp, None)?;
                if enc == "nullable-boolean" || is_bool(&dtype) {
                    let codes = (0..v.len())
                        .map(|i| (!masked(i)).then_some(u32::from(v.get(i) != 0.0)))
                        .collect();
                    return Ok(Some(bool_levels(codes)));
                }
                let nums = (0..v.len())
                    .map(|i| if masked(i) { f64::NAN } else { v.get(i) })
                    .collect();
                return Ok(Some(ObsValues::Numeric(nums)));
            }
            Ok(None)
        }
        Node::Dataset(ds) => {
            let dtype = ds.dtype().map_err(|e| h.fail(&p, e))?;
            let refs = ds.attr_datatypes().map_err(|e| h.fail(&p, e))?;
            let cp = format!("{frame}/__categories/{name}");
            if refs.contains_key("categories") {
                if let Some(cats) = h.dataset(&cp)? {
                    let levels = h.strings(&cats, &cp)?;
                    let codes = h.values(&ds, &p, None)?;
                    return categorical(h, &p, levels, &codes).map(Some);
                }
            }
            plain(h, &ds, &p, &dtype)
        }
        Node::Missing => Ok(None),
    }
}

/// A column stored as a plain dataset: text, booleans or numbers.
fn plain(h: &H5, ds: &Dataset, p: &str, dtype: &DType) -> Result<Option<ObsValues>> {
    Ok(match dtype {
        DType::String | DType::VariableLengthString => Some(ObsValues::Text(h.strings(ds, p)?)),
        d if is_bool(d) => {
            let v = h.values(ds, p, None)?;
            Some(bool_levels(
                (0..v.len())
                    .map(|i| Some(u32::from(v.get(i) != 0.0)))
                    .collect(),
            ))
        }
        DType::F32
        | DType::F64
        | DType::I8
        | DType::I16
        | DType::I32
        | DType::I64
        | DType::U8
        | DType::U16
        | DType::U32
        | DType::U64 => {
            let v = h.values(ds, p, None)?;
            Some(ObsValues::Numeric((0..v.len()).map(|i| v.get(i)).collect()))
        }
        _ => None,
    })
}

/// Whether a datatype is h5py's boolean (an enum of FALSE and TRUE).
fn is_bool(d: &DType) -> bool {
    matches!(d, DType::Enum(m) if m.len() == 2 && m.iter().all(|n| n == "FALSE" || n == "TRUE"))
}

fn bool_levels(codes: Vec<Option<u32>>) -> ObsValues {
    ObsValues::Categorical {
        levels: vec!["False".into(), "True".into()],
        codes,
    }
}

/// A categorical column from its labels and integer codes (negative = missing).
fn categorical(h: &H5, codes_path: &str, levels: Vec<String>, codes: &Values) -> Result<ObsValues> {
    let mut out = Vec::with_capacity(codes.len());
    for i in 0..codes.len() {
        match codes.int(i) {
            Some(c) if c < 0 => out.push(None),
            Some(c) if (c as u128) < levels.len() as u128 => out.push(Some(c as u32)),
            c => {
                return Err(h.err(
                    format!("dataset /{codes_path}, element {i}"),
                    format!(
                        "category code {} is out of range: there are {} categories",
                        c.map_or_else(|| format!("{}", codes.get(i)), |c| c.to_string()),
                        levels.len()
                    ),
                ))
            }
        }
    }
    Ok(ObsValues::Categorical { levels, codes: out })
}

/// One decoded field of a compound dataframe.
enum Field {
    Text(Vec<String>),
    Int(Vec<i128>),
    Float(Vec<f64>),
    Bool(Vec<i128>),
}

/// The old encoding: one compound dataset, one field per column, `index` the row names.
fn compound(h: &H5, ds: &Dataset, path: &str) -> Result<Frame> {
    let dt = ds.datatype().map_err(|e| h.fail(path, e))?;
    let Datatype::Compound { size, members } = dt else {
        return Err(h.err(
            format!("dataset /{path}"),
            "is neither a dataframe group nor a compound (old AnnData) dataframe",
        ));
    };
    h.check_size(ds, path)?;
    let raw = ds.read_raw().map_err(|e| h.fail(path, e))?;
    let size = size as usize;
    if size == 0 || raw.len() % size != 0 {
        return Err(h.err(
            format!("dataset /{path}"),
            "has records of an inconsistent size",
        ));
    }
    let n = raw.len() / size;
    let mut frame = Frame {
        index: None,
        columns: Vec::new(),
        notes: Vec::new(),
    };
    for m in members {
        let at = |i: usize, w: usize| {
            let start = i * size + m.byte_offset as usize;
            raw.get(start..start + w).unwrap_or(&[])
        };
        let field = match &m.datatype {
            Datatype::String {
                size: w, padding, ..
            } => Field::Text(
                (0..n)
                    .map(|i| fixed_string(at(i, *w as usize), padding))
                    .collect(),
            ),
            Datatype::FixedPoint {
                size: w @ (1 | 2 | 4 | 8),
                byte_order,
                layout,
            } => Field::Int(
                (0..n)
                    .map(|i| int(at(i, *w as usize), byte_order, layout.signed))
                    .collect(),
            ),
            Datatype::FloatingPoint {
                size: w @ (4 | 8),
                byte_order,
                ..
            } => Field::Float(
                (0..n)
                    .map(|i| float(at(i, *w as usize), byte_order))
                    .collect(),
            ),
            Datatype::Enumeration {
                base_type,
                members: em,
                ..
            } if em.len() == 2 => match **base_type {
                Datatype::FixedPoint {
                    size: w @ (1 | 2 | 4 | 8),
                    byte_order,
                    ref layout,
                } => Field::Bool(
                    (0..n)
                        .map(|i| int(at(i, w as usize), &byte_order, layout.signed))
                        .collect(),
                ),
                _ => {
                    frame.notes.push(skipped(h, path, &m.name));
                    continue;
                }
            },
            _ => {
                frame.notes.push(skipped(h, path, &m.name));
                continue;
            }
        };
        let values = match field {
            Field::Text(v) if m.name == "index" => {
                frame.index = Some(v);
                continue;
            }
            Field::Text(v) => ObsValues::Text(v),
            Field::Float(v) => ObsValues::Numeric(v),
            Field::Bool(v) => bool_levels(v.into_iter().map(|c| Some(u32::from(c != 0))).collect()),
            Field::Int(v) => {
                let cp = format!("uns/{}_categories", m.name);
                match h.dataset(&cp)? {
                    Some(cats) => {
                        let levels = h.strings(&cats, &cp)?;
                        let codes = Values::I64(v.iter().map(|&c| c as i64).collect());
                        categorical(h, &format!("{path}, field {}", m.name), levels, &codes)?
                    }
                    None => ObsValues::Numeric(v.into_iter().map(|c| c as f64).collect()),
                }
            }
        };
        frame.push(h, path, m.name.clone(), values)?;
    }
    Ok(frame)
}

fn skipped(h: &H5, path: &str, name: &str) -> String {
    format!(
        "{}: field {name} of /{path} was skipped (a datatype cellvae does not read)",
        h.name
    )
}

/// A fixed-width string field without its padding.
fn fixed_string(b: &[u8], padding: &StringPadding) -> String {
    let end = match padding {
        StringPadding::SpacePad => b
            .iter()
            .rposition(|&c| c != b' ' && c != 0)
            .map_or(0, |p| p + 1),
        _ => b.iter().position(|&c| c == 0).unwrap_or(b.len()),
    };
    String::from_utf8_lossy(b.get(..end).unwrap_or(b)).into_owned()
}

/// The little-endian 8-byte image of a 1-8 byte field (zero when short).
fn le_bytes(b: &[u8], order: &DatatypeByteOrder) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (i, &x) in b.iter().take(8).enumerate() {
        let j = if matches!(order, DatatypeByteOrder::BigEndian) {
            b.len() - 1 - i
        } else {
            i
        };
        if let Some(o) = out.get_mut(j) {
            *o = x;
        }
    }
    out
}

fn int(b: &[u8], order: &DatatypeByteOrder, signed: bool) -> i128 {
    let u = u64::from_le_bytes(le_bytes(b, order));
    let bits = (b.len().clamp(1, 8) * 8) as u32;
    if signed && bits < 64 && (u >> (bits - 1)) & 1 == 1 {
        (u as i128) - (1i128 << bits)
    } else if signed && bits == 64 {
        u as i64 as i128
    } else {
        u as i128
    }
}

fn float(b: &[u8], order: &DatatypeByteOrder) -> f64 {
    let x = le_bytes(b, order);
    match b.len() {
        4 => f32::from_le_bytes([x[0], x[1], x[2], x[3]]) as f64,
        8 => f64::from_le_bytes(x),
        _ => f64::NAN,
    }
}
