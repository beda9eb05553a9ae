//! Recording the VAE's step into a command encoder: [`Rec`] holds the kernels, the
//! resident model and a minibatch's buffers, and records the `encode_<k>` kernels in the
//! order of `model::cpu_model::CpuModel::forward_backward` (encoder, reparameterisation
//! with the KL, decoder, likelihood, backward), then the step guard and Adam (one dispatch over
//! the flat parameter buffers). The dispatches between the copies before and after a
//! step share one compute pass (see `backend::gpu::dispatch::Recorder`).
#![allow(clippy::too_many_arguments)]

use super::resident::{Acts, LayerActs, Resident, Tensor};
use crate::backend::gpu::dispatch::{to_u32, Binding, Recorder};
use crate::backend::gpu::kernels::{AdamParams, DropoutParams, Pipelines};
use crate::backend::gpu::{GpuContext, NbBuffers};
use crate::error::{Error, Result};
use crate::model::backend::{StepHyper, ADAM_BETA1, ADAM_BETA2};
use crate::model::params::LayerRanges;
use crate::model::Likelihood;
use crate::rng;
use std::ops::Range;

type BnRanges = ((Range<usize>, Range<usize>), (Range<usize>, Range<usize>));

fn bn_ranges(layer: &LayerRanges) -> Result<BnRanges> {
    match (&layer.bn, &layer.bn_running) {
        (Some(p), Some(r)) => Ok((p.clone(), r.clone())),
        _ => Err(Error::Gpu("a hidden layer without batch norm".into())),
    }
}

/// What recording a step needs: the kernels, the resident model, this minibatch's
/// buffers and its size. The methods record in the order of
/// `model::cpu_model::CpuModel::forward_backward`.
pub(super) struct Rec<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) pipes: &'a Pipelines,
    pub(super) m: &'a Resident,
    pub(super) a: &'a Acts,
    pub(super) b: usize,
}

impl Rec<'_> {
    /// The whole training step into `enc`: the running statistics saved (restored when
    /// the step turns out non-finite), forward, backward, the step guard, Adam on every
    /// tensor (skipped on the GPU when the losses are not finite), and the losses and
    /// the guard's flag copied to staging buffer `slot`.
    pub(super) fn train_step(
        &self,
        enc: &mut Recorder,
        hyper: &StepHyper,
        slot: usize,
    ) -> Result<()> {
        let (ctx, pipes, m, a, b) = (self.ctx, self.pipes, self.m, self.a, self.b);
        let cfg = &m.config;
        for (src, dst) in m.buffers.iter().zip(&m.buffers_saved) {
            enc.copy_buffer_to_buffer(src, 0, dst, 0, src.size());
        }
        self.encoder(enc, Some((hyper.seed, hyper.step)))?;
        // z drawn and the KL per cell, one dispatch.
        pipes.encode_reparam_kl(
            ctx,
            enc,
            &a.qm,
            &a.qv,
            &a.eps,
            &a.z,
            &a.kl,
            b,
            cfg.n_latent,
            hyper.seed,
            hyper.step,
            rng::REPARAM,
        )?;
        self.decoder(enc)?;
        self.likelihood(enc)?;
        self.backward(enc)?;
        pipes.encode_step_guard(ctx, enc, &a.loglik, &a.kl, &a.flag, b)?;
        // Every tensor in one dispatch over the flat buffers.
        let f = &m.flat;
        let hp = AdamParams::new(
            to_u32(f.len, "parameters")?,
            f64::from(hyper.lr),
            ADAM_BETA1,
            ADAM_BETA2,
            f64::from(hyper.adam_eps),
            f64::from(hyper.weight_decay),
            hyper.step + 1,
        );
        pipes.encode_adam_step(ctx, enc, &f.values, &f.grads, &f.m, &f.v, &hp, &a.flag)?;
        let bb = (4 * b) as u64;
        let staging = &a.staging[slot];
        enc.copy_buffer_to_buffer(&a.loglik, 0, staging, 0, bb);
        enc.copy_buffer_to_buffer(&a.kl, 0, staging, bb, bb);
        enc.copy_buffer_to_buffer(&a.flag, 0, staging, 2 * bb, 4);
        Ok(())
    }

    fn t(&self, r: &Range<usize>) -> &Tensor {
        self.m.tensor(r)
    }

    /// `y = x W[..base] + bias` then, when the layer takes the one-hot batch, `y +=
    /// W[base + batch]`.
    fn linear_in(
        &self,
        enc: &mut Recorder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        base: usize,
        with_batch: bool,
    ) -> Result<()> {
        let (ctx, a, b, h) = (self.ctx, self.a, self.b, layer.n_out);
        let w = &self.t(&layer.weight).value;
        let bias = &self.t(&layer.bias).value;
        self.pipes
            .encode_linear_forward(ctx, enc, x, w, bias, y, b, base, h)?;
        let k = self.m.config.batch_inputs();
        if with_batch && k > 0 {
            self.pipes
                .encode_onehot(ctx, enc, &a.codes, w, y, b, h, base, k)?;
        }
        Ok(())
    }

    /// Backward of [`Rec::linear_in`] from dy = `a.d_b`: weight and bias gradients (the
    /// one-hot rows too) and, when given, `dx`.
    fn linear_in_backward(
        &self,
        enc: &mut Recorder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        dx: Option<&wgpu::Buffer>,
        base: usize,
        with_batch: bool,
    ) -> Result<()> {
        let (ctx, a, b, h) = (self.ctx, self.a, self.b, layer.n_out);
        let w = self.t(&layer.weight);
        self.pipes.encode_linear_backward(
            ctx,
            enc,
            x,
            &w.value,
            &a.d_b,
            dx.map(|d| d as &dyn Binding),
            &w.grad,
            &self.t(&layer.bias).grad,
            b,
            base,
            h,
            false,
        )?;
        let k = self.m.config.batch_inputs();
        if with_batch && k > 0 {
            self.pipes
                .encode_onehot_grad(ctx, enc, &a.codes, &a.d_b, &w.grad, b, h, base, k)?;
        }
        Ok(())
    }

    /// A dense head `y = x W + bias` (x B x H).
    fn head(
        &self,
        enc: &mut Recorder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<()> {
        self.pipes.encode_linear_forward(
            self.ctx,
            enc,
            x,
            &self.t(&layer.weight).value,
            &self.t(&layer.bias).value,
            y,
            self.b,
            layer.n_in,
            layer.n_out,
        )
    }

    /// Backward of [`Rec::head`]: parameter gradients and `dx` (overwritten, or added to
    /// with `accumulate`: a second head reading the same x).
    fn head_backward(
        &self,
        enc: &mut Recorder,
        layer: &LayerRanges,
        x: &wgpu::Buffer,
        dy: &wgpu::Buffer,
        dx: &wgpu::Buffer,
        accumulate: bool,
    ) -> Result<()> {
        let w = self.t(&layer.weight);
        self.pipes.encode_linear_backward(
            self.ctx,
            enc,
            x,
            &w.value,
            dy,
            Some(dx),
            &w.grad,
            &self.t(&layer.bias).grad,
            self.b,
            layer.n_in,
            layer.n_out,
            accumulate,
        )
    }

    /// Batch norm with ReLU (+ dropout) fused into `c.out` (one dispatch): training mode
    /// (batch statistics, running statistics updated) when `drop` is given, else eval
    /// mode.
    fn norm_act(
        &self,
        enc: &mut Recorder,
        layer: &LayerRanges,
        c: &LayerActs,
        drop: Option<DropoutParams>,
    ) -> Result<()> {
        let (ctx, pipes, m, b, h) = (self.ctx, self.pipes, self.m, self.b, layer.n_out);
        let cfg = &m.config;
        let ((gm, be), (rm, rv)) = bn_ranges(layer)?;
        let (gamma, beta) = (&self.t(&gm).value, &self.t(&be).value);
        let (rmean, rvar) = (m.buffer(&rm), m.buffer(&rv));
        match drop {
            Some(drop) => pipes.encode_batchnorm_train(
                ctx,
                enc,
                &c.pre,
                gamma,
                beta,
                rmean,
                rvar,
                &c.out,
                &c.xhat,
                &c.stats,
                b,
                h,
                cfg.bn_eps,
                cfg.bn_momentum,
                Some(&drop),
            ),
            None => pipes.encode_batchnorm_eval(
                ctx,
                enc,
                &c.pre,
                gamma,
                beta,
                rmean,
                rvar,
                &c.out,
                b,
                h,
                cfg.bn_eps,
                Some(&DropoutParams::new((b * h) as u32, 0.0, 0, 0, 0)),
            ),
        }
    }

    /// Batch-norm backward with the ReLU (+ dropout) backward fused in front (one
    /// dispatch): from `a.d_a` into `a.d_b` and the layer's gamma/beta gradients.
    fn norm_act_backward(
        &self,
        enc: &mut Recorder,
        layer: &LayerRanges,
        c: &LayerActs,
        p_drop: f32,
    ) -> Result<()> {
        let (ctx, a, b, h) = (self.ctx, self.a, self.b, layer.n_out);
        let ((gm, be), _) = bn_ranges(layer)?;
        let gamma = self.t(&gm);
        self.pipes.encode_batchnorm_backward(
            ctx,
            enc,
            &a.d_a,
            &c.xhat,
            &c.stats,
            &gamma.value,
            &a.d_b,
            &gamma.grad,
            &self.t(&be).grad,
            &c.out,
            b,
            h,
            Some(&DropoutParams::new((b * h) as u32, p_drop, 0, 0, 0)),
        )
    }

    /// The encoder into `a.qm`, `a.qv`: training mode (dropout drawn with `(seed, step)`)
    /// or eval mode (`None`).
    pub(super) fn encoder(&self, enc: &mut Recorder, train: Option<(u64, u32)>) -> Result<()> {
        let (a, cfg, lay) = (self.a, &self.m.config, &self.m.layout);
        let h = cfg.n_hidden;
        // The encoder reads log1p of the counts, computed here from the uploaded counts.
        self.pipes
            .encode_log1p(self.ctx, enc, &a.counts, &a.x, self.b * cfg.n_genes)?;
        for l in 0..cfg.n_layers {
            let layer = &lay.encoder[l];
            let c = &a.enc[l];
            let (x, base) = if l == 0 {
                (&a.x, cfg.n_genes)
            } else {
                (&a.enc[l - 1].out, h)
            };
            self.linear_in(enc, layer, x, &c.pre, base, l == 0 && cfg.encode_batch)?;
            let drop = train.map(|(seed, step)| {
                DropoutParams::new(
                    (self.b * h) as u32,
                    cfg.dropout_rate,
                    seed,
                    step,
                    rng::DROPOUT_ENCODER + 16 * l as u32,
                )
            });
            self.norm_act(enc, layer, c, drop)?;
        }
        let last = &a.enc[cfg.n_layers - 1].out;
        self.head(enc, &lay.z_mean, last, &a.qm)?;
        self.head(enc, &lay.z_var, last, &a.qv)
    }

    /// The decoder (training mode, no dropout) from `a.z`: logits, `rho` (softmax) and,
    /// for ZINB, the dropout logits `pi`.
    fn decoder(&self, enc: &mut Recorder) -> Result<()> {
        let (a, cfg, lay) = (self.a, &self.m.config, &self.m.layout);
        let h = cfg.n_hidden;
        for l in 0..cfg.n_layers {
            let layer = &lay.decoder[l];
            let (x, base) = if l == 0 {
                (&a.z, cfg.n_latent)
            } else {
                (&a.dec[l - 1].out, h)
            };
            self.linear_in(enc, layer, x, &a.dec[l].pre, base, true)?;
            let drop = DropoutParams::new((self.b * h) as u32, 0.0, 0, 0, 0);
            self.norm_act(enc, layer, &a.dec[l], Some(drop))?;
        }
        let last = &a.dec[cfg.n_layers - 1].out;
        self.head(enc, &lay.scale, last, &a.logits)?;
        self.pipes
            .encode_softmax(self.ctx, enc, &a.logits, &a.rho, self.b, cfg.n_genes)?;
        if let Some(d) = &lay.dropout {
            self.head(enc, d, last, &a.pi)?;
        }
        Ok(())
    }

    /// The count log-likelihood per cell with its gradients (d_logits, d_log_theta and,
    /// for ZINB, d_pi in place of pi).
    fn likelihood(&self, enc: &mut Recorder) -> Result<()> {
        let (ctx, a, cfg, b) = (self.ctx, self.a, &self.m.config, self.b);
        let g = cfg.n_genes;
        let lt = self.t(&self.m.layout.log_theta);
        let bufs = NbBuffers {
            x: &a.counts,
            rho: &a.rho,
            log_theta: &lt.value,
            cells: &a.cells,
            loglik: &a.loglik,
            d_logits: &a.d_logits,
            th_scratch: &a.th,
            d_log_theta: &lt.grad,
        };
        let k = cfg.theta_rows();
        match cfg.likelihood {
            Likelihood::Nb => self
                .pipes
                .encode_nb_forward_backward(ctx, enc, &bufs, b, g, k),
            Likelihood::Zinb => self
                .pipes
                .encode_zinb_forward_backward(ctx, enc, &bufs, &a.pi, b, g, k),
            Likelihood::Poisson => self.pipes.encode_poisson_forward_backward(
                ctx,
                enc,
                &a.counts,
                &a.rho,
                &a.cells,
                &a.loglik,
                &a.d_logits,
                b,
                g,
            ),
        }
    }

    /// Every gradient, from the likelihood's and KL's back to the first layer.
    fn backward(&self, enc: &mut Recorder) -> Result<()> {
        let (ctx, pipes, a, b) = (self.ctx, self.pipes, self.a, self.b);
        let (cfg, lay) = (&self.m.config, &self.m.layout);
        let (h, z) = (cfg.n_hidden, cfg.n_latent);
        // Decoder heads: d(last decoder output) into d_a.
        let dlast = &a.dec[cfg.n_layers - 1].out;
        self.head_backward(enc, &lay.scale, dlast, &a.d_logits, &a.d_a, false)?;
        if let Some(d) = &lay.dropout {
            self.head_backward(enc, d, dlast, &a.pi, &a.d_a, true)?;
        }
        for l in (0..cfg.n_layers).rev() {
            let layer = &lay.decoder[l];
            self.norm_act_backward(enc, layer, &a.dec[l], 0.0)?;
            let (x, dx, base) = if l == 0 {
                (&a.z, &a.d_z, z)
            } else {
                (&a.dec[l - 1].out, &a.d_a, h)
            };
            self.linear_in_backward(enc, layer, x, Some(dx), base, true)?;
        }
        pipes.encode_reparam_kl_backward(
            ctx,
            enc,
            &a.qm,
            &a.qv,
            &a.eps,
            &a.d_z,
            &a.weights_kl,
            &a.d_qm,
            &a.d_qv,
            b,
            z,
        )?;
        // Encoder heads: d(last) = d_qm W_m^T + d_qv W_v^T.
        let last = &a.enc[cfg.n_layers - 1].out;
        self.head_backward(enc, &lay.z_mean, last, &a.d_qm, &a.d_a, false)?;
        self.head_backward(enc, &lay.z_var, last, &a.d_qv, &a.d_a, true)?;
        for l in (0..cfg.n_layers).rev() {
            let layer = &lay.encoder[l];
            self.norm_act_backward(enc, layer, &a.enc[l], cfg.dropout_rate)?;
            if l == 0 {
                // The counts need no gradient.
                self.linear_in_backward(enc, layer, &a.x, None, cfg.n_genes, cfg.encode_batch)?;
            } else {
                self.linear_in_backward(enc, layer, &a.enc[l - 1].out, Some(&a.d_a), h, false)?;
            }
        }
        Ok(())
    }
}
