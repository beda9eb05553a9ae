//! From the files a user gave to one matrix: recognise each file's role, group 10x
//! triplets, read every dataset, concatenate over shared genes with a `sample` column,
//! and join an optional metadata table.

use super::{
    dense, h5, mtx, obs, CountMatrix, InputFile, ObsColumn, ObsTable, ObsValues, ReadOptions,
};
use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};

/// One dataset among the inputs, with the files that make it up.
#[derive(Debug)]
pub enum DatasetFiles<'a> {
    /// Matrix Market, with the 10x side files when present.
    Mtx {
        /// `matrix.mtx(.gz)`.
        matrix: &'a InputFile,
        /// `features.tsv(.gz)` or `genes.tsv(.gz)`.
        features: Option<&'a InputFile>,
        /// `barcodes.tsv(.gz)`.
        barcodes: Option<&'a InputFile>,
    },
    /// A 10x Cell Ranger `.h5`.
    TenxH5(&'a InputFile),
    /// An AnnData `.h5ad`.
    H5ad(&'a InputFile),
    /// A dense CSV / TSV table.
    Dense(&'a InputFile),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Role {
    Matrix,
    Features,
    Barcodes,
}

/// The role of a 10x side file and the prefix it shares with its siblings
/// (`/data/s1/` for `/data/s1/matrix.mtx.gz`, `GSM1_` for `GSM1_barcodes.tsv.gz`).
fn triplet_role(file: &InputFile) -> Option<(Role, String)> {
    let base = file.base_name();
    let name_lower = file.name.to_ascii_lowercase();
    let stripped = name_lower.strip_suffix(".gz").unwrap_or(&name_lower);
    let prefix_len = stripped.len() - base.len();
    let prefix = |suffix_len: usize| file.name[..prefix_len + base.len() - suffix_len].to_string();
    for (suffix, role) in [
        ("matrix.mtx", Role::Matrix),
        ("features.tsv", Role::Features),
        ("genes.tsv", Role::Features),
        ("barcodes.tsv", Role::Barcodes),
    ] {
        if base.ends_with(suffix) {
            return Some((role, prefix(suffix.len())));
        }
    }
    if base.ends_with(".mtx") {
        return Some((Role::Matrix, file.name.clone()));
    }
    None
}

/// A short name for a dataset, used in the `sample` column.
fn sample_name(key: &str) -> String {
    let trimmed = key.trim_end_matches(['/', '\\', '_', '-', '.']);
    let last = trimmed.rsplit(['/', '\\']).next().unwrap_or(trimmed);
    let mut name = last.to_string();
    for ext in [
        ".gz", ".h5ad", ".h5", ".hdf5", ".csv", ".tsv", ".txt", ".mtx",
    ] {
        if let Some(s) = name.strip_suffix(ext) {
            name = s.to_string();
        }
    }
    if name.is_empty() {
        "sample".to_string()
    } else {
        name
    }
}

/// Groups the files into datasets, each with a sample name. Unknown files, side files
/// without a matrix and doubled roles are errors that name the file.
pub fn group_inputs(files: &[InputFile]) -> Result<Vec<(String, DatasetFiles<'_>)>> {
    if files.is_empty() {
        return Err(Error::Config("no input files given".into()));
    }
    let mut out: Vec<(String, DatasetFiles<'_>)> = Vec::new();
    let mut triplets: Vec<(String, [Option<&InputFile>; 3])> = Vec::new();
    for f in files {
        let base = f.base_name();
        if base.ends_with(".h5ad") {
            out.push((sample_name(&f.name), DatasetFiles::H5ad(f)));
        } else if base.ends_with(".h5") || base.ends_with(".hdf5") {
            out.push((sample_name(&f.name), DatasetFiles::TenxH5(f)));
        } else if let Some((role, key)) = triplet_role(f) {
            let slot = match triplets.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    triplets.push((key, [None, None, None]));
                    triplets.len() - 1
                }
            };
            let entry = &mut triplets[slot].1[role as usize];
            if let Some(previous) = entry {
                return Err(Error::input(
                    &f.name,
                    format!("plays the same part as {} (both are {role:?} files of one dataset); give one of them", previous.name),
                ));
            }
            *entry = Some(f);
        } else if base.ends_with(".csv") || base.ends_with(".tsv") || base.ends_with(".txt") {
            out.push((sample_name(&f.name), DatasetFiles::Dense(f)));
        } else {
            return Err(Error::input(
                &f.name,
                "unrecognised file type; cellvae reads .h5ad, 10x .h5, matrix.mtx(.gz) with \
                 features.tsv and barcodes.tsv, and dense .csv/.tsv tables",
            ));
        }
    }
    for (key, [matrix, features, barcodes]) in triplets {
        let Some(matrix) = matrix else {
            let orphan = features
                .or(barcodes)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            return Err(Error::input(
                orphan,
                "is a 10x side file but no matrix.mtx(.gz) with the same prefix was given; \
                 give the matrix, features and barcodes files together",
            ));
        };
        out.push((
            sample_name(&key),
            DatasetFiles::Mtx {
                matrix,
                features,
                barcodes,
            },
        ));
    }
    // Unique sample names.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (name, _) in out.iter_mut() {
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            *name = format!("{name}-{n}");
        }
    }
    Ok(out)
}

fn read_one(dataset: &DatasetFiles<'_>, opts: &ReadOptions) -> Result<CountMatrix> {
    let read = || match dataset {
        DatasetFiles::Mtx {
            matrix,
            features,
            barcodes,
        } => mtx::read_mtx(matrix, *features, *barcodes, opts),
        DatasetFiles::TenxH5(f) => h5::read_10x_h5(f, opts),
        DatasetFiles::H5ad(f) => h5::read_h5ad(f, opts),
        DatasetFiles::Dense(f) => dense::read_dense(f, opts),
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        // A last safety net: a bug in a reader or a library must not crash the tool.
        let name = match dataset {
            DatasetFiles::Mtx { matrix, .. } => matrix.name.clone(),
            DatasetFiles::TenxH5(f) | DatasetFiles::H5ad(f) | DatasetFiles::Dense(f) => {
                f.name.clone()
            }
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(read)) {
            Ok(r) => r,
            Err(_) => Err(Error::input(
                name,
                "the file could not be read (the reader stopped on malformed content); \
                 check that the file is complete and in a supported format",
            )),
        }
    }
    #[cfg(target_arch = "wasm32")]
    read()
}

/// Reads every input into one matrix: several datasets are concatenated over their
/// shared genes (in the first dataset's order) with a `sample` column; `obs_file`, when
/// given, is joined by cell id. The result is validated before it is returned.
pub fn read_inputs(
    files: &[InputFile],
    obs_file: Option<&InputFile>,
    opts: &ReadOptions,
) -> Result<CountMatrix> {
    let groups = group_inputs(files)?;
    let mut parts = Vec::with_capacity(groups.len());
    for (sample, dataset) in &groups {
        parts.push((sample.clone(), read_one(dataset, opts)?));
    }
    let mut m = if parts.len() == 1 {
        parts.pop().map(|(_, m)| m).unwrap_or_default()
    } else {
        concatenate(parts)?
    };
    if let Some(f) = obs_file {
        let (ids, table) = obs::read_obs_table(f)?;
        obs::join_obs(&mut m, &ids, table, &f.name)?;
    }
    m.validate().map_err(|e| {
        Error::Config(format!(
            "internal error: the matrix read is inconsistent ({e}); please report"
        ))
    })?;
    Ok(m)
}

/// Concatenates datasets (cells stacked) over the genes they all share, adding a
/// categorical `sample` column. Fails clearly when they share no gene.
pub fn concatenate(parts: Vec<(String, CountMatrix)>) -> Result<CountMatrix> {
    let key_sets = |by_id: bool| -> Vec<HashSet<&str>> {
        parts
            .iter()
            .map(|(_, m)| {
                let v = if by_id { &m.gene_ids } else { &m.gene_names };
                v.iter().map(String::as_str).collect()
            })
            .collect()
    };
    let shared_in_first = |by_id: bool| -> Vec<usize> {
        let sets = key_sets(by_id);
        let first = &parts[0].1;
        let keys = if by_id {
            &first.gene_ids
        } else {
            &first.gene_names
        };
        (0..first.n_genes)
            .filter(|&g| sets.iter().all(|s| s.contains(keys[g].as_str())))
            .collect()
    };
    let mut by_id = true;
    let mut shared = shared_in_first(true);
    if shared.is_empty() {
        by_id = false;
        shared = shared_in_first(false);
    }
    let names: Vec<&str> = parts.iter().map(|(s, _)| s.as_str()).collect();
    if shared.is_empty() {
        return Err(Error::Config(format!(
            "the inputs ({}) share no gene id or gene name, so they cannot be joined; \
             check that they come from the same organism and annotation",
            names.join(", ")
        )));
    }
    let first = &parts[0].1;
    let keys_first: Vec<String> = shared
        .iter()
        .map(|&g| {
            if by_id {
                first.gene_ids[g].clone()
            } else {
                first.gene_names[g].clone()
            }
        })
        .collect();
    let mut out = CountMatrix {
        n_genes: shared.len(),
        gene_ids: shared.iter().map(|&g| first.gene_ids[g].clone()).collect(),
        gene_names: shared
            .iter()
            .map(|&g| first.gene_names[g].clone())
            .collect(),
        indptr: vec![0],
        ..Default::default()
    };
    let mut notes = Vec::new();
    let mut formats: Vec<String> = Vec::new();
    let mut sources: Vec<String> = Vec::new();
    let mut samples: Vec<String> = Vec::new();
    for (sample, m) in &parts {
        let key_index: HashMap<&str, usize> = (if by_id { &m.gene_ids } else { &m.gene_names })
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let order: Vec<usize> = keys_first
            .iter()
            .filter_map(|k| key_index.get(k.as_str()).copied())
            .collect();
        let sub = m.select_genes(&order);
        let dropped = m.n_genes - sub.n_genes;
        if dropped > 0 {
            notes.push(format!(
                "{sample}: {dropped} of {} genes are not in every input and were left out",
                m.n_genes
            ));
        }
        for c in 0..sub.n_cells {
            let (i, v) = sub.row(c);
            out.indices.extend_from_slice(i);
            out.data.extend_from_slice(v);
            out.indptr.push(out.indices.len());
        }
        out.cell_ids.extend(sub.cell_ids.iter().cloned());
        samples.extend(std::iter::repeat_n(sample.clone(), sub.n_cells));
        out.n_cells += sub.n_cells;
        formats.push(m.format.clone());
        if !m.source.is_empty() && !sources.contains(&m.source) {
            sources.push(m.source.clone());
        }
        notes.extend(m.notes.iter().map(|n| format!("{sample}: {n}")));
    }
    // Unique cell ids: suffix with the sample only when inputs collide.
    let mut seen = HashSet::new();
    if !out.cell_ids.iter().all(|id| seen.insert(id.clone())) {
        for (id, sample) in out.cell_ids.iter_mut().zip(&samples) {
            *id = format!("{id}-{sample}");
        }
        notes.push("cell ids repeat across inputs, so each was suffixed with -<sample>".into());
    }
    out.obs = concat_obs(&parts, out.n_cells);
    if out.obs.get("sample").is_some() {
        notes.push("the inputs' own `sample` column was replaced by the input names".into());
    }
    out.obs
        .insert(ObsColumn::categorical_from_strings("sample", &samples));
    out.format = formats.join("+");
    out.source = sources.join("+");
    out.notes = notes;
    Ok(out)
}

/// The union of the inputs' metadata columns; missing values where an input lacks one.
fn concat_obs(parts: &[(String, CountMatrix)], n_cells: usize) -> ObsTable {
    let mut names: Vec<String> = Vec::new();
    for (_, m) in parts {
        for c in &m.obs.columns {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    let mut table = ObsTable::default();
    for name in names {
        let cols: Vec<Option<&ObsColumn>> = parts.iter().map(|(_, m)| m.obs.get(&name)).collect();
        let all_numeric = cols
            .iter()
            .flatten()
            .all(|c| matches!(c.values, ObsValues::Numeric(_)));
        let values = if all_numeric {
            let mut v = Vec::with_capacity(n_cells);
            for ((_, m), c) in parts.iter().zip(&cols) {
                match c.map(|c| &c.values) {
                    Some(ObsValues::Numeric(x)) => v.extend_from_slice(x),
                    _ => v.extend(std::iter::repeat_n(f64::NAN, m.n_cells)),
                }
            }
            ObsValues::Numeric(v)
        } else {
            let mut v = Vec::with_capacity(n_cells);
            for ((_, m), c) in parts.iter().zip(&cols) {
                for i in 0..m.n_cells {
                    v.push(c.map(|c| c.value_string(i)).unwrap_or_default());
                }
            }
            if cols
                .iter()
                .flatten()
                .any(|c| matches!(c.values, ObsValues::Categorical { .. }))
            {
                ObsColumn::categorical_from_strings(&name, &v).values
            } else {
                ObsValues::Text(v)
            }
        };
        table.columns.push(ObsColumn { name, values });
    }
    table
}

/// Natively: the files `paths` stand for, in order. A folder stands for the 10x triplet
/// in it (`matrix.mtx(.gz)`, `features.tsv(.gz)` or `genes.tsv(.gz)`,
/// `barcodes.tsv(.gz)`).
#[cfg(not(target_arch = "wasm32"))]
pub fn list_paths(paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let shown = p.display().to_string();
        let entries = std::fs::read_dir(p).map_err(|e| Error::Io {
            file: shown.clone(),
            source: e,
        })?;
        let role = |q: &std::path::Path| {
            triplet_role(&InputFile::new(q.display().to_string(), Vec::new())).map(|(r, _)| r)
        };
        let mut found: Vec<std::path::PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|q| q.is_file() && role(q).is_some())
            .collect();
        found.sort();
        if !found.iter().any(|q| role(q) == Some(Role::Matrix)) {
            return Err(Error::input(
                shown,
                "is a folder without a matrix.mtx or matrix.mtx.gz; give a 10x folder or the files themselves",
            ));
        }
        files.extend(found);
    }
    Ok(files)
}

/// Natively: turns paths into input files (read whole; see [`list_paths`]).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_paths(paths: &[std::path::PathBuf]) -> Result<Vec<InputFile>> {
    list_paths(paths)?
        .into_iter()
        .map(|p| {
            let name = p.display().to_string();
            let bytes = std::fs::read(&p).map_err(|e| Error::Io {
                file: name.clone(),
                source: e,
            })?;
            Ok(InputFile::new(name, bytes))
        })
        .collect()
}
