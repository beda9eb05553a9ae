//! scvi-tools SCVI models (`model.save(dir)` writes `dir/model.pt`) read into cellvae's
//! parameters and `config.json`, from bytes (natively and in wasm32).
//!
//! `model.pt` is a torch zip ([`zip`]) whose `data.pkl` ([`pickle`], read without
//! executing anything) holds `model_state_dict` (tensors whose storages are the zip's
//! `data/<key>` entries), `var_names` (the genes, a numpy array) and `attr_dict`
//! (`init_params_`: n_hidden, n_latent, n_layers, dropout_rate, dispersion,
//! gene_likelihood, use_observed_lib_size, latent_distribution and the keyword
//! arguments; `registry_`: the batch key and its categories). The mapping:
//!
//! | cellvae | scvi-tools |
//! |---|---|
//! | `encoder.layers.{l}.linear` | `z_encoder.encoder.fc_layers.Layer {l}.0` (weights transposed) |
//! | `encoder.layers.{l}.bn` | `z_encoder.encoder.fc_layers.Layer {l}.1` (+ running statistics) |
//! | `encoder.mean`, `encoder.var` | `z_encoder.mean_encoder`, `z_encoder.var_encoder` |
//! | `decoder.layers.{l}.linear`, `.bn` | `decoder.px_decoder.fc_layers.Layer {l}.0`, `.1` |
//! | `decoder.scale` | `decoder.px_scale_decoder.0` |
//! | `decoder.dropout` (ZINB) | `decoder.px_dropout_decoder` |
//! | `log_theta` (rows x genes) | `px_r` (genes, or genes x batches) |
//!
//! What cellvae does not model is refused with the setting named: a latent library size
//! (`use_observed_lib_size=False`), a log-normal latent, extra categorical or continuous
//! covariates, gene-label or gene-cell dispersion, layer norm or no batch norm, and a
//! decoder that sees the batch only in its first layer.

pub mod pickle;
pub mod write;
pub mod zip;

use super::io::ModelFiles;
use super::{Dispersion, Likelihood, ModelConfig, Params};
use crate::error::{Error, Result};
use pickle::Value;

/// The largest `data.pkl` read (the pickle of a model's metadata and history).
const MAX_PICKLE_BYTES: usize = 256 << 20;

/// A PyTorch zip file, told apart from cellvae's safetensors by its first bytes.
pub fn is_torch_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Reads an scvi-tools SCVI `model.pt` (the file `name`, for errors): cellvae's
/// `config.json` content and parameters.
pub fn read_scvi_model(bytes: &[u8], name: &str) -> Result<(ModelFiles, Params)> {
    let archive = zip::Archive::open(bytes, name)?;
    let pkl = archive.find("data.pkl").ok_or_else(|| {
        Error::input(
            name,
            "is a zip file without data.pkl: not a PyTorch model file; give the model.pt that scvi-tools' model.save wrote",
        )
    })?;
    let data = archive.read(pkl, name, MAX_PICKLE_BYTES)?;
    let root =
        pickle::read(&data).map_err(|e| Error::input(name, format!("{e}; the file is damaged")))?;
    let bad = |what: String| Error::input(name, what);
    let state = root.get("model_state_dict").ok_or_else(|| {
        bad("has no model_state_dict: not a model saved by scvi-tools' model.save".into())
    })?;
    let attrs = root.get("attr_dict").ok_or_else(|| {
        bad("has no attr_dict: not a model saved by scvi-tools' model.save".into())
    })?;
    let genes = strings(
        root.get("var_names")
            .ok_or_else(|| bad("has no var_names".into()))?,
    )
    .ok_or_else(|| bad("has var_names that are not a list of names".into()))?;
    let (config, batch_key, batch_levels) = config_of(attrs, genes.len(), name)?;
    let mut params = Params::init(&config, 0)?;
    let tensor = |key: &str| -> Result<(Vec<usize>, Vec<f32>)> {
        let v = state
            .get(key)
            .ok_or_else(|| bad(format!("has no tensor {key:?}, which this architecture needs; the file is damaged or not an SCVI model")))?;
        read_tensor(v, &archive, key, name)
    };
    let layout = params.layout.clone();
    let mut put = |ours: &str, theirs: &str, transpose: bool, into_buffers: bool| -> Result<()> {
        let spec = layout
            .find(ours)
            .ok_or_else(|| Error::Config(format!("internal: no tensor {ours}")))?;
        let (shape, values) = tensor(theirs)?;
        let want: Vec<usize> = if transpose {
            spec.shape.iter().rev().copied().collect()
        } else {
            spec.shape.clone()
        };
        let same = shape == want
            || (shape.iter().product::<usize>() == spec.len()
                && shape.len() == 1
                && want.len() == 2
                && want[0] == 1);
        if !same {
            return Err(bad(format!(
                "has {theirs} of shape {shape:?} where the architecture in its attr_dict needs {want:?}; the file is damaged"
            )));
        }
        let out = if into_buffers {
            &mut params.buffers[spec.range()]
        } else {
            &mut params.values[spec.range()]
        };
        if transpose {
            // theirs [out, in] row-major -> ours [in, out]
            let (n_out, n_in) = (want[0], want[1]);
            for o in 0..n_out {
                for i in 0..n_in {
                    out[i * n_out + o] = values[o * n_in + i];
                }
            }
        } else {
            out.copy_from_slice(&values);
        }
        Ok(())
    };
    let layer = |put: &mut dyn FnMut(&str, &str, bool, bool) -> Result<()>,
                 ours: &str,
                 theirs: &str|
     -> Result<()> {
        put(
            &format!("{ours}.linear.weight"),
            &format!("{theirs}.0.weight"),
            true,
            false,
        )?;
        put(
            &format!("{ours}.linear.bias"),
            &format!("{theirs}.0.bias"),
            false,
            false,
        )?;
        put(
            &format!("{ours}.bn.weight"),
            &format!("{theirs}.1.weight"),
            false,
            false,
        )?;
        put(
            &format!("{ours}.bn.bias"),
            &format!("{theirs}.1.bias"),
            false,
            false,
        )?;
        put(
            &format!("{ours}.bn.running_mean"),
            &format!("{theirs}.1.running_mean"),
            false,
            true,
        )?;
        put(
            &format!("{ours}.bn.running_var"),
            &format!("{theirs}.1.running_var"),
            false,
            true,
        )
    };
    for l in 0..config.n_layers {
        layer(
            &mut put,
            &format!("encoder.layers.{l}"),
            &format!("z_encoder.encoder.fc_layers.Layer {l}"),
        )?;
        layer(
            &mut put,
            &format!("decoder.layers.{l}"),
            &format!("decoder.px_decoder.fc_layers.Layer {l}"),
        )?;
    }
    for (ours, theirs) in [
        ("encoder.mean", "z_encoder.mean_encoder"),
        ("encoder.var", "z_encoder.var_encoder"),
        ("decoder.scale", "decoder.px_scale_decoder.0"),
    ] {
        put(
            &format!("{ours}.weight"),
            &format!("{theirs}.weight"),
            true,
            false,
        )?;
        put(
            &format!("{ours}.bias"),
            &format!("{theirs}.bias"),
            false,
            false,
        )?;
    }
    if config.likelihood == Likelihood::Zinb {
        put(
            "decoder.dropout.weight",
            "decoder.px_dropout_decoder.weight",
            true,
            false,
        )?;
        put(
            "decoder.dropout.bias",
            "decoder.px_dropout_decoder.bias",
            false,
            false,
        )?;
    }
    // px_r: (genes,) for one dispersion per gene, (genes, batches) per gene and batch.
    put(
        "log_theta",
        "px_r",
        config.dispersion == Dispersion::GeneBatch,
        false,
    )?;
    if params
        .values
        .iter()
        .chain(&params.buffers)
        .any(|v| !v.is_finite())
    {
        return Err(bad(
            "holds values that are not finite numbers; the model diverged or the file is damaged"
                .into(),
        ));
    }
    let files = ModelFiles {
        format: "cellvae-model".into(),
        cellvae_version: env!("CARGO_PKG_VERSION").into(),
        model: config,
        gene_ids: genes.clone(),
        gene_names: genes,
        batch_key,
        batch_levels,
        preprocessing: serde_json::json!({ "source": "scvi-tools model.pt", "file": name }),
        training: serde_json::json!({ "trained_by": "scvi-tools" }),
    };
    Ok((files, params))
}

/// The architecture from `attr_dict`, with the batch key and levels.
fn config_of(
    attrs: &Value,
    n_genes: usize,
    name: &str,
) -> Result<(ModelConfig, Option<String>, Vec<String>)> {
    let bad = |what: String| Error::input(name, what);
    let unsupported = |setting: &str, what: &str| {
        Error::input(
            name,
            format!("is an scvi-tools model with {setting}: {what}, which cellvae does not model; train it with the default for that setting"),
        )
    };
    let init = attrs
        .get("init_params_")
        .ok_or_else(|| bad("has no init_params_ in its attr_dict".into()))?;
    let non_kw = init
        .get("non_kwargs")
        .ok_or_else(|| bad("has no init_params_.non_kwargs".into()))?;
    let kw = init.get("kwargs").and_then(|k| k.get("kwargs"));
    let int = |k: &str, default: i64| non_kw.get(k).and_then(Value::as_int).unwrap_or(default);
    let text = |k: &str, default: &str| {
        non_kw
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let kwarg = |k: &str| kw.and_then(|kw| kw.get(k));
    let registry = attrs
        .get("registry_")
        .ok_or_else(|| bad("has no registry_ in its attr_dict".into()))?;
    let fields = registry.get("field_registries");
    let stat = |field: &str, key: &str| {
        fields
            .and_then(|f| f.get(field))
            .and_then(|f| f.get("summary_stats"))
            .and_then(|s| s.get(key))
            .and_then(Value::as_int)
            .unwrap_or(0)
    };
    if let Some(model) = registry.get("model_name").and_then(Value::as_str) {
        if model != "SCVI" {
            return Err(bad(format!(
                "is an scvi-tools {model} model; cellvae reads SCVI models"
            )));
        }
    }
    if non_kw.get("use_observed_lib_size").and_then(Value::as_int) == Some(0) {
        return Err(unsupported(
            "use_observed_lib_size=False",
            "a latent library size",
        ));
    }
    let latent = text("latent_distribution", "normal");
    if latent != "normal" {
        return Err(unsupported(
            &format!("latent_distribution={latent:?}"),
            "a log-normal latent space",
        ));
    }
    if stat("extra_categorical_covs", "n_extra_categorical_covs") > 0 {
        return Err(unsupported(
            "categorical_covariate_keys",
            "extra categorical covariates",
        ));
    }
    if stat("extra_continuous_covs", "n_extra_continuous_covs") > 0 {
        return Err(unsupported(
            "continuous_covariate_keys",
            "extra continuous covariates",
        ));
    }
    let dispersion = match text("dispersion", "gene").as_str() {
        "gene" => Dispersion::Gene,
        "gene-batch" => Dispersion::GeneBatch,
        other => {
            return Err(unsupported(
                &format!("dispersion={other:?}"),
                "a dispersion per gene and label or per gene and cell",
            ))
        }
    };
    let likelihood = match text("gene_likelihood", "zinb").as_str() {
        "nb" => Likelihood::Nb,
        "zinb" => Likelihood::Zinb,
        "poisson" => Likelihood::Poisson,
        other => {
            return Err(unsupported(
                &format!("gene_likelihood={other:?}"),
                "another count likelihood",
            ))
        }
    };
    for (k, default, what) in [
        ("use_layer_norm", "none", "layer normalisation"),
        (
            "use_batch_norm",
            "both",
            "batch normalisation in only one of encoder and decoder, or none",
        ),
    ] {
        if let Some(v) = kwarg(k).and_then(Value::as_str) {
            if v != default {
                return Err(unsupported(&format!("{k}={v:?}"), what));
            }
        }
    }
    let n_batches = stat("batch", "n_batch").max(1) as usize;
    let n_layers = int("n_layers", 1).max(1) as usize;
    if kwarg("deeply_inject_covariates").and_then(Value::as_int) == Some(0)
        && n_batches > 1
        && n_layers > 1
    {
        return Err(unsupported(
            "deeply_inject_covariates=False",
            "a decoder that sees the batch only in its first layer",
        ));
    }
    let dropout = non_kw
        .get("dropout_rate")
        .and_then(Value::as_f64)
        .unwrap_or(0.1) as f32;
    let config = ModelConfig {
        n_genes,
        n_batches,
        n_hidden: int("n_hidden", 128).max(0) as usize,
        n_latent: int("n_latent", 10).max(0) as usize,
        n_layers,
        dropout_rate: dropout,
        likelihood,
        dispersion,
        encode_batch: kwarg("encode_covariates").and_then(Value::as_int) == Some(1),
        ..ModelConfig::scvi_defaults(n_genes, n_batches)
    };
    config
        .validate()
        .map_err(|e| bad(format!("has an architecture cellvae cannot use: {e}")))?;
    let setup = registry.get("setup_args");
    let batch_key = setup
        .and_then(|s| s.get("batch_key"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let levels = fields
        .and_then(|f| f.get("batch"))
        .and_then(|f| f.get("state_registry"))
        .and_then(|s| s.get("categorical_mapping"))
        .and_then(strings)
        .unwrap_or_default();
    let batch_levels = if batch_key.is_some() {
        if levels.len() != n_batches {
            return Err(bad(format!(
                "names {} batch categories for a model of {n_batches} batches; the file is damaged",
                levels.len()
            )));
        }
        levels
    } else {
        vec![String::new()]
    };
    Ok((config, batch_key, batch_levels))
}

/// A list of strings: a Python list or tuple of str, or a numpy array of objects or
/// of fixed-width unicode (`<U`, UTF-32 little-endian).
fn strings(v: &Value) -> Option<Vec<String>> {
    if let Some(items) = v.items() {
        return items
            .iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect();
    }
    let Value::Object {
        callable,
        state: Some(state),
        ..
    } = v
    else {
        return None;
    };
    if !callable.class_name()?.ends_with("multiarray._reconstruct") {
        return None;
    }
    // state: (version, shape, dtype, is_fortran, data)
    let s = state.items()?;
    let shape = s.get(1)?.items()?;
    let n = shape.iter().map(Value::as_int).product::<Option<i64>>()? as usize;
    let dtype = s.get(2)?;
    let kind = match dtype {
        Value::Object { args, .. } => args.items()?.first()?.as_str()?.to_string(),
        _ => return None,
    };
    match s.get(4)? {
        Value::List(items) if kind.starts_with('O') => {
            let out: Option<Vec<String>> = items
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect();
            out.filter(|o| o.len() == n)
        }
        Value::Bytes(b) if kind.starts_with('U') => {
            let width: usize = kind[1..].parse().ok()?;
            if width == 0 || b.len() != n * width * 4 {
                return None;
            }
            Some(
                b.chunks(width * 4)
                    .map(|c| {
                        c.chunks(4)
                            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                            .take_while(|&u| u != 0)
                            .filter_map(char::from_u32)
                            .collect()
                    })
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A float32 tensor: `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
/// whose storage is the zip entry `data/<key>`. Returns (shape, values row-major).
fn read_tensor(
    v: &Value,
    archive: &zip::Archive,
    key: &str,
    name: &str,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let bad = |what: &str| {
        Error::input(
            name,
            format!("tensor {key:?} {what}; the file is damaged or not an SCVI model"),
        )
    };
    let Value::Object { callable, args, .. } = v else {
        return Err(bad("is not a tensor"));
    };
    if !callable
        .class_name()
        .is_some_and(|c| c.starts_with("torch._utils._rebuild_tensor"))
    {
        return Err(bad("is not a tensor"));
    }
    let a = args.items().ok_or_else(|| bad("has no arguments"))?;
    let Some(Value::PersId(pid)) = a.first() else {
        return Err(bad("has no storage"));
    };
    let p = pid.items().ok_or_else(|| bad("has a damaged storage"))?;
    let storage_type = p.get(1).and_then(Value::class_name).unwrap_or_default();
    if !storage_type.ends_with("FloatStorage") {
        return Err(bad(&format!("is stored as {storage_type}, not float32")));
    }
    let storage_key = p
        .get(2)
        .and_then(Value::as_str)
        .ok_or_else(|| bad("has a damaged storage"))?;
    let offset = a
        .get(1)
        .and_then(Value::as_int)
        .filter(|&o| o >= 0)
        .ok_or_else(|| bad("has a damaged offset"))? as usize;
    let dims = |i: usize| -> Option<Vec<usize>> {
        a.get(i)?
            .items()?
            .iter()
            .map(|d| d.as_int().filter(|&x| x >= 0).map(|x| x as usize))
            .collect()
    };
    let shape = dims(2).ok_or_else(|| bad("has a damaged shape"))?;
    let stride = dims(3).ok_or_else(|| bad("has a damaged stride"))?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("is too large"))?;
    // Row-major (contiguous) only, as torch saves a module's parameters.
    let mut expect = 1usize;
    for (d, s) in shape.iter().zip(&stride).rev() {
        if *d > 1 && *s != expect {
            return Err(bad("is not contiguous"));
        }
        expect = expect.saturating_mul(*d);
    }
    let entry = archive
        .find(&format!("data/{storage_key}"))
        .ok_or_else(|| {
            bad(&format!(
                "names storage {storage_key}, which the zip does not hold"
            ))
        })?;
    let bytes = archive.read(entry, name, 1 << 31)?;
    let need = offset
        .checked_add(numel)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| bad("is too large"))?;
    if bytes.len() < need {
        return Err(bad("reaches past its storage"));
    }
    let values = bytes[offset * 4..need]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_attrs() -> (Value, usize) {
        let bytes = include_bytes!("../../../tests/fixtures/scvi/nb_batch/model.pt");
        let archive = zip::Archive::open(bytes, "model.pt").unwrap();
        let pkl = archive
            .read(archive.find("data.pkl").unwrap(), "model.pt", 1 << 26)
            .unwrap();
        let root = pickle::read(&pkl).unwrap();
        let n = strings(root.get("var_names").unwrap()).unwrap().len();
        (root.get("attr_dict").unwrap().clone(), n)
    }

    /// Replaces the value at `path` (dict keys) in place.
    fn set(v: &mut Value, path: &[&str], new: Value) {
        let items = match v {
            Value::Dict(items) | Value::Object { items, .. } => items,
            _ => panic!("not a dict at {path:?}"),
        };
        let slot = items
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(path[0]))
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no key {}", path[0]));
        if path.len() == 1 {
            *slot = new;
        } else {
            set(slot, &path[1..], new);
        }
    }

    #[test]
    fn settings_cellvae_does_not_model_are_named() {
        let (attrs, n) = fixture_attrs();
        let (c, key, levels) = config_of(&attrs, n, "model.pt").unwrap();
        assert_eq!(
            (c.n_batches, key.as_deref(), levels.len()),
            (3, Some("phase"), 3)
        );
        for (path, value, expect) in [
            (
                &["init_params_", "non_kwargs", "use_observed_lib_size"][..],
                Value::Bool(false),
                "use_observed_lib_size=False",
            ),
            (
                &["init_params_", "non_kwargs", "latent_distribution"][..],
                Value::Str("ln".into()),
                "log-normal",
            ),
            (
                &["init_params_", "non_kwargs", "dispersion"][..],
                Value::Str("gene-cell".into()),
                "dispersion=\"gene-cell\"",
            ),
            (
                &["init_params_", "non_kwargs", "gene_likelihood"][..],
                Value::Str("normal".into()),
                "gene_likelihood=\"normal\"",
            ),
            (
                &[
                    "registry_",
                    "field_registries",
                    "extra_categorical_covs",
                    "summary_stats",
                    "n_extra_categorical_covs",
                ][..],
                Value::Int(2),
                "categorical_covariate_keys",
            ),
            (
                &[
                    "registry_",
                    "field_registries",
                    "extra_continuous_covs",
                    "summary_stats",
                    "n_extra_continuous_covs",
                ][..],
                Value::Int(1),
                "continuous_covariate_keys",
            ),
            (
                &["registry_", "model_name"][..],
                Value::Str("TOTALVI".into()),
                "TOTALVI",
            ),
        ] {
            let mut a = attrs.clone();
            set(&mut a, path, value);
            let e = config_of(&a, n, "model.pt").unwrap_err().to_string();
            assert!(
                e.contains("model.pt") && e.contains(expect),
                "{path:?}: {e}"
            );
        }
        // Layer norm, through the keyword arguments.
        let mut a = attrs.clone();
        set(
            &mut a,
            &["init_params_", "kwargs", "kwargs"],
            Value::Dict(vec![(
                Value::Str("use_layer_norm".into()),
                Value::Str("both".into()),
            )]),
        );
        let e = config_of(&a, n, "model.pt").unwrap_err().to_string();
        assert!(e.contains("use_layer_norm=\"both\""), "{e}");
    }

    #[test]
    fn damaged_files_are_clear_errors() {
        let bytes = include_bytes!("../../../tests/fixtures/scvi/nb/model.pt");
        for (cut, expect) in [(100, "end of central directory"), (bytes.len() - 10, "")] {
            let e = read_scvi_model(&bytes[..cut], "model.pt")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("model.pt") && e.contains(expect), "{e}");
        }
        // A tensor's storage cut short inside an intact archive: the stored entries are
        // read by their recorded sizes, so zero a storage's name in the directory.
        let mut b = bytes.to_vec();
        let at = memchr::memmem::rfind(&b, b"model/data/0").unwrap();
        b[at + 11] = b'Z';
        let e = read_scvi_model(&b, "model.pt").unwrap_err().to_string();
        assert!(e.contains("which the zip does not hold"), "{e}");
        assert!(!is_torch_zip(b"\x80\x02}q\x00."));
    }
}
