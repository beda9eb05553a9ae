//! The decoder in evaluation mode with its backward to z: `d log p(x|z) / dz` for
//! latent points, what the reparameterisation trick differentiates. The forward is
//! [`CpuModel::decode`](crate::model::cpu_model::CpuModel::decode) in `Mode::Eval` made
//! from the same kernels in the same order (so `rho` is bit for bit the same), keeping
//! every hidden layer's output for the backward. Batch norm in evaluation mode is the
//! affine map `y = (x - running_mean) * gamma / sqrt(running_var + eps) + beta`, so its
//! backward is a per-unit scale.

use crate::backend::cpu::{
    batchnorm, linear, nb_loglik, poisson_loglik, relu_dropout, softmax, zinb_loglik,
};
use crate::model::cpu_model::theta_rows;
use crate::model::{Likelihood, Params};

/// One evaluation-mode decoder pass over n latent points.
#[derive(Debug, Clone)]
pub struct DecoderPass {
    /// n: latent points decoded.
    pub n: usize,
    /// Each hidden layer's output after batch norm and ReLU, n x H.
    hidden: Vec<Vec<f32>>,
    /// Gene proportions rho, n x G.
    pub rho: Vec<f32>,
    /// ZINB dropout logits, n x G (empty for NB and Poisson).
    pub pi: Vec<f32>,
}

/// Decodes the latent points `z` (n x Z) with batch codes `batch` (n; checked by the
/// caller against the model's batches).
pub fn decode(p: &Params, z: &[f32], batch: &[u32]) -> DecoderPass {
    let cfg = &p.config;
    let (h, zd, g) = (cfg.n_hidden, cfg.n_latent, cfg.n_genes);
    let n = z.len() / zd.max(1);
    let k_in = cfg.batch_inputs();
    let mut hidden: Vec<Vec<f32>> = Vec::with_capacity(cfg.n_layers);
    for (l, layer) in p.layout.decoder.iter().enumerate() {
        let (x, n_base): (&[f32], usize) = match hidden.last() {
            Some(prev) if l > 0 => (prev, h),
            _ => (&z[..n * zd], zd),
        };
        let w = &p.values[layer.weight.clone()];
        let mut pre = vec![0.0f32; n * h];
        linear::forward(
            x,
            &w[..n_base * h],
            &p.values[layer.bias.clone()],
            n,
            n_base,
            h,
            &mut pre,
        );
        if k_in > 0 {
            for (r, &k) in batch.iter().take(n).enumerate() {
                let row = n_base + k as usize;
                let wr = &w[row * h..(row + 1) * h];
                for (o, &wv) in pre[r * h..(r + 1) * h].iter_mut().zip(wr) {
                    *o += wv;
                }
            }
        }
        let mut out = vec![0.0f32; n * h];
        match (&layer.bn, &layer.bn_running) {
            (Some((gm, be)), Some((rm, rv))) => batchnorm::forward_eval(
                &pre,
                n,
                h,
                &p.values[gm.clone()],
                &p.values[be.clone()],
                &p.buffers[rm.clone()],
                &p.buffers[rv.clone()],
                cfg.bn_eps,
                &mut out,
            ),
            _ => out.copy_from_slice(&pre),
        }
        relu_dropout::relu_dropout_inplace(&mut out, n, h, 0.0, 0, 0, 0);
        hidden.push(out);
    }
    let empty = Vec::new();
    let last = hidden.last().unwrap_or(&empty);
    let s = &p.layout.scale;
    let mut logits = vec![0.0f32; n * g];
    linear::forward(
        last,
        &p.values[s.weight.clone()],
        &p.values[s.bias.clone()],
        n,
        h,
        g,
        &mut logits,
    );
    let mut rho = vec![0.0f32; n * g];
    softmax::forward(&logits, n, g, &mut rho);
    let mut pi = Vec::new();
    if let Some(d) = &p.layout.dropout {
        pi = vec![0.0f32; n * g];
        linear::forward(
            last,
            &p.values[d.weight.clone()],
            &p.values[d.bias.clone()],
            n,
            h,
            g,
            &mut pi,
        );
    }
    DecoderPass { n, hidden, rho, pi }
}

/// log p(x|z) per point (n) of the counts `counts` (n x G) with library sizes
/// `library` (n) under the decoded `pass`, without gradients.
pub fn loglik(
    p: &Params,
    pass: &DecoderPass,
    batch: &[u32],
    counts: &[f32],
    library: &[f32],
) -> Vec<f32> {
    let cfg = &p.config;
    let (n, g) = (pass.n, cfg.n_genes);
    let rows = theta_rows(cfg, &batch[..n]);
    let lt = &p.values[p.layout.log_theta.clone()];
    let mut ll = vec![0.0f32; n];
    match cfg.likelihood {
        Likelihood::Nb => nb_loglik::forward(counts, library, &pass.rho, lt, &rows, n, g, &mut ll),
        Likelihood::Zinb => zinb_loglik::forward(
            counts, library, &pass.rho, lt, &rows, &pass.pi, n, g, &mut ll,
        ),
        Likelihood::Poisson => poisson_loglik::forward(counts, library, &pass.rho, n, g, &mut ll),
    }
    ll
}

/// log p(x|z) per point (n) and its gradient w.r.t. z (n x Z), for counts `counts`
/// (n x G) with library sizes `library` (n), through the decoder's backward from the
/// likelihood kernels' logit (and ZINB dropout-logit) gradients.
pub fn loglik_grad_z(
    p: &Params,
    pass: &DecoderPass,
    batch: &[u32],
    counts: &[f32],
    library: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let cfg = &p.config;
    let (n, g, h, zd) = (pass.n, cfg.n_genes, cfg.n_hidden, cfg.n_latent);
    let rows = theta_rows(cfg, &batch[..n]);
    let lt = &p.values[p.layout.log_theta.clone()];
    let ones = vec![1.0f32; n];
    let mut ll = vec![0.0f32; n];
    let mut d_logits = vec![0.0f32; n * g];
    let mut d_theta = vec![0.0f32; lt.len()];
    let mut d_pi = Vec::new();
    match cfg.likelihood {
        Likelihood::Nb => nb_loglik::forward_backward(
            counts,
            library,
            &pass.rho,
            lt,
            &rows,
            &ones,
            n,
            g,
            &mut ll,
            &mut d_logits,
            &mut d_theta,
        ),
        Likelihood::Zinb => {
            d_pi = vec![0.0f32; n * g];
            zinb_loglik::forward_backward(
                counts,
                library,
                &pass.rho,
                lt,
                &rows,
                &pass.pi,
                &ones,
                n,
                g,
                &mut ll,
                &mut d_logits,
                &mut d_theta,
                &mut d_pi,
            )
        }
        Likelihood::Poisson => poisson_loglik::forward_backward(
            counts,
            library,
            &pass.rho,
            &ones,
            n,
            g,
            &mut ll,
            &mut d_logits,
        ),
    }
    let empty = Vec::new();
    let last = pass.hidden.last().unwrap_or(&empty);
    // d(last hidden) = d_logits Ws^T (+ d_pi Wd^T).
    let mut d_h = vec![0.0f32; n * h];
    let mut dw = vec![0.0f32; h * g];
    let mut db = vec![0.0f32; g];
    let s = &p.layout.scale;
    linear::backward(
        last,
        &p.values[s.weight.clone()],
        &d_logits,
        n,
        h,
        g,
        Some(&mut d_h),
        &mut dw,
        &mut db,
    );
    if let Some(d) = &p.layout.dropout {
        let mut d_h2 = vec![0.0f32; n * h];
        linear::backward(
            last,
            &p.values[d.weight.clone()],
            &d_pi,
            n,
            h,
            g,
            Some(&mut d_h2),
            &mut dw,
            &mut db,
        );
        for (a, b) in d_h.iter_mut().zip(&d_h2) {
            *a += b;
        }
    }
    for l in (0..cfg.n_layers).rev() {
        let layer = &p.layout.decoder[l];
        let out = &pass.hidden[l];
        // ReLU: pass where the output is positive; batch norm (eval): times its scale.
        let scale: Vec<f32> = match (&layer.bn, &layer.bn_running) {
            (Some((gm, _)), Some((_, rv))) => p.values[gm.clone()]
                .iter()
                .zip(&p.buffers[rv.clone()])
                .map(|(&gv, &v)| gv / (v + cfg.bn_eps).sqrt())
                .collect(),
            _ => vec![1.0; h],
        };
        let mut d_pre = vec![0.0f32; n * h];
        for (i, (d, (&o, &dh))) in d_pre.iter_mut().zip(out.iter().zip(&d_h)).enumerate() {
            if o > 0.0 {
                *d = dh * scale[i % h];
            }
        }
        let n_base = if l == 0 { zd } else { h };
        let x: &[f32] = if l == 0 { &[] } else { &pass.hidden[l - 1] };
        let w = &p.values[layer.weight.clone()];
        let mut dx = vec![0.0f32; n * n_base];
        if l == 0 {
            // dz = d_pre W_z^T (only dx is needed: no x for dw).
            for r in 0..n {
                for i in 0..n_base {
                    let wr = &w[i * h..(i + 1) * h];
                    let dr = &d_pre[r * h..(r + 1) * h];
                    dx[r * n_base + i] = wr.iter().zip(dr).map(|(a, b)| a * b).sum();
                }
            }
        } else {
            let mut dwl = vec![0.0f32; n_base * h];
            let mut dbl = vec![0.0f32; h];
            linear::backward(
                x,
                &w[..n_base * h],
                &d_pre,
                n,
                n_base,
                h,
                Some(&mut dx),
                &mut dwl,
                &mut dbl,
            );
        }
        d_h = dx;
    }
    (ll, d_h)
}
