//! Exploring a trained model, for the page and the command line: decode any latent
//! point (with a chosen batch and library size) to proportions and expected counts,
//! traverse between two points or along an axis, sample cells from the prior, and find
//! the nearest real cells to a point.

use crate::backend::cpu::sample;
use crate::error::{Error, Result};
use crate::model::cpu_model::{theta_rows, CpuModel, Mode, Workspace};
use crate::model::{Likelihood, Params};
use crate::rng;

/// Decoded profiles of n latent points (row-major n x G).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Number of points.
    pub n: usize,
    /// Gene proportions rho (rows sum to 1).
    pub proportions: Vec<f32>,
    /// Expected counts: library * rho (times 1 - dropout probability for ZINB).
    pub expected: Vec<f32>,
}

/// A trained model opened for exploration (eval mode: running statistics, no dropout).
pub struct Explorer {
    params: Params,
    ws: Workspace,
}

impl Explorer {
    /// Opens parameters for exploration.
    pub fn new(params: Params) -> Explorer {
        Explorer {
            params,
            ws: Workspace::default(),
        }
    }

    /// The model's parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    fn check(&self, z: &[f32], batch: u32, library: f32) -> Result<usize> {
        let zd = self.params.config.n_latent;
        if z.is_empty() || !z.len().is_multiple_of(zd) {
            return Err(Error::Config(format!(
                "latent points must have {zd} coordinates each"
            )));
        }
        if batch as usize >= self.params.config.n_batches {
            return Err(Error::Config(format!(
                "batch {batch} does not exist (the model has {})",
                self.params.config.n_batches
            )));
        }
        if !(library.is_finite() && library > 0.0) {
            return Err(Error::Config(
                "the library size must be a positive number".into(),
            ));
        }
        if z.iter().any(|v| !v.is_finite()) {
            return Err(Error::Config("latent coordinates must be finite".into()));
        }
        Ok(z.len() / zd)
    }

    /// Decodes latent points `z` (n x Z) for one batch and library size.
    pub fn decode(&mut self, z: &[f32], batch: u32, library: f32) -> Result<Decoded> {
        let n = self.check(z, batch, library)?;
        let g = self.params.config.n_genes;
        let mut proportions = Vec::with_capacity(n * g);
        let mut expected = Vec::with_capacity(n * g);
        let zd = self.params.config.n_latent;
        for chunk in z.chunks(256 * zd) {
            let b = chunk.len() / zd;
            if self.ws.z.len() < chunk.len() {
                self.ws.z.resize(chunk.len(), 0.0);
            }
            self.ws.z[..chunk.len()].copy_from_slice(chunk);
            let batches = vec![batch; b];
            CpuModel::decode(&mut self.params, &mut self.ws, &batches, b, Mode::Eval);
            proportions.extend_from_slice(&self.ws.rho[..b * g]);
            for i in 0..b * g {
                let keep = match self.params.config.likelihood {
                    Likelihood::Zinb => 1.0 / (1.0 + self.ws.pi[i].exp()),
                    _ => 1.0,
                };
                expected.push(library * self.ws.rho[i] * keep);
            }
        }
        Ok(Decoded {
            n,
            proportions,
            expected,
        })
    }

    /// `steps` points evenly from `from` to `to` (both ends included), decoded.
    pub fn traverse_line(
        &mut self,
        from: &[f32],
        to: &[f32],
        steps: usize,
        batch: u32,
        library: f32,
    ) -> Result<(Vec<f32>, Decoded)> {
        let zd = self.params.config.n_latent;
        if from.len() != zd || to.len() != zd || steps < 2 {
            return Err(Error::Config(format!(
                "a traversal needs two points of {zd} coordinates and at least 2 steps"
            )));
        }
        let mut pts = Vec::with_capacity(steps * zd);
        for s in 0..steps {
            let t = s as f32 / (steps - 1) as f32;
            pts.extend(from.iter().zip(to).map(|(a, b)| a + t * (b - a)));
        }
        let d = self.decode(&pts, batch, library)?;
        Ok((pts, d))
    }

    /// Moves along latent axis `axis` from `lo` to `hi` through `origin`, decoded.
    #[allow(clippy::too_many_arguments)]
    pub fn traverse_axis(
        &mut self,
        origin: &[f32],
        axis: usize,
        lo: f32,
        hi: f32,
        steps: usize,
        batch: u32,
        library: f32,
    ) -> Result<(Vec<f32>, Decoded)> {
        if axis >= self.params.config.n_latent {
            return Err(Error::Config(format!(
                "axis {axis} does not exist (the model has {} latent dimensions)",
                self.params.config.n_latent
            )));
        }
        let (mut a, mut b) = (origin.to_vec(), origin.to_vec());
        if a.len() != self.params.config.n_latent {
            return Err(Error::Config(
                "the origin has the wrong number of coordinates".into(),
            ));
        }
        a[axis] = lo;
        b[axis] = hi;
        self.traverse_line(&a, &b, steps, batch, library)
    }

    /// `n` cells from the prior: z ~ N(0, I), their expected profiles, and counts drawn
    /// from the model's likelihood (seeded).
    pub fn sample_prior(
        &mut self,
        n: usize,
        batch: u32,
        library: f32,
        seed: u64,
    ) -> Result<(Vec<f32>, Decoded, Vec<f32>)> {
        let zd = self.params.config.n_latent;
        let z: Vec<f32> = (0..n * zd)
            .map(|i| rng::normal(seed, rng::SAMPLE, u32::MAX, i as u32))
            .collect();
        let d = self.decode(&z, batch, library)?;
        let g = self.params.config.n_genes;
        let mut counts = vec![0.0f32; n * g];
        let cfg = self.params.config.clone();
        let mu: Vec<f32> = d.proportions.iter().map(|&r| r * library).collect();
        let lt = self.params.values[self.params.layout.log_theta.clone()].to_vec();
        let rows = theta_rows(&cfg, &vec![batch; n]);
        match cfg.likelihood {
            Likelihood::Poisson => sample::poisson(&mu, seed, 1, &mut counts),
            Likelihood::Nb => sample::nb(&mu, &lt, &rows, None, n, g, seed, 1, &mut counts),
            Likelihood::Zinb => {
                let ws_pi = {
                    let batches = vec![batch; n];
                    if self.ws.z.len() < z.len() {
                        self.ws.z.resize(z.len(), 0.0);
                    }
                    self.ws.z[..z.len()].copy_from_slice(&z);
                    CpuModel::decode(&mut self.params, &mut self.ws, &batches, n, Mode::Eval);
                    self.ws.pi[..n * g].to_vec()
                };
                sample::nb(&mu, &lt, &rows, Some(&ws_pi), n, g, seed, 1, &mut counts)
            }
        }
        Ok((z, d, counts))
    }
}

/// The `k` cells whose latent points (N x d) are nearest to `point`, nearest first, with
/// their Euclidean distances.
pub fn nearest_cells(latent: &[f32], d: usize, point: &[f32], k: usize) -> Vec<(usize, f32)> {
    if d == 0 || point.len() != d {
        return Vec::new();
    }
    let mut all: Vec<(usize, f32)> = latent
        .chunks_exact(d)
        .enumerate()
        .map(|(i, row)| {
            (
                i,
                row.iter()
                    .zip(point)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f32>()
                    .sqrt(),
            )
        })
        .collect();
    let k = k.min(all.len());
    if k == 0 {
        return Vec::new();
    }
    all.select_nth_unstable_by(k - 1, |a, b| a.1.total_cmp(&b.1));
    all.truncate(k);
    all.sort_by(|a, b| a.1.total_cmp(&b.1));
    all
}
