// poisson_loglik: the Poisson log-likelihood per cell with its normalising constant,
// fused with the gradient w.r.t. the softmax logits (twin:
// `backend::cpu::poisson_loglik::forward_backward`; f32 in both). Test:
// tests/gpu_kernels/poisson_loglik.rs. The element function `poisson_elem` is in lib/counts.wgsl.
//
//   mu = library[r] * rho[r, g] (floored at the smallest normal f32)
//   loglik[r]      = sum_g (x ln mu - mu - ln x!)                   (B)
//   a              = w[r] (x - mu)
//   d_logits[r, g] = a[r, g] - rho[r, g] sum_g' a[r, g']            (B x G)
//
// One workgroup of 256 per cell, looping over G; dispatch grid(B, 1).
//
// Bindings (in order): x (read, B x G), rho (read, B x G), cells (read, B structs of
// (library, weight, theta_row, pad); theta_row unused), loglik (write, B), d_logits
// (write, B x G), params (uniform; k unused).

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> rho: array<f32>;
@group(0) @binding(2) var<storage, read> cells: array<Cell>;
@group(0) @binding(3) var<storage, read_write> loglik: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_logits: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

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
    var lp_acc = 0.0;
    var a_acc = 0.0;
    for (var j = lid; j < params.g; j += WG) {
        let i = base + j;
        let e = poisson_elem(x[i], cell.library * rho[i]);
        lp_acc += e.x;
        let a = cell.weight * e.y;
        a_acc += a;
        d_logits[i] = a;
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
