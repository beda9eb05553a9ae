//! Keeping a run and continuing it exactly (the page keeps both in IndexedDB and resumes
//! after a reload): [`Session::checkpoint`] writes the training state
//! (`checkpoint.safetensors`: parameters, batch-norm statistics, Adam's moments, step and
//! epoch) and [`Session::run_record`] the rest of the run as JSON ([`RunRecord`]: the
//! settings as they are now, the position in the epoch, history, recoveries, the training
//! cells, fingerprints of the checkpoint and the data); [`Session::resume`] rebuilds the
//! session from them and `config.json`. The next steps are bit for bit those of the run
//! never interrupted (see [`crate::train::ScheduleRecord`]); `tests/session.rs` checks it.

use super::gpu_run::GpuView;
use super::{Run, Session};
use crate::error::{Error, Result};
use crate::model::io::{checkpoint_from_safetensors, checkpoint_to_safetensors, read_config};
use crate::model::{CpuBackend, ModelConfig, StepLosses};
use crate::pipeline::{prepare_for_model, Prepared};
use crate::train::{Schedule, ScheduleRecord, Trainer};
use crate::CountMatrix;
use serde::{Deserialize, Serialize};

/// The run record's `format`.
pub const RUN_FORMAT: &str = "cellvae-run-1";

/// Losses of the last finite step and its KL weight (what the status shows before the
/// first epoch ends).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastStep {
    /// The minimised objective.
    pub loss: f32,
    /// Reconstruction error per cell.
    pub reconstruction: f32,
    /// KL per cell.
    pub kl: f32,
    /// The KL weight of the step.
    pub kl_weight: f32,
}

/// Everything of a session besides its checkpoint and `config.json` that continuing it
/// exactly needs (JSON, `run.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// Always [`RUN_FORMAT`].
    pub format: String,
    /// cellvae version that wrote it.
    pub cellvae_version: String,
    /// Fingerprint of the checkpoint bytes written with it (a damaged checkpoint, or one
    /// of another moment, does not match).
    pub checkpoint: String,
    /// Fingerprint of the prepared data: genes, counts, batches, training cells.
    pub data: String,
    /// The architecture (`config.json` must describe the same).
    pub model: ModelConfig,
    /// Where the model came from (see [`Session::origin`]).
    pub origin: String,
    /// The label column used for colouring.
    pub label_key: Option<String>,
    /// The training cells, as runs `[start, end)` of input positions.
    pub train_cells: Vec<(usize, usize)>,
    /// The last finite step's losses.
    pub last: Option<LastStep>,
    /// The schedule: settings, position, history, recoveries.
    pub schedule: ScheduleRecord,
}

/// A 64-bit fingerprint (not cryptographic: it finds damage and mix-ups).
struct Print(u64);

impl Print {
    fn new() -> Print {
        Print(0xcbf2_9ce4_8422_2325)
    }

    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 29;
    }

    fn bytes(&mut self, b: &[u8]) {
        self.word(b.len() as u64);
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.word(u64::from_le_bytes(last));
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    let mut p = Print::new();
    p.bytes(bytes);
    p.hex()
}

fn data_fingerprint(d: &Prepared) -> String {
    let m = &d.matrix;
    let mut p = Print::new();
    p.word(m.n_cells as u64);
    p.word(m.n_genes as u64);
    m.indptr.iter().for_each(|&v| p.word(v as u64));
    m.indices.iter().for_each(|&v| p.word(u64::from(v)));
    m.data.iter().for_each(|&v| p.word(u64::from(v.to_bits())));
    m.gene_ids.iter().for_each(|g| p.bytes(g.as_bytes()));
    d.batch_codes.iter().for_each(|&v| p.word(u64::from(v)));
    p.word(d.train_cells.len() as u64);
    d.train_cells.iter().for_each(|&v| p.word(v as u64));
    p.hex()
}

/// Sorted positions as runs `[start, end)`.
fn runs(cells: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &c in cells {
        match out.last_mut() {
            Some(r) if r.1 == c => r.1 = c + 1,
            _ => out.push((c, c + 1)),
        }
    }
    out
}

fn from_runs(runs: &[(usize, usize)], n: usize) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    let mut next = 0;
    for &(a, b) in runs {
        if a < next || b <= a || b > n {
            return Err(Error::input(
                "run.json",
                format!("lists training cells {a}..{b} that the {n} cells of the data cannot have"),
            ));
        }
        out.extend(a..b);
        next = b;
    }
    Ok(out)
}

impl Session {
    /// `checkpoint.safetensors` of the run: parameters, batch-norm statistics, Adam's
    /// moments, steps and epochs. On the CPU the state now; on the GPU the state last read
    /// back whole (after a read-back with no steps, `GpuRun::step(0)`, or at the end of
    /// training: the state now; else the newest snapshot, whose steps a resumed run takes
    /// again). [`Session::run_record`] then gives the record that goes with it. Errors
    /// while GPU steps are in flight or after the GPU failed with nothing to continue.
    pub fn checkpoint(&mut self) -> Result<Vec<u8>> {
        let (state, schedule, last) = match &mut self.run {
            Run::Cpu(t) => (t.checkpoint()?, t.schedule.record(), self.last),
            Run::Gpu(run) => {
                let (state, schedule) = run.checkpoint()?;
                (state, schedule, run.with_view(|v: &GpuView| v.last))
            }
            Run::Failed(_, why) => {
                return Err(Error::Gpu(format!("no training state to keep: {why}")))
            }
        };
        let bytes = checkpoint_to_safetensors(&state)?;
        let data = match &self.data_print {
            Some(p) => p.clone(),
            None => data_fingerprint(&self.data),
        };
        self.data_print = Some(data.clone());
        let record = RunRecord {
            format: RUN_FORMAT.into(),
            cellvae_version: env!("CARGO_PKG_VERSION").into(),
            checkpoint: fingerprint(&bytes),
            data,
            model: self.config.clone(),
            origin: self.origin.clone(),
            label_key: self.label_key.clone(),
            train_cells: runs(&self.data.train_cells),
            last: last.map(|(l, w)| LastStep {
                loss: l.loss,
                reconstruction: l.reconstruction,
                kl: l.kl,
                kl_weight: w,
            }),
            schedule,
        };
        self.saved_record = Some(
            serde_json::to_string(&record)
                .map_err(|e| Error::Config(format!("cannot write the run record: {e}")))?,
        );
        Ok(bytes)
    }

    /// The run record (`run.json`) that goes with the last [`Session::checkpoint`].
    pub fn run_record(&self) -> Result<String> {
        self.saved_record
            .clone()
            .ok_or_else(|| Error::Config("no checkpoint taken yet: take one first".into()))
    }

    /// Continues a kept run on `m` (the data it trained on) from its checkpoint, its
    /// `config.json` and its run record: the session is where the run was (epoch, step,
    /// position in the epoch, history, lr, beta, recoveries) and its next steps are those
    /// the run would have taken. A damaged checkpoint, files that do not belong together
    /// or other data are errors that say which.
    pub fn resume(
        m: &CountMatrix,
        checkpoint: &[u8],
        config_json: &str,
        run_record: &str,
        clock: fn() -> f64,
    ) -> Result<Session> {
        let record: RunRecord = serde_json::from_str(run_record)
            .map_err(|e| Error::input("run.json", format!("is not a cellvae run record ({e})")))?;
        if record.format != RUN_FORMAT {
            return Err(Error::input(
                "run.json",
                format!("has format {:?}, expected {RUN_FORMAT:?}", record.format),
            ));
        }
        let files = read_config(config_json, "config.json")?;
        if files.model != record.model {
            return Err(Error::input(
                "config.json",
                "describes another model than the run record; the files do not belong together",
            ));
        }
        if fingerprint(checkpoint) != record.checkpoint {
            return Err(Error::input(
                "checkpoint.safetensors",
                "is damaged or not the checkpoint this run record was written with",
            ));
        }
        let state =
            checkpoint_from_safetensors(checkpoint, &files.model, "checkpoint.safetensors")?;
        let label_key = record.label_key.clone().filter(|k| m.obs.get(k).is_some());
        let mut prep = prepare_for_model(&files, m, label_key.as_deref(), None)?;
        prep.train_cells = from_runs(&record.train_cells, prep.matrix.n_cells)?;
        prep.heldout_cells.clear();
        if let Ok(report) = serde_json::from_value(files.preprocessing.clone()) {
            prep.report = report;
        }
        let data = data_fingerprint(&prep);
        if data != record.data {
            return Err(Error::Config(
                "these are not the data the kept run trained on (other cells, counts or batches); load those data".into(),
            ));
        }
        let schedule = Schedule::resume_from(
            record.schedule,
            state,
            prep.train_cells.clone(),
            prep.batch_codes.clone(),
            clock,
        )?;
        let trainer = Trainer::from_schedule(CpuBackend::new(), schedule)?;
        let mut s = Session::around(
            prep,
            trainer,
            label_key,
            files.batch_key,
            record.origin,
            clock,
        );
        s.data_print = Some(data);
        s.last = record.last.map(|l| {
            let losses = StepLosses {
                loss: l.loss,
                reconstruction: l.reconstruction,
                kl: l.kl,
                finite: true,
            };
            (losses, l.kl_weight)
        });
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_runs_round_trip_and_refuse_nonsense() {
        let cells = vec![0, 1, 2, 5, 6, 9];
        let r = runs(&cells);
        assert_eq!(r, vec![(0, 3), (5, 7), (9, 10)]);
        assert_eq!(from_runs(&r, 10).unwrap(), cells);
        assert!(from_runs(&r, 9).is_err(), "past the last cell");
        assert!(from_runs(&[(3, 5), (4, 6)], 10).is_err(), "overlapping");
        assert!(from_runs(&[(3, 3)], 10).is_err(), "empty");
    }

    #[test]
    fn a_changed_byte_changes_the_fingerprint() {
        let mut b: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
        let a = fingerprint(&b);
        b[500] ^= 1;
        assert_ne!(fingerprint(&b), a);
        b[500] ^= 1;
        b.push(0);
        assert_ne!(fingerprint(&b), a, "a trailing zero counts");
    }
}
