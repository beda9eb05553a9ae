//! The thin wasm-bindgen layer the page calls: it converts between JS values and the
//! core's types and nothing else (the logic is in [`crate::session`], tested natively).
//! Errors become `JsError` here, in one place; panics are logged by
//! `console_error_panic_hook`. The session's wrappers are in `web/session.rs`.

use crate::backend::gpu;
use crate::data::{read_inputs, InputFile, ReadOptions};
use crate::session::{codec, views};
use crate::summary::Summary;
use crate::CountMatrix;
use wasm_bindgen::prelude::*;

mod session;
pub use session::Session;
/// The threaded build's `initThreadPool(n)`: starts the CPU kernels' pool of n Web Workers.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

fn to_js(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

fn to_js_value<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    // Maps become plain objects, as JSON would have them.
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()))
}

fn rejection(e: crate::Error) -> JsValue {
    JsValue::from(to_js(e))
}

fn seconds_now() -> f64 {
    js_sys::Date::now() / 1000.0
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()` (the page's and the worker's global): milliseconds, sub-ms.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now_ms() -> f64;
}

fn precise_seconds() -> f64 {
    performance_now_ms() / 1000.0
}

/// Settings from JS (`what` names them in an error); null or undefined: the defaults.
fn from_js_or_default<T: Default + serde::de::DeserializeOwned>(
    value: JsValue,
    what: &str,
) -> Result<T, JsError> {
    if value.is_null() || value.is_undefined() {
        return Ok(T::default());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| JsError::new(&format!("{what}: {e}")))
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

    /// This data split into two batches with a simulated batch effect and a `batch`
    /// column (the batch-effect lesson's data; see
    /// [`crate::teach::mixing::simulate_batch_effect`]): stratified by `cell_type` when
    /// the data has it, per-gene factors of log-sd 0.7, seeded.
    pub fn with_simulated_batches(&self, seed: u32) -> Result<Dataset, JsError> {
        let key = self.matrix.obs.get("cell_type").map(|_| "cell_type");
        let (matrix, _) =
            crate::teach::mixing::simulate_batch_effect(&self.matrix, key, 0.7, u64::from(seed))
                .map_err(to_js)?;
        Ok(Dataset { matrix })
    }

    /// The matrix as bytes, to hand it to another thread ([`Dataset::from_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode_matrix(&self.matrix)
    }

    /// Reads what [`Dataset::to_bytes`] wrote (same build only).
    pub fn from_bytes(bytes: &[u8]) -> Result<Dataset, JsError> {
        let matrix = codec::decode_matrix(bytes).map_err(to_js)?;
        Ok(Dataset { matrix })
    }

    /// The matrix as [`Dataset::to_bytes`] writes it, held here to be taken a piece at a
    /// time ([`Encoded::piece`]): the page keeps it as a Blob, never as one large buffer.
    pub fn encode(&self) -> Encoded {
        Encoded {
            bytes: codec::encode_matrix(&self.matrix),
        }
    }

    /// Reads what [`Dataset::encode`] wrote, read back a piece at a time.
    pub fn from_file_bytes(file: FileBytes) -> Result<Dataset, JsError> {
        let matrix = codec::decode_matrix(&file.bytes).map_err(to_js)?;
        Ok(Dataset { matrix })
    }

    /// One gene's normalised expression in every cell: `log1p(count / total * 10^4)`.
    pub fn expression(&self, gene: &str) -> Result<Vec<f32>, JsError> {
        views::expression(&self.matrix, gene).map_err(to_js)
    }
}

/// A matrix encoded by [`Dataset::encode`], handed out a piece at a time.
#[wasm_bindgen]
pub struct Encoded {
    bytes: Vec<u8>,
}

#[wasm_bindgen]
impl Encoded {
    /// Its length in bytes.
    #[wasm_bindgen(getter)]
    pub fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes `start..end` (clamped to the length).
    pub fn piece(&self, start: usize, end: usize) -> Vec<u8> {
        let end = end.min(self.bytes.len());
        self.bytes.get(start.min(end)..end).unwrap_or(&[]).to_vec()
    }
}

/// A file read into the core a piece at a time ([`FileBytes::push`]), so the page never
/// holds the whole file in JS as well: a 400 MB file is in the tab once, not twice.
#[wasm_bindgen]
pub struct FileBytes {
    name: String,
    bytes: Vec<u8>,
    size_bytes: usize,
}

#[wasm_bindgen]
impl FileBytes {
    /// Room for a file of `size_bytes` (its `File.size`), refused with a clear error when
    /// the tab cannot have that much memory.
    #[wasm_bindgen(constructor)]
    pub fn new(name: String, size_bytes: f64) -> Result<FileBytes, JsError> {
        let size = size_bytes.max(0.0) as usize;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(size).map_err(|_| {
            JsError::new(&format!(
                "{name}: this tab cannot set aside memory for a file of {size_bytes} bytes; \
                 use the command line (cellvae) for it, or keep fewer cells or genes"
            ))
        })?;
        Ok(FileBytes {
            name,
            bytes,
            size_bytes: size,
        })
    }

    /// Appends the next piece; more than the declared size is refused (the file
    /// changed while it was read).
    pub fn push(&mut self, piece: &[u8]) -> Result<(), JsError> {
        if self.bytes.len() + piece.len() > self.size_bytes {
            return Err(JsError::new(&format!(
                "{}: the file grew while it was read (more than its {} bytes); \
                 choose it again",
                self.name, self.size_bytes
            )));
        }
        self.bytes.extend_from_slice(piece);
        Ok(())
    }
}

impl From<FileBytes> for InputFile {
    fn from(f: FileBytes) -> InputFile {
        InputFile::new(f.name, f.bytes)
    }
}

/// Reads the files a user dropped and an optional metadata table into a [`Dataset`].
#[wasm_bindgen]
pub fn read_files(files: Vec<FileBytes>, obs: Option<FileBytes>) -> Result<Dataset, JsError> {
    let files: Vec<InputFile> = files.into_iter().map(InputFile::from).collect();
    let obs = obs.map(InputFile::from);
    let matrix = read_inputs(&files, obs.as_ref(), &ReadOptions::default()).map_err(to_js)?;
    Ok(Dataset { matrix })
}

/// Every WGSL kernel (`[{name, source, library}]`): what the page's shader viewer shows.
/// Each kernel's own code is `source` after the library code prepended to it (`library`:
/// `[{name, source}]` of shaders/lib/, in order), so the viewer can show the kernel first.
#[wasm_bindgen]
pub fn shader_sources() -> Result<JsValue, JsError> {
    const LIBS: [(&str, &str); 2] = [
        (
            "lib/philox.wgsl",
            include_str!("../shaders/lib/philox.wgsl"),
        ),
        (
            "lib/counts.wgsl",
            include_str!("../shaders/lib/counts.wgsl"),
        ),
    ];
    let list: Vec<serde_json::Value> = gpu::kernels::SHADERS
        .iter()
        .map(|(name, source)| {
            let mut own: &str = source;
            let mut library = Vec::new();
            for (lib, text) in LIBS {
                if let Some(rest) = own.strip_prefix(text) {
                    own = rest;
                    library.push(serde_json::json!({ "name": lib, "source": text }));
                }
            }
            serde_json::json!({ "name": name, "source": own, "library": library })
        })
        .collect();
    to_js_value(&list)
}

/// A training step of scvi-tools' default model on `dataset` timed by stage on the CPU
/// kernels, as `cellvae bench` times it natively ([`crate::bench`]), and the product
/// peak (a 512^3 sgemm): `{stages: {encoder_s, ...}, step_s, gflops, peak_gflops}`.
#[wasm_bindgen]
pub fn bench_step(dataset: &Dataset) -> Result<JsValue, JsError> {
    let stages = crate::bench::step_stages(&dataset.matrix, precise_seconds).map_err(to_js)?;
    let peak_gflops = crate::bench::sgemm_peak_gflops(512, 3, precise_seconds);
    to_js_value(&serde_json::json!({
        "step_s": stages.step_s(),
        "gflops": stages.gflops(),
        "peak_gflops": peak_gflops,
        "stages": stages,
    }))
}

/// Checks the GPU path end to end: opens a WebGPU device, runs the `log1p` kernel on
/// `n` values and compares with the CPU twin. Resolves to `{adapter, n, max_abs_diff}`.
#[wasm_bindgen]
pub async fn gpu_check(n: usize) -> Result<JsValue, JsError> {
    let ctx = gpu::GpuContext::new().await.map_err(to_js)?;
    let max_abs_diff = gpu::kernels::self_check(&ctx, n).await.map_err(to_js)?;
    to_js_value(&serde_json::json!({
        "adapter": ctx.adapter_summary(),
        "n": n,
        "max_abs_diff": max_abs_diff,
    }))
}
