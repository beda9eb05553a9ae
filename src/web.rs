//! The thin wasm-bindgen layer the page calls (the only module that sees JS types).
//! Errors become `JsError` here, in one place; panics are logged by
//! `console_error_panic_hook`.

use crate::backend::{cpu, gpu};
use crate::data::{read_inputs, InputFile, ReadOptions};
use crate::summary::Summary;
use crate::CountMatrix;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn to_js(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

/// Serialises to a plain JS object (maps become objects, as JSON would have them).
fn to_js_value<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

/// Takes a JS array of `{name: string, bytes: Uint8Array}` objects.
fn files_from_js(files: &js_sys::Array) -> Result<Vec<InputFile>, JsError> {
    let mut out = Vec::with_capacity(files.length() as usize);
    for item in files.iter() {
        let name = js_sys::Reflect::get(&item, &"name".into())
            .ok()
            .and_then(|v| v.as_string())
            .ok_or_else(|| JsError::new("each file needs a string `name`"))?;
        let bytes = js_sys::Reflect::get(&item, &"bytes".into())
            .map_err(|_| JsError::new("each file needs `bytes`"))?;
        let bytes = js_sys::Uint8Array::new(&bytes).to_vec();
        out.push(InputFile::new(name, bytes));
    }
    Ok(out)
}

/// A loaded count matrix, held in wasm memory.
#[wasm_bindgen]
pub struct Dataset {
    matrix: CountMatrix,
}

#[wasm_bindgen]
impl Dataset {
    /// The summary (cells, genes, counts, metadata columns, notes) as a JS object.
    pub fn summary(&self) -> Result<JsValue, JsError> {
        to_js_value(&Summary::of(&self.matrix))
    }

    /// Number of cells.
    #[wasm_bindgen(getter)]
    pub fn n_cells(&self) -> usize {
        self.matrix.n_cells
    }

    /// Number of genes.
    #[wasm_bindgen(getter)]
    pub fn n_genes(&self) -> usize {
        self.matrix.n_genes
    }

    /// Gene names (unique).
    pub fn gene_names(&self) -> Vec<String> {
        self.matrix.gene_names.clone()
    }

    /// Cell ids.
    pub fn cell_ids(&self) -> Vec<String> {
        self.matrix.cell_ids.clone()
    }
}

/// Reads the files a user dropped (`[{name, bytes}]`) and an optional metadata table
/// (`{name, bytes}` or `null`) into a [`Dataset`].
#[wasm_bindgen]
pub fn read_files(files: js_sys::Array, obs: JsValue) -> Result<Dataset, JsError> {
    let files = files_from_js(&files)?;
    let obs = if obs.is_null() || obs.is_undefined() {
        None
    } else {
        files_from_js(&js_sys::Array::of1(&obs))?.pop()
    };
    let matrix = read_inputs(&files, obs.as_ref(), &ReadOptions::default()).map_err(to_js)?;
    Ok(Dataset { matrix })
}

/// Checks the GPU path end to end: opens a WebGPU device, runs the `log1p` kernel on
/// `n` values and compares with the CPU twin. Returns `{adapter, n, max_abs_diff}`.
#[wasm_bindgen]
pub async fn gpu_check(n: usize) -> Result<JsValue, JsError> {
    let ctx = gpu::GpuContext::new().await.map_err(to_js)?;
    let x: Vec<f32> = (0..n).map(|i| (i % 97) as f32 * 0.37).collect();
    let got = gpu::kernels::log1p(&ctx, &x).await.map_err(to_js)?;
    let mut want = vec![0.0; n];
    cpu::log1p::log1p(&x, &mut want);
    let max_abs_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let result = serde_json::json!({
        "adapter": ctx.adapter_summary(),
        "n": n,
        "max_abs_diff": max_abs_diff,
    });
    to_js_value(&result)
}
