//! Writing an AnnData `.h5ad` (the on-disk format of anndata 0.8+, encoding 0.1.0 /
//! dataframe 0.2.0) with hdf5-pure's writer: the cells' counts as CSR `X` (or none: a
//! minified file for sharing), `obs` (cell ids, every metadata column: categories,
//! numbers, text), `var` (gene names as the index, `gene_ids`), matrices per cell in
//! `obsm` (the latent means), and text in `uns` (the settings as JSON). Every element
//! carries anndata's `encoding-type` / `encoding-version` attributes, so anndata and
//! scanpy read it as they read their own files; `tests/h5ad_out.rs` reads it back with
//! cellvae's reader and `tests/fixtures/h5ad_out/check_anndata.py` with anndata.

use super::obs::ObsValues;
use super::CountMatrix;
use crate::error::{Error, Result};
use hdf5_pure::{AttrValue, DatasetBuilder, FileBuilder, GroupBuilder};

/// What goes into the file besides the cells and genes of `matrix`.
pub struct H5adContent<'a> {
    /// Cells x genes with their names and metadata.
    pub matrix: &'a CountMatrix,
    /// Write the counts as `X` (false: no `X`, a minified file).
    pub keep_counts: bool,
    /// `obsm` entries: name, values (cells x columns, row-major), columns.
    pub obsm: Vec<(&'a str, &'a [f32], usize)>,
    /// `uns` entries: name, text (one string each).
    pub uns: Vec<(&'a str, String)>,
}

fn text(v: &str) -> AttrValue {
    AttrValue::VarLenString(v.to_string())
}

fn encode(d: &mut DatasetBuilder, kind: &str, version: &str) {
    d.set_attr("encoding-type", text(kind));
    d.set_attr("encoding-version", text(version));
}

fn group_encoding(g: &mut GroupBuilder, kind: &str, version: &str) {
    g.set_attr("encoding-type", text(kind));
    g.set_attr("encoding-version", text(version));
}

fn strings(g: &mut GroupBuilder, name: &str, values: &[String]) {
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let d = g.create_dataset(name);
    d.with_vlen_strings(&refs);
    encode(d, "string-array", "0.2.0");
}

/// A dataframe group: `index` as `_index`, then the columns in order.
fn dataframe(fb: &mut FileBuilder, name: &str, index: &[String], columns: &[(String, Column)]) {
    let mut g = fb.create_group(name);
    group_encoding(&mut g, "dataframe", "0.2.0");
    g.set_attr("_index", text("_index"));
    g.set_attr(
        "column-order",
        AttrValue::VarLenStringArray(columns.iter().map(|(n, _)| n.clone()).collect()),
    );
    strings(&mut g, "_index", index);
    for (col, values) in columns {
        match values {
            Column::Text(v) => strings(&mut g, col, v),
            Column::Numbers(v) => {
                let d = g.create_dataset(col);
                d.with_f64_data(v);
                encode(d, "array", "0.2.0");
            }
            Column::Categories { levels, codes } => {
                let mut c = g.create_group(col);
                group_encoding(&mut c, "categorical", "0.2.0");
                c.set_attr("ordered", AttrValue::U8(0));
                strings(&mut c, "categories", levels);
                let d = c.create_dataset("codes");
                if levels.len() < 128 {
                    let v: Vec<i8> = codes.iter().map(|&x| x as i8).collect();
                    d.with_i8_data(&v);
                } else {
                    d.with_i32_data(codes);
                }
                encode(d, "array", "0.2.0");
                g.add_group(c.finish());
            }
        }
    }
    fb.add_group(g.finish());
}

enum Column {
    Text(Vec<String>),
    Numbers(Vec<f64>),
    Categories {
        levels: Vec<String>,
        codes: Vec<i32>,
    },
}

/// The `.h5ad` bytes of `c`.
pub fn write_h5ad(c: &H5adContent) -> Result<Vec<u8>> {
    let m = c.matrix;
    let fail = |e: String| Error::Config(format!("cannot write the .h5ad: {e}"));
    let mut fb = FileBuilder::new();
    fb.set_attr("encoding-type", text("anndata"));
    fb.set_attr("encoding-version", text("0.1.0"));
    if c.keep_counts {
        let mut x = fb.create_group("X");
        group_encoding(&mut x, "csr_matrix", "0.1.0");
        x.set_attr(
            "shape",
            AttrValue::I64Array(vec![m.n_cells as i64, m.n_genes as i64]),
        );
        let d = x.create_dataset("data");
        d.with_f32_data(&m.data);
        encode(d, "array", "0.2.0");
        let idx: Vec<i32> = m.indices.iter().map(|&i| i as i32).collect();
        let d = x.create_dataset("indices");
        d.with_i32_data(&idx);
        encode(d, "array", "0.2.0");
        let ptr: Vec<i64> = m.indptr.iter().map(|&p| p as i64).collect();
        let d = x.create_dataset("indptr");
        d.with_i64_data(&ptr);
        encode(d, "array", "0.2.0");
        fb.add_group(x.finish());
    }
    let obs_columns: Vec<(String, Column)> = m
        .obs
        .columns
        .iter()
        .map(|col| {
            let v = match &col.values {
                ObsValues::Categorical { levels, codes } => Column::Categories {
                    levels: levels.clone(),
                    codes: codes.iter().map(|c| c.map_or(-1, |x| x as i32)).collect(),
                },
                ObsValues::Text(v) => Column::Text(v.clone()),
                ObsValues::Numeric(v) => Column::Numbers(v.clone()),
            };
            (col.name.clone(), v)
        })
        .collect();
    dataframe(&mut fb, "obs", &m.cell_ids, &obs_columns);
    dataframe(
        &mut fb,
        "var",
        &m.gene_names,
        &[("gene_ids".to_string(), Column::Text(m.gene_ids.clone()))],
    );
    let mut obsm = fb.create_group("obsm");
    group_encoding(&mut obsm, "dict", "0.1.0");
    for (name, values, cols) in &c.obsm {
        if values.len() != m.n_cells * cols {
            return Err(fail(format!(
                "obsm {name} has {} values, not {} x {cols}",
                values.len(),
                m.n_cells
            )));
        }
        let d = obsm.create_dataset(name);
        d.with_f32_data(values)
            .with_shape(&[m.n_cells as u64, *cols as u64]);
        encode(d, "array", "0.2.0");
    }
    fb.add_group(obsm.finish());
    let mut uns = fb.create_group("uns");
    group_encoding(&mut uns, "dict", "0.1.0");
    for (name, value) in &c.uns {
        strings(&mut uns, name, std::slice::from_ref(value));
    }
    fb.add_group(uns.finish());
    for empty in ["layers", "obsp", "varm", "varp"] {
        let mut g = fb.create_group(empty);
        group_encoding(&mut g, "dict", "0.1.0");
        fb.add_group(g.finish());
    }
    fb.finish().map_err(|e| fail(e.to_string()))
}
