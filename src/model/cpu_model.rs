//! The whole VAE on the CPU: forward and backward composed from the kernel pairs in
//! `backend::cpu`, with every saved activation in an explicit [`Workspace`] (llm.c's
//! habit). This is the reference the GPU backend is tested against.

use super::params::LayerRanges;
use super::{Likelihood, Minibatch, ModelConfig, Params};
use crate::backend::cpu::{
    batchnorm, counts, kl, linear, nb_loglik, poisson_loglik, relu_dropout, reparam, softmax,
    zinb_loglik,
};
use crate::rng;

/// Whether a pass trains (batch statistics, dropout, running-statistics update) or
/// evaluates (running statistics, no dropout).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Training: keyed random draws for dropout and reparameterisation.
    Train {
        /// Run seed.
        seed: u64,
        /// Global step.
        step: u32,
    },
    /// Evaluation.
    Eval,
}

/// Saved activations of one hidden layer (B x H each, `mean`/`inv_std` H).
#[derive(Debug, Clone, Default)]
struct LayerCache {
    pre: Vec<f32>,
    xhat: Vec<f32>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    out: Vec<f32>,
}

/// Every activation of a forward pass and every scratch buffer of a backward pass,
/// sized for the largest minibatch seen (reused: no per-step allocation).
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    enc: Vec<LayerCache>,
    /// The first layer's input as the forward pass read it.
    first: super::first_layer::FirstInput,
    /// Mean of q(z|x), B x Z.
    pub qm: Vec<f32>,
    /// Raw variance output (var = exp(qv) + eps), B x Z.
    pub qv: Vec<f32>,
    eps: Vec<f32>,
    /// Latent sample (or mean when decoding), B x Z.
    pub z: Vec<f32>,
    dec: Vec<LayerCache>,
    logits: Vec<f32>,
    /// Gene proportions, B x G.
    pub rho: Vec<f32>,
    /// ZINB dropout logits, B x G.
    pub pi: Vec<f32>,
    /// log p(x | z) per cell, B.
    pub loglik: Vec<f32>,
    /// KL per cell, B.
    pub kl: Vec<f32>,
    weights_lik: Vec<f32>,
    weights_kl: Vec<f32>,
    /// Gradient of the loss w.r.t. every parameter (same layout as the values).
    pub grads: Vec<f32>,
    d_logits: Vec<f32>,
    d_pi: Vec<f32>,
    d_theta: Vec<f32>,
    /// The likelihood kernels' tables and sums, kept between steps.
    counts: counts::CountScratch,
    d_a: Vec<f32>,
    d_b: Vec<f32>,
    d_pre: Vec<f32>,
    d_z: Vec<f32>,
    d_qm: Vec<f32>,
    d_qv: Vec<f32>,
    d_in: Vec<f32>,
    z_in: Vec<f32>,
    rows: Vec<usize>,
}

fn size(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

impl Workspace {
    fn ensure(&mut self, cfg: &ModelConfig, b: usize, n_params: usize) {
        let (h, z, g) = (cfg.n_hidden, cfg.n_latent, cfg.n_genes);
        self.enc.resize_with(cfg.n_layers, LayerCache::default);
        self.dec.resize_with(cfg.n_layers, LayerCache::default);
        for c in self.enc.iter_mut().chain(self.dec.iter_mut()) {
            for v in [&mut c.pre, &mut c.xhat, &mut c.out] {
                size(v, b * h);
            }
            size(&mut c.mean, h);
            size(&mut c.inv_std, h);
        }
        for v in [
            &mut self.qm,
            &mut self.qv,
            &mut self.eps,
            &mut self.z,
            &mut self.d_z,
            &mut self.d_qm,
            &mut self.d_qv,
        ] {
            size(v, b * z);
        }
        for v in [&mut self.logits, &mut self.rho, &mut self.d_logits] {
            size(v, b * g);
        }
        if cfg.likelihood == Likelihood::Zinb {
            size(&mut self.pi, b * g);
            size(&mut self.d_pi, b * g);
        }
        for v in [
            &mut self.loglik,
            &mut self.kl,
            &mut self.weights_lik,
            &mut self.weights_kl,
        ] {
            size(v, b);
        }
        for v in [&mut self.d_a, &mut self.d_b, &mut self.d_pre] {
            size(v, b * h);
        }
        size(&mut self.d_in, b * (h + z + cfg.batch_inputs()));
        size(&mut self.z_in, b * (z + cfg.batch_inputs()));
        size(&mut self.d_theta, cfg.theta_rows() * g);
        size(&mut self.grads, n_params);
        if self.rows.len() < b {
            self.rows = (0..b).collect();
        }
    }
}

/// Adds row `k` of the batch block of a weight (`[n_base + K, n_out]`) to every row of `y`.
pub(super) fn add_batch_rows(
    y: &mut [f32],
    w: &[f32],
    n_base: usize,
    n_out: usize,
    batch: &[u32],
    k_inputs: usize,
) {
    if k_inputs == 0 {
        return;
    }
    for (r, &k) in batch.iter().enumerate() {
        let wr = &w[(n_base + k as usize) * n_out..(n_base + k as usize + 1) * n_out];
        for (o, &wv) in y[r * n_out..(r + 1) * n_out].iter_mut().zip(wr) {
            *o += wv;
        }
    }
}

/// Accumulates `dy` rows into the batch rows of a weight gradient.
pub(super) fn add_batch_grads(
    dw: &mut [f32],
    dy: &[f32],
    n_base: usize,
    n_out: usize,
    batch: &[u32],
    k_inputs: usize,
) {
    if k_inputs == 0 {
        return;
    }
    for row in dw[n_base * n_out..(n_base + k_inputs) * n_out].iter_mut() {
        *row = 0.0;
    }
    for (r, &k) in batch.iter().enumerate() {
        let d = &mut dw[(n_base + k as usize) * n_out..(n_base + k as usize + 1) * n_out];
        for (o, &g) in d.iter_mut().zip(&dy[r * n_out..(r + 1) * n_out]) {
            *o += g;
        }
    }
}

/// Batch norm + ReLU (+ dropout) of one hidden layer whose linear output is in `c.pre`.
#[allow(clippy::too_many_arguments)]
fn norm_act(
    c: &mut LayerCache,
    layer: &LayerRanges,
    values: &[f32],
    buffers: &mut [f32],
    cfg: &ModelConfig,
    b: usize,
    mode: Mode,
    dropout: f32,
    stream_step: Option<(u64, u32, u32)>,
) {
    let n = layer.n_out;
    let (Some((g, be)), Some((rm, rv))) = (&layer.bn, &layer.bn_running) else {
        return;
    };
    match mode {
        Mode::Train { .. } => {
            let (rm_s, rv_s) = split_two(buffers, rm.clone(), rv.clone());
            batchnorm::forward_train(
                &c.pre[..b * n],
                b,
                n,
                &values[g.clone()],
                &values[be.clone()],
                cfg.bn_eps,
                cfg.bn_momentum,
                rm_s,
                rv_s,
                &mut c.out[..b * n],
                &mut c.xhat[..b * n],
                &mut c.mean[..n],
                &mut c.inv_std[..n],
            );
        }
        Mode::Eval => batchnorm::forward_eval(
            &c.pre[..b * n],
            b,
            n,
            &values[g.clone()],
            &values[be.clone()],
            &buffers[rm.clone()],
            &buffers[rv.clone()],
            cfg.bn_eps,
            &mut c.out[..b * n],
        ),
    }
    let (p, seed, step, stream) = match (mode, stream_step) {
        (Mode::Train { .. }, Some((seed, step, stream))) => (dropout, seed, step, stream),
        _ => (0.0, 0, 0, 0),
    };
    relu_dropout::relu_dropout_inplace(&mut c.out[..b * n], b, n, p, seed, step, stream);
}

/// `a += b`, elementwise.
fn add_into(a: &mut [f32], b: &[f32]) {
    for (x, &y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// Two disjoint mutable ranges of one slice (`a` before `b`).
fn split_two(
    v: &mut [f32],
    a: std::ops::Range<usize>,
    b: std::ops::Range<usize>,
) -> (&mut [f32], &mut [f32]) {
    let (lo, hi) = v.split_at_mut(b.start);
    (&mut lo[a], &mut hi[..b.len()])
}

/// The model's parameters with the forward and backward passes of the VAE.
pub struct CpuModel;

impl CpuModel {
    /// Encoder forward: fills `ws.qm` and `ws.qv` for the minibatch.
    pub fn encode(p: &mut Params, ws: &mut Workspace, mb: &Minibatch, mode: Mode) {
        let training = matches!(mode, Mode::Train { .. });
        let cfg = p.config.clone();
        let b = mb.n_rows;
        ws.ensure(&cfg, b, p.values.len());
        let lay = &p.layout;
        let (h, z) = (cfg.n_hidden, cfg.n_latent);
        for l in 0..cfg.n_layers {
            let layer = &lay.encoder[l];
            let (before, rest) = ws.enc.split_at_mut(l);
            let c = &mut rest[0];
            if l == 0 {
                super::first_layer::forward(
                    &cfg,
                    mb,
                    &ws.rows[..b],
                    training,
                    &p.values[layer.weight.clone()],
                    &p.values[layer.bias.clone()],
                    &mut ws.first,
                    &mut c.pre,
                );
            } else {
                linear::forward(
                    &before[l - 1].out[..b * h],
                    &p.values[layer.weight.clone()],
                    &p.values[layer.bias.clone()],
                    b,
                    h,
                    h,
                    &mut c.pre[..b * h],
                );
            }
            let stream = match mode {
                Mode::Train { seed, step } => {
                    Some((seed, step, rng::DROPOUT_ENCODER + 16 * l as u32))
                }
                Mode::Eval => None,
            };
            norm_act(
                c,
                layer,
                &p.values,
                &mut p.buffers,
                &cfg,
                b,
                mode,
                cfg.dropout_rate,
                stream,
            );
        }
        let last = &ws.enc[cfg.n_layers - 1].out[..b * h];
        for (head, out) in [(&lay.z_mean, &mut ws.qm), (&lay.z_var, &mut ws.qv)] {
            linear::forward(
                last,
                &p.values[head.weight.clone()],
                &p.values[head.bias.clone()],
                b,
                h,
                z,
                &mut out[..b * z],
            );
        }
    }

    /// Decoder forward from `ws.z` (B x Z): fills `ws.rho` (and `ws.pi` for ZINB).
    pub fn decode(p: &mut Params, ws: &mut Workspace, batch: &[u32], b: usize, mode: Mode) {
        let cfg = p.config.clone();
        ws.ensure(&cfg, b, p.values.len());
        let lay = &p.layout;
        let (h, z, g) = (cfg.n_hidden, cfg.n_latent, cfg.n_genes);
        for l in 0..cfg.n_layers {
            let layer = &lay.decoder[l];
            let (before, rest) = ws.dec.split_at_mut(l);
            let c = &mut rest[0];
            let (x, n_base): (&[f32], usize) = if l == 0 {
                (&ws.z[..b * z], z)
            } else {
                (&before[l - 1].out[..b * h], h)
            };
            let w = &p.values[layer.weight.clone()];
            linear::forward(
                x,
                &w[..n_base * h],
                &p.values[layer.bias.clone()],
                b,
                n_base,
                h,
                &mut c.pre[..b * h],
            );
            add_batch_rows(&mut c.pre, w, n_base, h, batch, cfg.batch_inputs());
            // The decoder has no dropout (scvi-tools); batch norm follows `mode`.
            let m = match mode {
                Mode::Train { .. } => mode,
                Mode::Eval => Mode::Eval,
            };
            norm_act(c, layer, &p.values, &mut p.buffers, &cfg, b, m, 0.0, None);
        }
        let last = &ws.dec[cfg.n_layers - 1].out[..b * h];
        let s = &lay.scale;
        linear::forward(
            last,
            &p.values[s.weight.clone()],
            &p.values[s.bias.clone()],
            b,
            h,
            g,
            &mut ws.logits[..b * g],
        );
        softmax::forward(&ws.logits[..b * g], b, g, &mut ws.rho[..b * g]);
        if let Some(d) = &lay.dropout {
            linear::forward(
                last,
                &p.values[d.weight.clone()],
                &p.values[d.bias.clone()],
                b,
                h,
                g,
                &mut ws.pi[..b * g],
            );
        }
    }

    /// log p(x | rho) per cell into `ws.loglik` (no gradients).
    pub fn loglik(p: &Params, ws: &mut Workspace, mb: &Minibatch) {
        let cfg = &p.config;
        let (b, g) = (mb.n_rows, cfg.n_genes);
        let theta_row = theta_rows(cfg, &mb.batch);
        let lt = &p.values[p.layout.log_theta.clone()];
        match cfg.likelihood {
            Likelihood::Nb => nb_loglik::forward_with(
                &mb.counts,
                &mb.library,
                &ws.rho[..b * g],
                lt,
                &theta_row,
                b,
                g,
                &mut ws.loglik[..b],
                &mut ws.counts,
            ),
            Likelihood::Zinb => zinb_loglik::forward_with(
                &mb.counts,
                &mb.library,
                &ws.rho[..b * g],
                lt,
                &theta_row,
                &ws.pi[..b * g],
                b,
                g,
                &mut ws.loglik[..b],
                &mut ws.counts,
            ),
            Likelihood::Poisson => poisson_loglik::forward_with(
                &mb.counts,
                &mb.library,
                &ws.rho[..b * g],
                b,
                g,
                &mut ws.loglik[..b],
                &mut ws.counts,
            ),
        }
    }

    /// Forward and backward of the training loss on a minibatch; gradients in `ws.grads`.
    /// Returns the mean reconstruction and KL per cell.
    pub fn forward_backward(
        p: &mut Params,
        ws: &mut Workspace,
        mb: &Minibatch,
        seed: u64,
        step: u32,
        kl_weight: f32,
    ) -> (f32, f32) {
        let cfg = p.config.clone();
        let b = mb.n_rows;
        let (h, z, g) = (cfg.n_hidden, cfg.n_latent, cfg.n_genes);
        let mode = Mode::Train { seed, step };
        Self::encode(p, ws, mb, mode);
        reparam::forward(
            &ws.qm[..b * z],
            &ws.qv[..b * z],
            b,
            z,
            seed,
            step,
            rng::REPARAM,
            &mut ws.eps[..b * z],
            &mut ws.z[..b * z],
        );
        Self::decode(p, ws, &mb.batch, b, mode);
        kl::forward(&ws.qm[..b * z], &ws.qv[..b * z], b, z, &mut ws.kl[..b]);
        let inv_b = 1.0 / b as f32;
        ws.weights_lik[..b].fill(-inv_b);
        ws.weights_kl[..b].fill(kl_weight * inv_b);
        let theta_row = theta_rows(&cfg, &mb.batch);
        let lay = p.layout.clone();
        let lt = &p.values[lay.log_theta.clone()];
        // Every gradient below is written, none added to what a step left before
        // (tests/model.rs every_gradient_is_written_by_each_step), so nothing is cleared.
        let gr = &mut ws.grads;
        match cfg.likelihood {
            Likelihood::Nb => nb_loglik::forward_backward_with(
                &mb.counts,
                &mb.library,
                &ws.rho[..b * g],
                lt,
                &theta_row,
                &ws.weights_lik[..b],
                b,
                g,
                &mut ws.loglik[..b],
                &mut ws.d_logits[..b * g],
                &mut ws.d_theta,
                &mut ws.counts,
            ),
            Likelihood::Zinb => zinb_loglik::forward_backward_with(
                &mb.counts,
                &mb.library,
                &ws.rho[..b * g],
                lt,
                &theta_row,
                &ws.pi[..b * g],
                &ws.weights_lik[..b],
                b,
                g,
                &mut ws.loglik[..b],
                &mut ws.d_logits[..b * g],
                &mut ws.d_theta,
                &mut ws.d_pi[..b * g],
                &mut ws.counts,
            ),
            Likelihood::Poisson => {
                poisson_loglik::forward_backward_with(
                    &mb.counts,
                    &mb.library,
                    &ws.rho[..b * g],
                    &ws.weights_lik[..b],
                    b,
                    g,
                    &mut ws.loglik[..b],
                    &mut ws.d_logits[..b * g],
                    &mut ws.counts,
                );
                ws.d_theta.fill(0.0);
            }
        }
        gr[lay.log_theta.clone()].copy_from_slice(&ws.d_theta[..lay.log_theta.len()]);
        // Decoder heads: d(last decoder output) into ws.d_a.
        let vals = &p.values;
        let last = &ws.dec[cfg.n_layers - 1].out;
        linear_backward_into(
            gr,
            vals,
            &lay.scale,
            last,
            &ws.d_logits,
            b,
            Some(&mut ws.d_a[..b * h]),
        );
        if let Some(d) = &lay.dropout {
            linear_backward_into(gr, vals, d, last, &ws.d_pi, b, Some(&mut ws.d_b[..b * h]));
            add_into(&mut ws.d_a[..b * h], &ws.d_b[..b * h]);
        }
        // Decoder hidden layers, last to first. `ws.d_a` holds d(out) of layer l.
        for l in (0..cfg.n_layers).rev() {
            let layer = &lay.decoder[l];
            act_bn_backward(
                gr,
                vals,
                layer,
                &ws.dec[l],
                0.0,
                b,
                &ws.d_a,
                &mut ws.d_pre,
                &mut ws.d_b,
            );
            // The input is [z or previous layer, one-hot batch]: the linear part sees the
            // first n_base rows of the weight, the batch rows get the gradient rows.
            let n_base = if l == 0 { z } else { h };
            let x: &[f32] = if l == 0 {
                &ws.z[..b * z]
            } else {
                &ws.dec[l - 1].out[..b * h]
            };
            let (dw, dbias) = split_two(gr, layer.weight.clone(), layer.bias.clone());
            let w = &vals[layer.weight.clone()];
            linear::backward(
                x,
                &w[..n_base * h],
                &ws.d_b[..b * h],
                b,
                n_base,
                h,
                Some(&mut ws.d_in[..b * n_base]),
                &mut dw[..n_base * h],
                dbias,
            );
            add_batch_grads(
                dw,
                &ws.d_b[..b * h],
                n_base,
                h,
                &mb.batch,
                cfg.batch_inputs(),
            );
            let target = if l == 0 {
                &mut ws.d_z[..b * z]
            } else {
                &mut ws.d_a[..b * h]
            };
            target.copy_from_slice(&ws.d_in[..b * n_base]);
        }
        // Reparameterisation (writes d_qm, d_qv), then KL (adds).
        reparam::backward(
            &ws.d_z[..b * z],
            &ws.eps[..b * z],
            &ws.qv[..b * z],
            b,
            z,
            &mut ws.d_qm[..b * z],
            &mut ws.d_qv[..b * z],
        );
        kl::backward(
            &ws.qm[..b * z],
            &ws.qv[..b * z],
            &ws.weights_kl[..b],
            b,
            z,
            &mut ws.d_qm[..b * z],
            &mut ws.d_qv[..b * z],
        );
        // Encoder heads: d(last encoder output) into ws.d_a.
        let last = &ws.enc[cfg.n_layers - 1].out;
        linear_backward_into(
            gr,
            vals,
            &lay.z_mean,
            last,
            &ws.d_qm,
            b,
            Some(&mut ws.d_a[..b * h]),
        );
        linear_backward_into(
            gr,
            vals,
            &lay.z_var,
            last,
            &ws.d_qv,
            b,
            Some(&mut ws.d_b[..b * h]),
        );
        add_into(&mut ws.d_a[..b * h], &ws.d_b[..b * h]);
        // Encoder hidden layers, last to first.
        for l in (0..cfg.n_layers).rev() {
            let layer = &lay.encoder[l];
            act_bn_backward(
                gr,
                vals,
                layer,
                &ws.enc[l],
                cfg.dropout_rate,
                b,
                &ws.d_a,
                &mut ws.d_pre,
                &mut ws.d_b,
            );
            if l == 0 {
                // The first layer reads the log1p counts: weight gradients only.
                let (dw, dbias) = split_two(gr, layer.weight.clone(), layer.bias.clone());
                let d_pre = &ws.d_b[..b * h];
                super::first_layer::backward(&cfg, mb, &ws.rows[..b], &ws.first, d_pre, dw, dbias);
            } else {
                linear_backward_into(
                    gr,
                    vals,
                    layer,
                    &ws.enc[l - 1].out,
                    &ws.d_b,
                    b,
                    Some(&mut ws.d_in[..b * h]),
                );
                ws.d_a[..b * h].copy_from_slice(&ws.d_in[..b * h]);
            }
        }
        let recon = -ws.loglik[..b].iter().map(|&v| v as f64).sum::<f64>() / b as f64;
        let klm = ws.kl[..b].iter().map(|&v| v as f64).sum::<f64>() / b as f64;
        (recon as f32, klm as f32)
    }
}

/// Backward of a linear layer whose parameters live at `weight`/`bias` in the flat
/// vectors: writes their gradients into `grads` and, when asked, `dx`.
#[allow(clippy::too_many_arguments)]
fn linear_backward_into(
    grads: &mut [f32],
    values: &[f32],
    layer: &LayerRanges,
    x: &[f32],
    dy: &[f32],
    b: usize,
    dx: Option<&mut [f32]>,
) {
    let (n_in, n_out) = (layer.n_in, layer.n_out);
    let (dw, db) = split_two(grads, layer.weight.clone(), layer.bias.clone());
    linear::backward(
        &x[..b * n_in],
        &values[layer.weight.clone()],
        &dy[..b * n_out],
        b,
        n_in,
        n_out,
        dx,
        dw,
        db,
    );
}

/// Backward of ReLU (+ dropout) then batch norm of one hidden layer: from `d_out`
/// (gradient w.r.t. the layer's output) to `d_lin` (w.r.t. its linear output), writing the
/// batch-norm gradients into `grads`. `d_pre` is scratch.
#[allow(clippy::too_many_arguments)]
fn act_bn_backward(
    grads: &mut [f32],
    values: &[f32],
    layer: &LayerRanges,
    c: &LayerCache,
    p_drop: f32,
    b: usize,
    d_out: &[f32],
    d_pre: &mut [f32],
    d_lin: &mut [f32],
) {
    let h = layer.n_out;
    relu_dropout::relu_dropout_backward(
        &d_out[..b * h],
        &c.out[..b * h],
        b,
        h,
        p_drop,
        &mut d_pre[..b * h],
    );
    let (bn_g, bn_b) = layer.bn.clone().unwrap_or_default();
    let (dg, dbeta) = split_two(grads, bn_g.clone(), bn_b);
    batchnorm::backward(
        &d_pre[..b * h],
        &c.xhat[..b * h],
        &c.inv_std[..h],
        &values[bn_g],
        b,
        h,
        &mut d_lin[..b * h],
        dg,
        dbeta,
    );
}

/// Which row of the dispersion table each cell uses.
pub fn theta_rows(cfg: &ModelConfig, batch: &[u32]) -> Vec<u32> {
    match cfg.dispersion {
        super::Dispersion::Gene => vec![0; batch.len()],
        super::Dispersion::GeneBatch => batch.to_vec(),
    }
}
