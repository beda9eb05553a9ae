//! The model on disk, the same files natively and in the browser: `model.safetensors`
//! (every tensor by name, f32, shapes as in the layout; buffers included) and
//! `config.json` ([`ModelFiles`]: architecture, genes, batch levels, preprocessing).

use super::{ModelConfig, Params};
use crate::error::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

/// `config.json`: everything needed to use a model on new data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFiles {
    /// Always `cellvae-model`.
    pub format: String,
    /// cellvae version that wrote it.
    pub cellvae_version: String,
    /// Architecture.
    pub model: ModelConfig,
    /// Gene ids, in the model's order (G).
    pub gene_ids: Vec<String>,
    /// Gene names, in the model's order (G).
    pub gene_names: Vec<String>,
    /// Metadata column holding the batch, when there is one.
    pub batch_key: Option<String>,
    /// The batch levels, in code order (K).
    pub batch_levels: Vec<String>,
    /// Preprocessing that chose the genes (free-form, for people).
    pub preprocessing: serde_json::Value,
    /// Training settings (free-form, for people).
    pub training: serde_json::Value,
}

/// Serialises parameters and buffers to safetensors bytes.
pub fn to_safetensors(p: &Params) -> Result<Vec<u8>> {
    let bytes_of = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in &p.layout.tensors {
        owned.push((
            t.name.clone(),
            t.shape.clone(),
            bytes_of(&p.values[t.range()]),
        ));
    }
    for t in &p.layout.buffers {
        owned.push((
            t.name.clone(),
            t.shape.clone(),
            bytes_of(&p.buffers[t.range()]),
        ));
    }
    let mut views = Vec::with_capacity(owned.len());
    for (name, shape, data) in &owned {
        let view = TensorView::new(Dtype::F32, shape.clone(), data)
            .map_err(|e| Error::Config(format!("cannot write tensor {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::tensor::serialize(views, None)
        .map_err(|e| Error::Config(format!("cannot write the model: {e}")))
}

/// Serialises a whole training state (parameters, buffers, Adam moments as
/// `adam_m.<name>` / `adam_v.<name>`, the step and epoch counts as `train.steps_epochs`)
/// to safetensors.
pub fn checkpoint_to_safetensors(state: &crate::model::TrainState) -> Result<Vec<u8>> {
    let p = &state.params;
    let bytes_of = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut owned: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = Vec::new();
    for t in &p.layout.tensors {
        owned.push((
            t.name.clone(),
            t.shape.clone(),
            Dtype::F32,
            bytes_of(&p.values[t.range()]),
        ));
        owned.push((
            format!("adam_m.{}", t.name),
            t.shape.clone(),
            Dtype::F32,
            bytes_of(&state.adam_m[t.range()]),
        ));
        owned.push((
            format!("adam_v.{}", t.name),
            t.shape.clone(),
            Dtype::F32,
            bytes_of(&state.adam_v[t.range()]),
        ));
    }
    for t in &p.layout.buffers {
        owned.push((
            t.name.clone(),
            t.shape.clone(),
            Dtype::F32,
            bytes_of(&p.buffers[t.range()]),
        ));
    }
    let counters: Vec<u8> = [state.steps, state.epochs]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    owned.push(("train.steps_epochs".into(), vec![2], Dtype::U32, counters));
    let mut views = Vec::with_capacity(owned.len());
    for (name, shape, dtype, data) in &owned {
        let view = TensorView::new(*dtype, shape.clone(), data)
            .map_err(|e| Error::Config(format!("cannot write tensor {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    safetensors::tensor::serialize(views, None)
        .map_err(|e| Error::Config(format!("cannot write the checkpoint: {e}")))
}

/// Reads a training state written by [`checkpoint_to_safetensors`].
pub fn checkpoint_from_safetensors(
    bytes: &[u8],
    config: &ModelConfig,
    file: &str,
) -> Result<crate::model::TrainState> {
    // from_safetensors refuses an architecture larger than the file, so Adam's two
    // moments allocated below are at most twice the file's size.
    let params = from_safetensors(bytes, config, file)?;
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::input(file, format!("is not a readable safetensors file ({e})")))?;
    let mut state = crate::model::TrainState::new(params);
    let layout = state.params.layout.clone();
    for t in &layout.tensors {
        for (prefix, out) in [("adam_m", &mut state.adam_m), ("adam_v", &mut state.adam_v)] {
            let name = format!("{prefix}.{}", t.name);
            let v = st.tensor(&name).map_err(|_| {
                Error::input(
                    file,
                    format!("has no tensor {name}: it is a model, not a training checkpoint"),
                )
            })?;
            if v.dtype() != Dtype::F32 || v.shape() != t.shape.as_slice() {
                return Err(Error::input(
                    file,
                    format!("tensor {name} has the wrong type or shape; the checkpoint is damaged"),
                ));
            }
            for (o, c) in out[t.range()].iter_mut().zip(v.data().chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
    }
    let counters = st.tensor("train.steps_epochs").map_err(|_| {
        Error::input(
            file,
            "has no train.steps_epochs: it is not a training checkpoint",
        )
    })?;
    let d = counters.data();
    if counters.dtype() != Dtype::U32 || d.len() != 8 {
        return Err(Error::input(
            file,
            "train.steps_epochs has the wrong type; the checkpoint is damaged",
        ));
    }
    state.steps = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
    state.epochs = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
    Ok(state)
}

/// Reads parameters for `config` from safetensors bytes, checking every tensor's
/// presence, dtype and shape. `file` names the file in errors.
pub fn from_safetensors(bytes: &[u8], config: &ModelConfig, file: &str) -> Result<Params> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        Error::input(
            file,
            format!("is not a readable safetensors file ({e}); export the model again"),
        )
    })?;
    check_room(bytes, config, file)?;
    let mut p = Params::init(config, 0)?;
    let layout = p.layout.clone();
    for (spec, is_buffer) in layout
        .tensors
        .iter()
        .map(|t| (t, false))
        .chain(layout.buffers.iter().map(|t| (t, true)))
    {
        let t = st.tensor(&spec.name).map_err(|_| {
            Error::input(file, format!("has no tensor {} that config.json's architecture needs; the files do not belong together", spec.name))
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != spec.shape.as_slice() {
            return Err(Error::input(
                file,
                format!(
                    "tensor {} is {:?} {:?}, expected F32 {:?}; the files do not belong together",
                    spec.name,
                    t.dtype(),
                    t.shape(),
                    spec.shape
                ),
            ));
        }
        let out = if is_buffer {
            &mut p.buffers[spec.range()]
        } else {
            &mut p.values[spec.range()]
        };
        for (o, c) in out.iter_mut().zip(t.data().chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    if p.values.iter().chain(&p.buffers).any(|v| !v.is_finite()) {
        return Err(Error::input(
            file,
            "holds non-finite parameters (NaN or infinity); the model is damaged",
        ));
    }
    Ok(p)
}

/// Refuses, before anything is allocated, an architecture whose parameter and buffer
/// values (f32) need more bytes than the file has (a small `config.json` can describe a
/// model of gigabytes: 8 layers of 8192 units).
fn check_room(bytes: &[u8], config: &ModelConfig, file: &str) -> Result<()> {
    config.validate()?;
    let layout = super::ParamLayout::new(config);
    let values = layout.n_params as u64 + layout.n_buffers as u64;
    let needed = values.saturating_mul(4);
    if needed > bytes.len() as u64 {
        return Err(Error::input(
            file,
            format!(
                "has {} bytes but the architecture in config.json needs {needed} bytes ({values} \
                 f32 values); the file is truncated or the files do not belong together",
                bytes.len()
            ),
        ));
    }
    Ok(())
}

/// A saved model from its bytes: an scvi-tools `model.pt` (a torch zip, which carries
/// its configuration; `config_json` is not used), or cellvae's `model.safetensors` with
/// the text of its `config.json`. The names are for errors.
pub fn read_model(
    weights: &[u8],
    weights_name: &str,
    config_json: &str,
    config_name: &str,
) -> Result<(ModelFiles, Params)> {
    if super::scvi::is_torch_zip(weights) {
        return super::scvi::read_scvi_model(weights, weights_name);
    }
    let files = read_config(config_json, config_name)?;
    let params = from_safetensors(weights, &files.model, weights_name)?;
    Ok((files, params))
}

/// Reads `config.json` text.
pub fn read_config(text: &str, file: &str) -> Result<ModelFiles> {
    let m: ModelFiles = serde_json::from_str(text).map_err(|e| {
        Error::input_at(
            file,
            format!("line {}, column {}", e.line(), e.column()),
            format!("is not a cellvae config.json: {e}"),
        )
    })?;
    if m.format != "cellvae-model" {
        return Err(Error::input(
            file,
            format!("has format {:?}, expected \"cellvae-model\"", m.format),
        ));
    }
    if m.gene_ids.len() != m.model.n_genes || m.gene_names.len() != m.model.n_genes {
        return Err(Error::input(
            file,
            "lists a different number of genes than its architecture; the file is damaged",
        ));
    }
    let nb = m.model.n_batches;
    if (nb > 1 && m.batch_levels.len() != nb) || m.batch_levels.len() > nb.max(1) {
        return Err(Error::input(
            file,
            format!(
                "lists {} batch levels for a model of {nb} batches; the file is damaged",
                m.batch_levels.len()
            ),
        ));
    }
    m.model.validate()?;
    Ok(m)
}
