//! Writing a cellvae model as an scvi-tools SCVI `model.pt` (what `model.save(dir)`
//! writes), so that `scvi.model.SCVI.load(dir, adata=...)` loads it: the torch zip
//! (stored entries, CRC-32, torch's `version` and `byteorder` records) and a protocol-2
//! pickle of `model_state_dict` (every tensor of scvi-tools' module, cellvae's parameters
//! mapped back as [`super`] reads them; the library-size encoder and the dispersion
//! decoder, unused with the observed library size, are zero), `var_names` and `attr_dict`
//! (`init_params_` and `registry_` as scvi-tools 1.4 writes them).

use super::pickle::Value;
use crate::error::{Error, Result};
use crate::model::io::ModelFiles;
use crate::model::{Dispersion, Likelihood, Params};

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

fn dict(items: Vec<(&str, Value)>) -> Value {
    Value::Dict(items.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn object(module: &str, name: &str, args: Vec<Value>) -> Value {
    Value::Object {
        callable: Box::new(Value::Global(module.into(), name.into())),
        args: Box::new(Value::Tuple(args)),
        state: None,
        items: Vec::new(),
        list: Vec::new(),
    }
}

/// Protocol-2 pickle bytes of `v` (no memo: every value written where it is used).
pub fn dump(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::None => out.push(b'N'),
        Value::Bool(b) => out.push(if *b { 0x88 } else { 0x89 }),
        Value::Int(i) => {
            if let Ok(small) = i32::try_from(*i) {
                out.push(b'J');
                out.extend_from_slice(&small.to_le_bytes());
            } else {
                out.extend_from_slice(&[0x8a, 8]);
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
        Value::BigInt(b) => {
            out.push(0x8a);
            out.push(b.len().min(255) as u8);
            out.extend_from_slice(&b[..b.len().min(255)]);
        }
        Value::Float(f) => {
            out.push(b'G');
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(t) => {
            out.push(b'X');
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        Value::Bytes(b) => {
            out.push(b'B');
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::List(items) | Value::Set(items) => {
            out.push(b']');
            if !items.is_empty() {
                out.push(b'(');
                items.iter().for_each(|x| dump(x, out));
                out.push(b'e');
            }
        }
        Value::Tuple(items) => {
            if items.is_empty() {
                out.push(b')');
            } else {
                out.push(b'(');
                items.iter().for_each(|x| dump(x, out));
                out.push(b't');
            }
        }
        Value::Dict(items) => {
            out.push(b'}');
            set_items(items, out);
        }
        Value::Global(m, n) => {
            out.push(b'c');
            out.extend_from_slice(m.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(n.as_bytes());
            out.push(b'\n');
        }
        Value::PersId(id) => {
            dump(id, out);
            out.push(b'Q');
        }
        Value::Object {
            callable,
            args,
            state,
            items,
            list,
        } => {
            dump(callable, out);
            dump(args, out);
            out.push(b'R');
            set_items(items, out);
            if !list.is_empty() {
                out.push(b'(');
                list.iter().for_each(|x| dump(x, out));
                out.push(b'e');
            }
            if let Some(st) = state {
                dump(st, out);
                out.push(b'b');
            }
        }
    }
}

fn set_items(items: &[(Value, Value)], out: &mut Vec<u8>) {
    if !items.is_empty() {
        out.push(b'(');
        for (k, v) in items {
            dump(k, out);
            dump(v, out);
        }
        out.push(b'u');
    }
}

/// The tensors of the state dict, in order, with their storages.
struct Tensors {
    entries: Vec<(Value, Value)>,
    storages: Vec<Vec<u8>>,
}

impl Tensors {
    fn push(&mut self, name: String, shape: &[usize], data: Vec<u8>, long: bool) {
        let key = self.storages.len().to_string();
        let numel: usize = shape.iter().product();
        let mut stride = vec![1i64; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * shape[d + 1] as i64;
        }
        let storage = Value::PersId(Box::new(Value::Tuple(vec![
            s("storage"),
            Value::Global(
                "torch".into(),
                if long { "LongStorage" } else { "FloatStorage" }.into(),
            ),
            s(&key),
            s("cpu"),
            Value::Int(numel as i64),
        ])));
        let tensor = object(
            "torch._utils",
            "_rebuild_tensor_v2",
            vec![
                storage,
                Value::Int(0),
                Value::Tuple(shape.iter().map(|&d| Value::Int(d as i64)).collect()),
                Value::Tuple(stride.into_iter().map(Value::Int).collect()),
                Value::Bool(false),
                object("collections", "OrderedDict", vec![]),
            ],
        );
        self.entries.push((s(&name), tensor));
        self.storages.push(data);
    }

    fn f32(&mut self, name: String, shape: &[usize], values: &[f32]) {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.push(name, shape, data, false);
    }

    fn zeros(&mut self, name: String, shape: &[usize]) {
        let n: usize = shape.iter().product();
        self.f32(name, shape, &vec![0.0; n]);
    }
}

/// `model.pt` bytes for `params` with `files`' genes and batches.
pub fn write_scvi_model(files: &ModelFiles, params: &Params) -> Result<Vec<u8>> {
    let c = &params.config;
    let (g, h, z, k) = (c.n_genes, c.n_hidden, c.n_latent, c.n_batches);
    let mut t = Tensors {
        entries: Vec::new(),
        storages: Vec::new(),
    };
    let get = |name: &str| -> Result<(Vec<usize>, &[f32], bool)> {
        let spec = params
            .layout
            .find(name)
            .ok_or_else(|| Error::Config(format!("internal: no tensor {name}")))?;
        let buffer = params.layout.buffers.iter().any(|b| b.name == name);
        let v = if buffer {
            &params.buffers[spec.range()]
        } else {
            &params.values[spec.range()]
        };
        Ok((spec.shape.clone(), v, buffer))
    };
    // Ours [in, out] row-major -> theirs [out, in].
    let linear = |t: &mut Tensors, ours: &str, theirs: &str| -> Result<()> {
        let (shape, w, _) = get(&format!("{ours}.weight"))?;
        let (n_in, n_out) = (shape[0], shape[1]);
        let mut tw = vec![0f32; w.len()];
        for i in 0..n_in {
            for o in 0..n_out {
                tw[o * n_in + i] = w[i * n_out + o];
            }
        }
        t.f32(format!("{theirs}.weight"), &[n_out, n_in], &tw);
        let (_, b, _) = get(&format!("{ours}.bias"))?;
        t.f32(format!("{theirs}.bias"), &[n_out], b);
        Ok(())
    };
    let bn = |t: &mut Tensors, ours: &str, theirs: &str| -> Result<()> {
        for part in ["weight", "bias", "running_mean", "running_var"] {
            let (_, v, _) = get(&format!("{ours}.bn.{part}"))?;
            t.f32(format!("{theirs}.{part}"), &[v.len()], v);
        }
        t.push(
            format!("{theirs}.num_batches_tracked"),
            &[],
            0i64.to_le_bytes().to_vec(),
            true,
        );
        Ok(())
    };
    // px_r first, as scvi-tools orders its module's state dict.
    let (_, lt, _) = get("log_theta")?;
    match c.dispersion {
        Dispersion::Gene => t.f32("px_r".into(), &[g], lt),
        Dispersion::GeneBatch => {
            // ours [batches, genes] -> theirs [genes, batches]
            let mut v = vec![0f32; g * k];
            for b in 0..k {
                for j in 0..g {
                    v[j * k + b] = lt[b * g + j];
                }
            }
            t.f32("px_r".into(), &[g, k], &v);
        }
    }
    for l in 0..c.n_layers {
        let theirs = format!("z_encoder.encoder.fc_layers.Layer {l}");
        linear(
            &mut t,
            &format!("encoder.layers.{l}.linear"),
            &format!("{theirs}.0"),
        )?;
        bn(
            &mut t,
            &format!("encoder.layers.{l}"),
            &format!("{theirs}.1"),
        )?;
    }
    linear(&mut t, "encoder.mean", "z_encoder.mean_encoder")?;
    linear(&mut t, "encoder.var", "z_encoder.var_encoder")?;
    // The library-size encoder (one layer; unused with the observed library size).
    let l_in = c.encoder_in(0);
    t.zeros(
        "l_encoder.encoder.fc_layers.Layer 0.0.weight".into(),
        &[h, l_in],
    );
    t.zeros("l_encoder.encoder.fc_layers.Layer 0.0.bias".into(), &[h]);
    t.f32(
        "l_encoder.encoder.fc_layers.Layer 0.1.weight".into(),
        &[h],
        &vec![1.0; h],
    );
    t.zeros("l_encoder.encoder.fc_layers.Layer 0.1.bias".into(), &[h]);
    t.zeros(
        "l_encoder.encoder.fc_layers.Layer 0.1.running_mean".into(),
        &[h],
    );
    t.f32(
        "l_encoder.encoder.fc_layers.Layer 0.1.running_var".into(),
        &[h],
        &vec![1.0; h],
    );
    t.push(
        "l_encoder.encoder.fc_layers.Layer 0.1.num_batches_tracked".into(),
        &[],
        0i64.to_le_bytes().to_vec(),
        true,
    );
    t.zeros("l_encoder.mean_encoder.weight".into(), &[1, h]);
    t.zeros("l_encoder.mean_encoder.bias".into(), &[1]);
    t.zeros("l_encoder.var_encoder.weight".into(), &[1, h]);
    t.zeros("l_encoder.var_encoder.bias".into(), &[1]);
    for l in 0..c.n_layers {
        let theirs = format!("decoder.px_decoder.fc_layers.Layer {l}");
        linear(
            &mut t,
            &format!("decoder.layers.{l}.linear"),
            &format!("{theirs}.0"),
        )?;
        bn(
            &mut t,
            &format!("decoder.layers.{l}"),
            &format!("{theirs}.1"),
        )?;
    }
    linear(&mut t, "decoder.scale", "decoder.px_scale_decoder.0")?;
    t.zeros("decoder.px_r_decoder.weight".into(), &[g, h]);
    t.zeros("decoder.px_r_decoder.bias".into(), &[g]);
    if c.likelihood == Likelihood::Zinb {
        linear(&mut t, "decoder.dropout", "decoder.px_dropout_decoder")?;
    } else {
        t.zeros("decoder.px_dropout_decoder.weight".into(), &[g, h]);
        t.zeros("decoder.px_dropout_decoder.bias".into(), &[g]);
    }
    let _ = z;
    let mut state_dict = object("collections", "OrderedDict", vec![]);
    if let Value::Object { items, .. } = &mut state_dict {
        items.append(&mut t.entries);
        items.push((
            s("pyro_param_store"),
            dict(vec![
                ("params", dict(vec![])),
                ("constraints", dict(vec![])),
            ]),
        ));
    }
    let names = |v: &[String]| Value::List(v.iter().map(|x| s(x)).collect());
    let likelihood = match c.likelihood {
        Likelihood::Nb => "nb",
        Likelihood::Zinb => "zinb",
        Likelihood::Poisson => "poisson",
    };
    let batch_key = files.batch_key.clone();
    let (batch_mapping, batch_original) = match &batch_key {
        Some(key) => (names(&files.batch_levels), s(key)),
        None => (Value::List(vec![Value::Int(0)]), s("_scvi_batch")),
    };
    let opt = |v: &Option<String>| v.as_ref().map_or(Value::None, |x| s(x));
    let registry = dict(vec![
        ("scvi_version", s("1.4.2")),
        ("model_name", s("SCVI")),
        (
            "setup_args",
            dict(vec![
                ("layer", Value::None),
                ("batch_key", opt(&batch_key)),
                ("labels_key", Value::None),
                ("size_factor_key", Value::None),
                ("categorical_covariate_keys", Value::None),
                ("continuous_covariate_keys", Value::None),
            ]),
        ),
        (
            "field_registries",
            dict(vec![
                (
                    "X",
                    dict(vec![
                        (
                            "data_registry",
                            dict(vec![("attr_name", s("X")), ("attr_key", Value::None)]),
                        ),
                        (
                            "state_registry",
                            dict(vec![
                                ("n_obs", Value::Int(0)),
                                ("n_vars", Value::Int(g as i64)),
                                ("column_names", names(&files.gene_names)),
                            ]),
                        ),
                        (
                            "summary_stats",
                            dict(vec![
                                ("n_vars", Value::Int(g as i64)),
                                ("n_cells", Value::Int(0)),
                            ]),
                        ),
                    ]),
                ),
                (
                    "batch",
                    dict(vec![
                        (
                            "data_registry",
                            dict(vec![
                                ("attr_name", s("obs")),
                                ("attr_key", s("_scvi_batch")),
                            ]),
                        ),
                        (
                            "state_registry",
                            dict(vec![
                                ("categorical_mapping", batch_mapping),
                                ("original_key", batch_original),
                            ]),
                        ),
                        (
                            "summary_stats",
                            dict(vec![("n_batch", Value::Int(k as i64))]),
                        ),
                    ]),
                ),
                (
                    "labels",
                    dict(vec![
                        (
                            "data_registry",
                            dict(vec![
                                ("attr_name", s("obs")),
                                ("attr_key", s("_scvi_labels")),
                            ]),
                        ),
                        (
                            "state_registry",
                            dict(vec![
                                ("categorical_mapping", Value::List(vec![Value::Int(0)])),
                                ("original_key", s("_scvi_labels")),
                            ]),
                        ),
                        ("summary_stats", dict(vec![("n_labels", Value::Int(1))])),
                    ]),
                ),
                (
                    "size_factor",
                    dict(vec![
                        ("data_registry", dict(vec![])),
                        ("state_registry", dict(vec![])),
                        ("summary_stats", dict(vec![])),
                    ]),
                ),
                (
                    "extra_categorical_covs",
                    dict(vec![
                        ("data_registry", dict(vec![])),
                        ("state_registry", dict(vec![])),
                        (
                            "summary_stats",
                            dict(vec![("n_extra_categorical_covs", Value::Int(0))]),
                        ),
                    ]),
                ),
                (
                    "extra_continuous_covs",
                    dict(vec![
                        ("data_registry", dict(vec![])),
                        ("state_registry", dict(vec![])),
                        (
                            "summary_stats",
                            dict(vec![("n_extra_continuous_covs", Value::Int(0))]),
                        ),
                    ]),
                ),
            ]),
        ),
        ("setup_method_name", s("setup_anndata")),
    ]);
    let attr_dict = dict(vec![
        (
            "init_params_",
            dict(vec![
                (
                    "kwargs",
                    dict(vec![(
                        "kwargs",
                        dict(vec![("encode_covariates", Value::Bool(c.encode_batch))]),
                    )]),
                ),
                (
                    "non_kwargs",
                    dict(vec![
                        ("n_hidden", Value::Int(h as i64)),
                        ("n_latent", Value::Int(z as i64)),
                        ("n_layers", Value::Int(c.n_layers as i64)),
                        ("dropout_rate", Value::Float(f64::from(c.dropout_rate))),
                        (
                            "dispersion",
                            s(if c.dispersion == Dispersion::Gene {
                                "gene"
                            } else {
                                "gene-batch"
                            }),
                        ),
                        ("gene_likelihood", s(likelihood)),
                        ("use_observed_lib_size", Value::Bool(true)),
                        ("latent_distribution", s("normal")),
                    ]),
                ),
            ]),
        ),
        ("registry_", registry),
        ("is_trained_", Value::Bool(true)),
        (
            "get_normalized_function_name_",
            s("get_normalized_expression"),
        ),
    ]);
    let root = dict(vec![
        ("model_state_dict", state_dict),
        ("var_names", names(&files.gene_names)),
        ("attr_dict", attr_dict),
    ]);
    let mut pkl = vec![0x80, 2];
    dump(&root, &mut pkl);
    pkl.push(b'.');
    let mut entries: Vec<(String, Vec<u8>)> = vec![("model/data.pkl".into(), pkl)];
    entries.push(("model/byteorder".into(), b"little".to_vec()));
    for (i, data) in t.storages.into_iter().enumerate() {
        entries.push((format!("model/data/{i}"), data));
    }
    entries.push(("model/version".into(), b"3\n".to_vec()));
    Ok(zip_stored(&entries))
}

/// A zip of stored (uncompressed) entries with CRC-32s, each entry's data aligned to 64
/// bytes as torch aligns them (padding in the local header's extra field).
fn zip_stored(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let crc = crc.sum();
        let offset = out.len() as u32;
        let header_end = out.len() + 30 + name.len();
        let pad = (64 - (header_end + 4) % 64) % 64 + 4;
        let local_extra: Vec<u8> = {
            let mut e = vec![0x46, 0x46];
            e.extend_from_slice(&((pad - 4) as u16).to_le_bytes());
            e.extend(std::iter::repeat_n(b'Z', pad - 4));
            e
        };
        for (buf, central_entry) in [(&mut out, false), (&mut central, true)] {
            buf.extend_from_slice(if central_entry {
                b"PK\x01\x02"
            } else {
                b"PK\x03\x04"
            });
            if central_entry {
                buf.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            buf.extend_from_slice(&20u16.to_le_bytes()); // needed
            buf.extend_from_slice(&0u16.to_le_bytes()); // flags
            buf.extend_from_slice(&0u16.to_le_bytes()); // stored
            buf.extend_from_slice(&0u16.to_le_bytes()); // time
            buf.extend_from_slice(&0x21u16.to_le_bytes()); // date 1980-01-01
            buf.extend_from_slice(&crc.to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            if central_entry {
                buf.extend_from_slice(&0u16.to_le_bytes()); // extra
                buf.extend_from_slice(&0u16.to_le_bytes()); // comment
                buf.extend_from_slice(&0u16.to_le_bytes()); // disk
                buf.extend_from_slice(&0u16.to_le_bytes()); // internal attrs
                buf.extend_from_slice(&0u32.to_le_bytes()); // external attrs
                buf.extend_from_slice(&offset.to_le_bytes());
                buf.extend_from_slice(name.as_bytes());
            } else {
                buf.extend_from_slice(&(local_extra.len() as u16).to_le_bytes());
                buf.extend_from_slice(name.as_bytes());
                buf.extend_from_slice(&local_extra);
                buf.extend_from_slice(data);
            }
        }
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}
