//! `cellvae encode`: every cell's latent means, a window of cells at a time, so that
//! memory does not grow with the number of cells (`cellvae::data::stream`): each window
//! is read, fitted to the model's genes, encoded (CPU, or GPU with `--backend gpu`) and
//! written to latent.tsv before the next is read.

use super::commands::{emit, load_model, write_h5ad_file};
use cellvae::data::stream::CellStream;
use cellvae::data::CountMatrix;
use cellvae::model::{Backend, GpuBackend, Params, TrainState};
use cellvae::pipeline::fit_to_model;
use cellvae::{Error, Result};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

/// What `cellvae encode` was asked to do.
pub struct EncodeJob<'a> {
    pub model: &'a Path,
    /// latent.tsv here (else standard output).
    pub out: Option<&'a Path>,
    pub out_h5ad: Option<&'a Path>,
    pub drop_counts: bool,
    pub gpu: bool,
    /// Cells read and encoded at a time.
    pub chunk_cells: usize,
}

/// Where the encoder runs; the GPU falls back to the CPU when it fails.
enum Encoder {
    Cpu,
    Gpu(Box<GpuBackend>),
}

pub fn encode(job: &EncodeJob, mut cells: CellStream) -> Result<()> {
    let (files, params) = load_model(job.model)?;
    for note in cells.notes() {
        eprintln!("note: {note}");
    }
    let z = files.model.n_latent;
    let mut encoder = if job.gpu {
        let mut gpu = cellvae::block_on(GpuBackend::create())?;
        cellvae::block_on(gpu.load(&TrainState::new(params.clone())))?;
        eprintln!("encoding on {}", gpu.adapter());
        Encoder::Gpu(Box::new(gpu))
    } else {
        Encoder::Cpu
    };
    let mut tsv = Output::open(job.out)?;
    let mut header = String::from("cell_id");
    for j in 1..=z {
        let _ = write!(header, "\tz{j}");
    }
    header.push('\n');
    tsv.write(&header)?;
    // What the .h5ad needs, gathered as the windows pass (counts only when kept).
    let mut kept: Option<(CountMatrix, Vec<f32>)> = None;
    let bar = indicatif::ProgressBar::new(cells.n_cells() as u64);
    let started = std::time::Instant::now();
    let mut n_cells = 0usize;
    while let Some(chunk) = cells.next_chunk(job.chunk_cells)? {
        let (m, codes) = fit_to_model(&files, &chunk)?;
        drop(chunk);
        let mean = encode_window(&mut encoder, &params, &m, &codes, &bar)?;
        tsv.write(&latent_rows(&m.cell_ids, &mean, z))?;
        n_cells += m.n_cells;
        bar.inc(m.n_cells as u64);
        if job.out_h5ad.is_some() {
            let mut m = m;
            if job.drop_counts {
                m.indptr = vec![0; m.n_cells + 1];
                m.indices.clear();
                m.data.clear();
            }
            match &mut kept {
                None => kept = Some((m, mean)),
                Some((all, all_mean)) => {
                    all.append(m)?;
                    all_mean.extend(mean);
                }
            }
        }
    }
    bar.finish_and_clear();
    tsv.finish()?;
    let secs = started.elapsed().as_secs_f64();
    if let (Some(path), Some((m, mean))) = (job.out_h5ad, &kept) {
        let settings = serde_json::json!({
            "model": files.model,
            "batch_key": files.batch_key,
            "encoded_with": job.model.display().to_string(),
        });
        write_h5ad_file(path, m, mean, z, !job.drop_counts, settings)?;
    }
    eprintln!(
        "encoded {n_cells} cells in {secs:.2} s ({:.0} cells/s) on the {}, {} cells at a time{}{}",
        n_cells as f64 / secs.max(1e-9),
        match encoder {
            Encoder::Cpu => "CPU",
            Encoder::Gpu(_) => "GPU",
        },
        job.chunk_cells,
        if cells.streamed() {
            ", streamed from disk"
        } else {
            ", the data read whole"
        },
        match peak_rss_bytes() {
            Some(b) => format!("; peak memory {:.0} MB", b as f64 / 1e6),
            None => String::new(),
        }
    );
    Ok(())
}

/// Latent means of every cell of `m`; a GPU failure switches to the CPU for good (said
/// once on standard error) and encodes this window again there.
fn encode_window(
    encoder: &mut Encoder,
    params: &Params,
    m: &CountMatrix,
    codes: &[u32],
    bar: &indicatif::ProgressBar,
) -> Result<Vec<f32>> {
    let cells: Vec<usize> = (0..m.n_cells).collect();
    if let Encoder::Gpu(gpu) = encoder {
        match cellvae::block_on(gpu.latent(m, codes, &cells)) {
            Ok(mean) => return Ok(mean),
            Err(Error::Gpu(why)) => {
                bar.suspend(|| {
                    eprintln!("warning: the GPU failed ({why}); encoding the rest on the CPU")
                });
                *encoder = Encoder::Cpu;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cellvae::eval::latent(params, m, codes, &cells).0)
}

/// latent.tsv rows: each cell's id and latent means. Ids with a tab, quote or line
/// break are quoted (RFC 4180): the columns hold.
pub fn latent_rows(cell_ids: &[String], mean: &[f32], z: usize) -> String {
    let mut tsv = String::new();
    for (id, row) in cell_ids.iter().zip(mean.chunks_exact(z.max(1))) {
        tsv.push_str(&cellvae::data::quote_field(id, '\t'));
        for v in row {
            let _ = write!(tsv, "\t{v}");
        }
        tsv.push('\n');
    }
    tsv
}

/// latent.tsv as it is written: a file, or standard output.
enum Output {
    File(std::io::BufWriter<std::fs::File>, String),
    Stdout,
}

impl Output {
    fn open(path: Option<&Path>) -> Result<Output> {
        Ok(match path {
            Some(p) => {
                let f = std::fs::File::create(p).map_err(|e| Error::Io {
                    file: p.display().to_string(),
                    source: e,
                })?;
                Output::File(std::io::BufWriter::new(f), p.display().to_string())
            }
            None => Output::Stdout,
        })
    }

    fn write(&mut self, text: &str) -> Result<()> {
        match self {
            Output::File(w, name) => w.write_all(text.as_bytes()).map_err(|e| Error::Io {
                file: name.clone(),
                source: e,
            }),
            Output::Stdout => emit(text),
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Output::File(mut w, name) => w.flush().map_err(|e| Error::Io {
                file: name,
                source: e,
            }),
            Output::Stdout => Ok(()),
        }
    }
}

/// The process's peak resident memory (Linux: `VmHWM` of /proc/self/status).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
