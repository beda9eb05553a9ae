// nb_loglik: the negative binomial log-likelihood per cell with normalising constants,
// fused with its gradients (twin: `backend::cpu::nb_loglik::forward_backward`; both work
// in f32, the CPU with f64 sums). Test: tests/gpu_kernels/nb_loglik.rs.
//
//   mu = library[r] * rho[r, g] (floored at the smallest normal f32), t = exp(log_theta)
//   log p = lgamma(x + t) - lgamma(t) - lgamma(x + 1) + t ln(t / (t + mu)) + x ln(mu / (t + mu))
//   loglik[r]      = sum_g log p                                   (B)
//   a              = w[r] t (x - mu) / (t + mu)                    (weighted d log p / d ln mu)
//   d_logits[r, g] = a[r, g] - rho[r, g] sum_g' a[r, g']           (B x G)
//   th[r, g]       = w[r] t d log p / d t                          (B x G scratch)
//   d_log_theta[k, g] = sum of th[r, g] over the cells r with theta_row[r] = k   (K x G)
//
// Integer counts up to 16 use exact finite sums (sum_j ln(t + j), sum_j 1/(t + j) and a
// ln k! table) as the CPU does; other counts use lgamma and digamma by upward shift to
// z >= 8 and a three-term Stirling series (twins `special::lgamma_f32`, `digamma_f32`).
// ln(t / (t + mu)) is -log1p(mu / t), so it does not cancel when mu << t. The element
// functions (nb_elem and its helpers) are in lib/counts.wgsl, prepended at build time.
//
// Two entry points:
//   main       one workgroup of 256 per cell, looping over G; dispatch grid(B, 1).
//   theta_main one invocation per (k, g), looping over the B cells; dispatch
//              grid(K * G, 256). Run after `main` (it reads th).
//
// Bindings (in order): x (read, B x G counts), rho (read, B x G), log_theta (read,
// K x G), cells (read, B structs of (library, weight, theta_row, pad)), loglik (write,
// B), d_logits (write, B x G), th (read_write scratch, B x G), d_log_theta (write,
// K x G), params (uniform). Per-cell values are packed in `cells` so that `main` stays
// within WebGPU's 8 storage buffers per stage. `Params`, `Cell` and the per-cell
// reduction `workgroup_sums` are in lib/counts.wgsl, shared with zinb and poisson.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rho: array<f32>;
@group(0) @binding(2) var<storage, read> log_theta: array<f32>;
@group(0) @binding(3) var<storage, read> cells: array<Cell>;
@group(0) @binding(4) var<storage, read_write> loglik: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> th: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_log_theta: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= params.b) {
        return;
    }
    let cell = cells[row];
    let base = row * params.g;
    let theta_base = cell.theta_row * params.g;
    var lp_acc = 0.0;
    var a_acc = 0.0;
    for (var j = lid; j < params.g; j += WG) {
        let i = base + j;
        let e = nb_elem(x[i], log_theta[theta_base + j], cell.library * rho[i]);
        lp_acc += e.x;
        let a = cell.weight * e.y;
        a_acc += a;
        d_logits[i] = a;
        th[i] = cell.weight * e.z;
    }
    let total = workgroup_sums(lid, lp_acc, a_acc);
    for (var j = lid; j < params.g; j += WG) {
        let i = base + j;
        d_logits[i] -= rho[i] * total.y;
    }
    if (lid == 0u) {
        loglik[row] = total.x;
    }
}

@compute @workgroup_size(256)
fn theta_main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.k * params.g) {
        return;
    }
    let k = i / params.g;
    let j = i % params.g;
    var acc = 0.0;
    for (var r = 0u; r < params.b; r++) {
        if (cells[r].theta_row == k) {
            acc += th[r * params.g + j];
        }
    }
    d_log_theta[i] = acc;
}
