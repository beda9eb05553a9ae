// zinb_loglik: the zero-inflated negative binomial log-likelihood per cell (scvi-tools'
// log_zinb_positive with every normalising constant), fused with its gradients (twin:
// `backend::cpu::zinb_loglik::forward_backward`; f32 in both). Test:
// tests/gpu_kernels/zinb_loglik.rs. The element function `zinb_elem` is in lib/counts.wgsl.
//
//   mu = library[r] * rho[r, g], t = exp(log_theta[theta_row[r], g]), p = pi[r, g]
//   loglik[r]      = sum_g log ZINB(x | mu, t, p)                    (B)
//   a              = w[r] d log p / d ln mu
//   d_logits[r, g] = a[r, g] - rho[r, g] sum_g' a[r, g']            (B x G)
//   th[r, g]       = w[r] t d log p / d t                           (B x G scratch)
//   pi[r, g]       <- w[r] d log p / d p   (the dropout logits are overwritten by their
//                     weighted gradient: nothing else reads them after the loss, and it
//                     keeps the kernel within WebGPU's 8 storage buffers per stage)
//
// d_log_theta (K x G) is then summed over cells by `nb_loglik.wgsl`'s theta_main on th.
// One workgroup of 256 per cell, looping over G; dispatch grid(B, 1).
//
// Bindings (in order): x (read, B x G), rho (read, B x G), log_theta (read, K x G),
// cells (read, B structs of (library, weight, theta_row, pad)), loglik (write, B),
// d_logits (write, B x G), th (write, B x G), pi (read_write, B x G), params (uniform).

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rho: array<f32>;
@group(0) @binding(2) var<storage, read> log_theta: array<f32>;
@group(0) @binding(3) var<storage, read> cells: array<Cell>;
@group(0) @binding(4) var<storage, read_write> loglik: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> th: array<f32>;
@group(0) @binding(7) var<storage, read_write> pi: array<f32>;
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
        let e = zinb_elem(x[i], log_theta[theta_base + j], cell.library * rho[i], pi[i]);
        lp_acc += e.x;
        let a = cell.weight * e.y;
        a_acc += a;
        d_logits[i] = a;
        th[i] = cell.weight * e.z;
        pi[i] = cell.weight * e.w;
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
