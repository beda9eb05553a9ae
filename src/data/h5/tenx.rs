//! 10x Genomics Cell Ranger `.h5`: v3 (group `/matrix`, features in `/matrix/features`)
//! and v2 (one group per genome, with `genes` and `gene_names`).

use super::{assemble, finish, read_compressed, shape2, Filled, Node, H5};
use crate::data::{CountMatrix, ReadOptions};
use crate::error::{Error, Result};

/// Everything of a Cell Ranger file besides its counts.
pub(super) struct Header {
    /// The group holding `data`, `indices`, `indptr` (`matrix` for v3).
    pub(super) group: String,
    /// What the file is not when a dataset is missing.
    pub(super) hint: &'static str,
    pub(super) n_cells: usize,
    pub(super) n_genes: usize,
    pub(super) cell_ids: Vec<String>,
    pub(super) gene_ids: Vec<String>,
    pub(super) gene_names: Vec<String>,
    /// `features/feature_type` when present (v3).
    pub(super) types: Option<Vec<String>>,
}

pub(super) fn header(h: &H5) -> Result<Header> {
    let (group, v3) = match h.node("matrix")? {
        Node::Group(_) => ("matrix".to_string(), true),
        _ => (tenx_v2_genome(h)?, false),
    };
    let hint = if v3 {
        "this is not a complete 10x Cell Ranger v3 .h5 file"
    } else {
        "this is not a complete 10x Cell Ranger v2 .h5 file"
    };
    let sp = format!("{group}/shape");
    let shape_ds = h.require(&sp, hint)?;
    let sv = h.values(&shape_ds, &sp, None)?;
    let sv: Option<Vec<i128>> = (0..sv.len()).map(|i| sv.int(i)).collect();
    let (n_genes, n_cells) = shape2(h, &format!("dataset /{sp}"), sv)?;
    let cell_ids = h.strings_n(&format!("{group}/barcodes"), n_cells, hint)?;
    let (id_path, name_path) = if v3 {
        (
            format!("{group}/features/id"),
            format!("{group}/features/name"),
        )
    } else {
        (format!("{group}/genes"), format!("{group}/gene_names"))
    };
    let gene_ids = h.strings_n(&id_path, n_genes, hint)?;
    let gene_names = h.strings_n(&name_path, n_genes, hint)?;
    let tp = format!("{group}/features/feature_type");
    let types = match h.dataset(&tp)? {
        Some(ds) => Some(h.strings(&ds, &tp)?),
        None => None,
    };
    Ok(Header {
        group,
        hint,
        n_cells,
        n_genes,
        cell_ids,
        gene_ids,
        gene_names,
        types,
    })
}

pub(super) fn read(h: &H5, opts: &ReadOptions) -> Result<CountMatrix> {
    let hd = header(h)?;
    let c = read_compressed(
        h,
        &hd.group,
        hd.n_cells,
        hd.n_genes,
        "genes",
        hd.hint,
        opts.allow_non_counts,
    )?;
    let m = assemble(c, true, hd.n_cells, hd.n_genes).map_err(|r| h.err(r.location, r.problem))?;
    let fill = Filled {
        gene_ids: hd.gene_ids,
        gene_names: hd.gene_names,
        cell_ids: hd.cell_ids,
        obs: Default::default(),
        format: "10x-h5",
        source: hd.group,
        notes: Vec::new(),
    };
    let m = finish(h, m, fill)?;
    Ok(match hd.types {
        Some(t) => crate::data::mtx::keep_gene_expression(m, &t, &h.name),
        None => m,
    })
}

/// The genome group of a Cell Ranger v2 file (a root group holding `genes`), or the
/// error for a file that is neither v3 nor v2.
fn tenx_v2_genome(h: &H5) -> Result<String> {
    let root = h.file.root();
    let groups = root.groups().map_err(|e| h.fail("", e))?;
    let mut genomes = Vec::new();
    for g in groups {
        if matches!(h.node(&format!("{g}/genes"))?, Node::Dataset(_)) {
            genomes.push(g);
        }
    }
    genomes.sort();
    match genomes.len() {
        1 => Ok(genomes.remove(0)),
        0 => {
            let looks_h5ad =
                !matches!(h.node("X")?, Node::Missing) || !matches!(h.node("obs")?, Node::Missing);
            let also = if looks_h5ad {
                " it looks like an AnnData file: name it .h5ad"
            } else {
                " export the counts as a Cell Ranger .h5, an .h5ad or a matrix.mtx triplet"
            };
            Err(Error::input(
                &h.name,
                format!("has no group /matrix: this is not a 10x Cell Ranger v3 .h5 file (nor a v2 one);{also}"),
            ))
        }
        _ => Err(Error::input(
            &h.name,
            format!(
                "is a Cell Ranger v2 .h5 with several genomes ({}); cellvae reads one genome: \
                 export it on its own (for example as a matrix.mtx triplet)",
                genomes.join(", ")
            ),
        )),
    }
}
