//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (each includes this
//! file with `#[path]`) and the stable regression tests (`tests/fuzz_regressions.rs`),
//! so a saved finding is replayed exactly as the fuzzer ran it.
//!
//! Every target goes through a public entry point; a panic (or an inconsistent result)
//! is a finding. The limits are low so no input can allocate without bound.

#![allow(dead_code)]

use cellvae::data::{InputFile, Orientation, ReadOptions};

/// Separates the files packed into one fuzz input (`matrix <SEP> features <SEP> barcodes`,
/// `config.json <SEP> model.safetensors`, ...). Seeds are written the same way.
pub const SEP: &[u8] = b"\n--8<--\n";

/// Most bytes a compressed input may expand to under the fuzzer (1 MiB).
pub const FUZZ_MAX_EXPANDED_BYTES: u64 = 1 << 20;
/// Most rows or columns (cells, genes) a header may claim under the fuzzer.
pub const FUZZ_MAX_DIMENSION: u64 = 100_000;

/// A target's body: one fuzz input.
pub type Target = fn(&[u8]);

/// The targets, by name (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[(&str, Target)] = &[
    ("mtx", mtx),
    ("dense", dense),
    ("tenx_h5", tenx_h5),
    ("h5ad", h5ad),
    ("obs", obs),
    ("codec", codec),
    ("model", model),
];

/// Splits `data` at [`SEP`] into at most `n` parts (the last takes the rest).
pub fn split(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < n {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// Read options with the fuzzer's low limits.
pub fn options(allow_non_counts: bool, orientation: Orientation) -> ReadOptions {
    ReadOptions {
        allow_non_counts,
        orientation,
        max_expanded_bytes: Some(FUZZ_MAX_EXPANDED_BYTES),
        max_dimension: Some(FUZZ_MAX_DIMENSION),
    }
}

/// Each input is read strict (as training reads) and lenient (as `inspect` reads), the
/// lenient read with an orientation picked from the input's length.
pub fn option_sets(len: usize) -> [ReadOptions; 2] {
    let orientation = match len % 3 {
        0 => Orientation::Auto,
        1 => Orientation::CellsAsRows,
        _ => Orientation::CellsAsColumns,
    };
    [
        options(false, Orientation::Auto),
        options(true, orientation),
    ]
}

/// Reads through the public entry point; a success must be a consistent matrix (and is
/// summarised, as `inspect` and the page do next); an error must say something.
pub fn read(files: &[InputFile], obs: Option<&InputFile>, opts: &ReadOptions) {
    match cellvae::data::read_inputs(files, obs, opts) {
        Ok(m) => {
            if let Err(e) = m.validate() {
                panic!("read_inputs returned an inconsistent matrix: {e}");
            }
            let _ = cellvae::summary::Summary::of(&m).to_text();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Matrix Market and the 10x triplet grouping. Input: `matrix.mtx [SEP features.tsv
/// [SEP barcodes.tsv]]`, each part plain or gzip; then the matrix alone as `plain.mtx`.
pub fn mtx(data: &[u8]) {
    let parts = split(data, 3);
    let names = [
        "s1/matrix.mtx.gz",
        "s1/features.tsv.gz",
        "s1/barcodes.tsv.gz",
    ];
    let files: Vec<InputFile> = parts
        .iter()
        .zip(names)
        .map(|(p, n)| InputFile::new(n, p.to_vec()))
        .collect();
    for opts in option_sets(data.len()) {
        read(&files, None, &opts);
    }
    let alone = [InputFile::new("plain.mtx", parts[0].to_vec())];
    read(&alone, None, &option_sets(data.len())[1]);
}

/// Dense CSV / TSV (orientation and header detection, quoting), under both names.
pub fn dense(data: &[u8]) {
    for name in ["table.csv", "table.tsv.gz"] {
        let files = [InputFile::new(name, data.to_vec())];
        for opts in option_sets(data.len()) {
            read(&files, None, &opts);
        }
    }
}

/// 10x Cell Ranger `.h5` (hdf5-pure).
pub fn tenx_h5(data: &[u8]) {
    let files = [InputFile::new("sample.h5", data.to_vec())];
    for opts in option_sets(data.len()) {
        read(&files, None, &opts);
    }
}

/// AnnData `.h5ad` (current and old encodings; X, layers/counts, raw/X; obs and var).
pub fn h5ad(data: &[u8]) {
    let files = [InputFile::new("sample.h5ad", data.to_vec())];
    for opts in option_sets(data.len()) {
        read(&files, None, &opts);
    }
}

/// A 5-cell table whose ids are the demo data's first barcodes (so the demo's
/// `cells.tsv` joins).
pub const OBS_MATRIX: &[u8] = b"cell,G1,G2,G3\n\
AAAGCCTGGCTAAC-1,1,0,2\n\
AAATTCGATGCACA-1,0,3,0\n\
AACACGTGGTCTTT-1,4,0,1\n\
AAGTGCACGTGCTA-1,0,0,5\n\
ACACGAACGGAGTG-1,2,2,0\n";

/// The metadata table and its join by cell id. Input: `cells.tsv [SEP matrix.csv]`
/// (without a matrix part, [`OBS_MATRIX`]); the table is read as `.tsv` and `.csv`.
pub fn obs(data: &[u8]) {
    let parts = split(data, 2);
    let matrix = parts.get(1).copied().unwrap_or(OBS_MATRIX);
    let files = [InputFile::new("counts.csv", matrix.to_vec())];
    for name in ["cells.tsv", "cells.csv.gz"] {
        let obs = InputFile::new(name, parts[0].to_vec());
        for opts in option_sets(data.len()) {
            read(&files, Some(&obs), &opts);
        }
    }
}

/// The worker hand-off codec: `decode_matrix` gives a consistent matrix or an error,
/// and a matrix decoded re-encodes to the same bytes.
pub fn codec(data: &[u8]) {
    use cellvae::session::codec::{decode_matrix, encode_matrix};
    if let Ok(m) = decode_matrix(data) {
        if let Err(e) = m.validate() {
            panic!("decode_matrix returned an inconsistent matrix: {e}");
        }
        assert!(
            encode_matrix(&m) == data,
            "decode then encode changed the bytes"
        );
    }
}

/// Model files. Input: `config.json [SEP model.safetensors]`: `read_config`, then
/// `from_safetensors` and `checkpoint_from_safetensors` with its architecture (or a
/// fixed small one when the config is refused, so the tensors are fuzzed either way).
pub fn model(data: &[u8]) {
    use cellvae::model::io::{checkpoint_from_safetensors, from_safetensors, read_config};
    let parts = split(data, 2);
    let text = String::from_utf8_lossy(parts[0]);
    let config = match read_config(&text, "config.json") {
        Ok(files) => files.model,
        Err(_) => small_model(),
    };
    let tensors = parts.get(1).copied().unwrap_or_default();
    let _ = from_safetensors(tensors, &config, "model.safetensors");
    let _ = checkpoint_from_safetensors(tensors, &config, "checkpoint.safetensors");
}

/// The architecture the model target falls back to (and its seeds are written with).
pub fn small_model() -> cellvae::model::ModelConfig {
    let mut c = cellvae::model::ModelConfig::scvi_defaults(4, 2);
    c.n_hidden = 8;
    c.n_latent = 2;
    c
}
