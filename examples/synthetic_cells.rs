//! A synthetic count matrix of any size (`cellvae::data::synthetic`), for the
//! encoding-at-scale measurement (`docs/INTEROP.md`, "Encoding at scale") and the speed
//! comparisons (`docs/SPEED.md`).
//!
//! ```text
//! cargo run --release --example synthetic_cells -- CELLS GENES FORMAT OUT [SEED [DENSITY]]
//! ```
//! FORMAT: `h5ad` (CSR X, obs with a `cluster` column), `10x-h5` (Cell Ranger v3) or
//! `mtx` (a 10x folder OUT/ with matrix.mtx, features.tsv and barcodes.tsv, entries
//! ordered by cell as Cell Ranger writes them; written as it is made). DENSITY: 0 (the
//! default) for droplet-like sparsity, or e.g. 0.78 for about 55% non-zero.

use cellvae::data::h5ad_out::{write_h5ad, H5adContent};
use cellvae::data::synthetic::{barcode, gene_names, matrix, tenx_h5_bytes, Generator};
use std::io::Write;

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
    if format == "mtx" {
        // Streamed out: the header needs the number of entries, so cells are drawn
        // twice from the same seed (once to count).
        std::fs::create_dir_all(out)?;
        let dir = std::path::Path::new(out);
        let (mut g, mut v) = (Vec::new(), Vec::new());
        let mut nnz = 0usize;
        let mut counting = Generator::new(n_genes, density, seed);
        for c in 0..n_cells {
            counting.cell(c, &mut g, &mut v);
            nnz += g.len();
        }
        let mut gen = Generator::new(n_genes, density, seed);
        let mut w = std::io::BufWriter::new(std::fs::File::create(dir.join("matrix.mtx"))?);
        writeln!(w, "%%MatrixMarket matrix coordinate integer general")?;
        writeln!(w, "{n_genes} {n_cells} {nnz}")?;
        for c in 0..n_cells {
            gen.cell(c, &mut g, &mut v);
            for (gene, count) in g.iter().zip(&v) {
                writeln!(w, "{} {} {}", gene + 1, c + 1, *count as u32)?;
            }
        }
        w.flush()?;
        let (ids, names) = gene_names(n_genes);
        let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("features.tsv"))?);
        for (id, name) in ids.iter().zip(&names) {
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
    let m = matrix(n_cells, n_genes, density, seed);
    let bytes = match format.as_str() {
        "h5ad" => write_h5ad(&H5adContent {
            matrix: &m,
            keep_counts: true,
            obsm: Vec::new(),
            uns: Vec::new(),
        })?,
        "10x-h5" => tenx_h5_bytes(&m)?,
        other => return Err(format!("unknown format {other}: h5ad, 10x-h5 or mtx").into()),
    };
    std::fs::write(out, &bytes)?;
    eprintln!(
        "wrote {out}: {n_cells} cells x {n_genes} genes, {} entries ({:.1}% non-zero), {} bytes",
        m.nnz(),
        100.0 * m.nnz() as f64 / (n_cells as f64 * n_genes as f64),
        bytes.len()
    );
    Ok(())
}
