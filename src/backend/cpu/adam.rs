//! Adam, with the semantics of PyTorch's `torch.optim.Adam` (default, non-fused path):
//! L2 weight decay added to the gradient (`grad + weight_decay * param`, not AdamW),
//! bias-corrected moments, `eps` added after the bias-corrected square root.
//! scvi-tools trains with lr 1e-3, eps 1e-2, weight decay 1e-6.
#![allow(clippy::too_many_arguments)] // kernel signatures mirror the shader bindings

/// One Adam step at 1-based step `t` for every element (all slices the same length;
/// `params`, `m`, `v` are updated in place, `grads` is read):
///
/// ```text
/// g = grad + weight_decay * p
/// m = m + (1 - beta1) * (g - m)        (torch's lerp)
/// v = beta2 * v + (1 - beta2) * g * g
/// p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
///
/// Hyperparameters are f64 like torch's Python floats: `1 - beta`, the bias corrections
/// and `lr / (1 - beta1^t)` are formed in f64 and rounded to f32 once, as torch does;
/// the per-element arithmetic is f32. `t = 0` is treated as `t = 1`.
pub fn step(
    params: &mut [f32],
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    t: u32,
) {
    let t = t.max(1) as i32;
    let h = Hyper {
        step_size: (lr / (1.0 - beta1.powi(t))) as f32,
        bc2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
        one_m_b1: (1.0 - beta1) as f32,
        one_m_b2: (1.0 - beta2) as f32,
        beta2: beta2 as f32,
        eps: eps as f32,
        weight_decay: weight_decay as f32,
    };
    // Elements are independent: split over threads, each element updated alone.
    let n = params.len();
    let parts = super::par::ranges(n, n * 4);
    let ps = super::par::split_rows(params, &parts, 1);
    let ms = super::par::split_rows(&mut m[..n], &parts, 1);
    let vs = super::par::split_rows(&mut v[..n], &parts, 1);
    let jobs: Vec<_> = parts
        .into_iter()
        .zip(ps)
        .zip(ms.into_iter().zip(vs))
        .map(|((r, p), (m, v))| move || update(p, &grads[r], m, v, h))
        .collect();
    super::par::run(jobs);
}

/// Adam's per-step constants in f32 (see [`step`]).
#[derive(Clone, Copy)]
struct Hyper {
    step_size: f32,
    bc2_sqrt: f32,
    one_m_b1: f32,
    one_m_b2: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}

/// [`step`]'s update of one run of elements.
#[inline(always)]
fn update_body(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], h: Hyper) {
    for (((p, &g), mi), vi) in params
        .iter_mut()
        .zip(grads)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
    {
        let g = g + h.weight_decay * *p;
        *mi += h.one_m_b1 * (g - *mi);
        *vi = h.beta2 * *vi + h.one_m_b2 * g * g;
        let denom = vi.sqrt() / h.bc2_sqrt + h.eps;
        *p -= h.step_size * *mi / denom;
    }
}

super::fastmath::wide_kernel!(
    /// [`update_body`] compiled for the baseline and AVX2.
    fn update(params: &mut [f32], grads: &[f32], m: &mut [f32], v: &mut [f32], h: Hyper) -> ()
        => update_body
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_steps_by_hand() {
        // torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.999), eps=1e-2, weight_decay=0.5),
        // p0 = 1.0, grads 2.0 then -1.0, worked through in f64:
        // step 1: g = 2.5, m = 0.25, v = 0.00625, p = 1 - 0.1*2.5/(2.5+0.01) = 0.900398406
        // step 2: g = -1 + 0.5*0.900398406 = -0.549800797, m = 0.225 - 0.0549800797
        //         = 0.170019920, v = 0.00624375 + 0.001*0.302280916 = 0.006546030916,
        //         p = 0.900398406 - (0.1/0.19) * 0.170019920 / (sqrt(v/0.001999) + 0.01)
        let mut p = [1.0f32];
        let (mut m, mut v) = ([0.0f32], [0.0f32]);
        step(
            &mut p,
            &[2.0],
            &mut m,
            &mut v,
            0.1,
            0.9,
            0.999,
            1e-2,
            0.5,
            1,
        );
        let p1 = 1.0 - 0.1 * 2.5 / (2.5 + 0.01);
        assert!((f64::from(p[0]) - p1).abs() < 1e-6, "{}", p[0]);
        step(
            &mut p,
            &[-1.0],
            &mut m,
            &mut v,
            0.1,
            0.9,
            0.999,
            1e-2,
            0.5,
            2,
        );
        let g2 = -1.0 + 0.5 * p1;
        let m2 = 0.9 * 0.25 + 0.1 * g2;
        let v2 = 0.999 * 0.00625 + 0.001 * g2 * g2;
        let bc2 = 1.0 - 0.999f64 * 0.999;
        let p2 = p1 - (0.1 / (1.0 - 0.81)) * m2 / ((v2 / bc2).sqrt() + 0.01);
        assert!((f64::from(m[0]) - m2).abs() < 1e-6 && (f64::from(v[0]) - v2).abs() < 1e-8);
        assert!((f64::from(p[0]) - p2).abs() < 1e-6, "{} vs {p2}", p[0]);
        // Check against the numbers in the comment (guards the formula itself).
        assert!((p1 - 0.900_398_406).abs() < 1e-9);
        assert!((m2 - 0.170_019_920).abs() < 1e-9);
    }
}
