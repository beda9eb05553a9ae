//! A synthetic count matrix of any size, for the encoding-at-scale benchmark
//! (`docs/INTEROP.md`, "Encoding at scale") and tests that need many cells.
//!
//! ```text
//! cargo run --release --example synthetic_cells -- CELLS GENES FORMAT OUT [SEED [DENSITY]]
//! ```
//! FORMAT: `h5ad` (CSR X, obs with a `cluster` column), `10x-h5` (Cell Ranger v3) or
//! `mtx` (a 10x folder OUT/ with matrix.mtx, features.tsv and barcodes.tsv, entries
//! ordered by cell as Cell Ranger writes them; written as it is made).
//!
//! Cells belong to 8 clusters, each with its own expression programme over the genes;
//! each cell draws about 8% of the genes (weighted by its cluster's programme) with
//! counts from a geometric distribution: structure a model can learn, at the sparsity
//! of droplet data on highly variable genes. With DENSITY (a share of non-zero values,
//! e.g. 0.55: wide, dense data as deeply sequenced plate-based protocols give) each gene
//! is expressed in a cell with a probability that follows its cluster's programme.

use cellvae::data::h5ad_out::{write_h5ad, H5adContent};
use cellvae::data::{CountMatrix, ObsColumn, ObsTable};
use std::io::Write;

/// A small, fast, deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const CLUSTERS: usize = 8;

/// Per cluster, the cumulative weights of its genes (for drawing genes by weight).
fn programmes(n_genes: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    (0..CLUSTERS)
        .map(|_| {
            let mut acc = 0.0;
            (0..n_genes)
                .map(|g| {
                    // A shared power-law base, and a cluster-specific boost of 1 gene in 10.
                    let base = 1.0 / (1.0 + g as f64).powf(0.6);
                    let boost = if rng.unit() < 0.1 { 8.0 } else { 1.0 };
                    acc += base * boost * (0.5 + rng.unit());
                    acc
                })
                .collect()
        })
        .collect()
}

/// One cell's sorted genes and counts (`density`: 0 for droplet-like sparsity, else the
/// share of genes expressed).
fn cell(cum: &[f64], density: f64, rng: &mut Rng, genes: &mut Vec<u32>, counts: &mut Vec<f32>) {
    genes.clear();
    counts.clear();
    let n_genes = cum.len();
    let total = cum[n_genes - 1];
    if density > 0.0 {
        let mean = total / n_genes as f64;
        let depth = 0.6 + 0.8 * rng.unit();
        for g in 0..n_genes {
            let w = cum[g] - if g == 0 { 0.0 } else { cum[g - 1] };
            if rng.unit() < (density * depth * (w / mean).sqrt()).min(1.0) {
                genes.push(g as u32);
            }
        }
    } else {
        let k = ((n_genes as f64) * (0.04 + 0.08 * rng.unit())) as usize;
        for _ in 0..k.max(1) {
            let u = rng.unit() * total;
            genes.push(cum.partition_point(|&c| c < u).min(n_genes - 1) as u32);
        }
        genes.sort_unstable();
        genes.dedup();
    }
    for _ in 0..genes.len() {
        // Geometric with mean about 2.
        let c = 1.0 + (rng.unit().max(1e-12).ln() / 0.5f64.ln()).floor();
        counts.push(c as f32);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cells, genes, format, out, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: synthetic_cells CELLS GENES h5ad|10x-h5|mtx OUT [SEED [DENSITY]]".into(),
        );
    };
    let (n_cells, n_genes): (usize, usize) = (cells.parse()?, genes.parse()?);
    let seed: u64 = rest.first().map_or(Ok(1), |s| s.parse())?;
    let density: f64 = rest.get(1).map_or(Ok(0.0), |s| s.parse())?;
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let cum = programmes(n_genes, &mut rng);
    let gene_names: Vec<String> = (0..n_genes).map(|g| format!("Gene{g}")).collect();
    let gene_ids: Vec<String> = (0..n_genes).map(|g| format!("ENSG{g:011}")).collect();
    let barcode = |c: usize| format!("CELL{c:08}-1");
    let (mut g, mut v) = (Vec::new(), Vec::new());
    if format == "mtx" {
        // Streamed out: the header needs the number of entries, so cells are drawn
        // twice from the same seed (once to count).
        std::fs::create_dir_all(out)?;
        let dir = std::path::Path::new(out);
        let mut nnz = 0usize;
        let mut count_rng = Rng(rng.0);
        for c in 0..n_cells {
            cell(&cum[c % CLUSTERS], density, &mut count_rng, &mut g, &mut v);
            nnz += g.len();
        }
        let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("matrix.mtx"))?);
        writeln!(w, "%%MatrixMarket matrix coordinate integer general")?;
        writeln!(w, "{n_genes} {n_cells} {nnz}")?;
        for c in 0..n_cells {
            cell(&cum[c % CLUSTERS], density, &mut rng, &mut g, &mut v);
            for (gene, count) in g.iter().zip(&v) {
                writeln!(w, "{} {} {}", gene + 1, c + 1, *count as u32)?;
            }
        }
        w.flush()?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("features.tsv"))?);
        for (id, name) in gene_ids.iter().zip(&gene_names) {
            writeln!(f, "{id}\t{name}\tGene Expression")?;
        }
        f.flush()?;
        let mut b = std::io::BufWriter::new(std::fs::File::create(dir.join("barcodes.tsv"))?);
        for c in 0..n_cells {
            writeln!(b, "{}", barcode(c))?;
        }
        b.flush()?;
        eprintln!("wrote {out}/: {n_cells} cells x {n_genes} genes, {nnz} entries");
        return Ok(());
    }
    let mut m = CountMatrix {
        n_cells,
        n_genes,
        indptr: Vec::with_capacity(n_cells + 1),
        gene_ids,
        gene_names,
        cell_ids: (0..n_cells).map(barcode).collect(),
        ..Default::default()
    };
    m.indptr.push(0);
    for c in 0..n_cells {
        cell(&cum[c % CLUSTERS], density, &mut rng, &mut g, &mut v);
        m.indices.extend_from_slice(&g);
        m.data.extend_from_slice(&v);
        m.indptr.push(m.indices.len());
    }
    let nnz = m.indices.len();
    let bytes = match format.as_str() {
        "h5ad" => {
            let labels: Vec<String> = (0..n_cells)
                .map(|c| format!("cluster{}", c % CLUSTERS))
                .collect();
            m.obs = ObsTable {
                columns: vec![ObsColumn::categorical_from_strings("cluster", &labels)],
            };
            write_h5ad(&H5adContent {
                matrix: &m,
                keep_counts: true,
                obsm: Vec::new(),
                uns: Vec::new(),
            })?
        }
        "10x-h5" => tenx_h5(&m)?,
        other => return Err(format!("unknown format {other}: h5ad, 10x-h5 or mtx").into()),
    };
    std::fs::write(out, &bytes)?;
    eprintln!(
        "wrote {out}: {n_cells} cells x {n_genes} genes, {nnz} entries ({:.1}% non-zero), {} bytes",
        100.0 * nnz as f64 / (n_cells as f64 * n_genes as f64),
        bytes.len()
    );
    Ok(())
}

/// A Cell Ranger v3 `.h5`: genes x cells CSC in `/matrix` (the CSR of cells x genes).
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn tenx_h5(m: &CountMatrix) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    use hdf5_pure::FileBuilder;
    let mut fb = FileBuilder::new();
    let mut g = fb.create_group("matrix");
    let data: Vec<i32> = m.data.iter().map(|&x| x as i32).collect();
    g.create_dataset("data").with_i32_data(&data);
    let idx: Vec<i64> = m.indices.iter().map(|&i| i64::from(i)).collect();
    g.create_dataset("indices").with_i64_data(&idx);
    let ptr: Vec<i64> = m.indptr.iter().map(|&p| p as i64).collect();
    g.create_dataset("indptr").with_i64_data(&ptr);
    g.create_dataset("shape")
        .with_i32_data(&[m.n_genes as i32, m.n_cells as i32]);
    g.create_dataset("barcodes")
        .with_vlen_strings(&strs(&m.cell_ids));
    let mut f = g.create_group("features");
    f.create_dataset("id").with_vlen_strings(&strs(&m.gene_ids));
    f.create_dataset("name")
        .with_vlen_strings(&strs(&m.gene_names));
    let types = vec!["Gene Expression"; m.n_genes];
    f.create_dataset("feature_type").with_vlen_strings(&types);
    g.add_group(f.finish());
    fb.add_group(g.finish());
    Ok(fb.finish()?)
}
