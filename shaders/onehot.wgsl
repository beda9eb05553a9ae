// onehot: a one-hot covariate (the batch) entering a linear layer, as weight rows
// (twins: `backend::cpu::onehot::forward` and `backward`). The layer's
// weight is [base + K, n_out]: its first `base` rows multiply the ordinary input
// (linear_forward / linear_backward with n_in = base), the K rows after them are the
// one-hot part, so that x_onehot W_onehot is a row lookup. Test: tests/gpu_kernels/onehot.rs.
//
// Two entry points:
//   main       y[r, j] += w[(base + codes[r]) * n_out + j]  for r < B, j < n_out;
//              one invocation per element, dispatch grid(B * n_out, 256).
//   grad_main  dw[(base + k) * n_out + j] = sum of dy[r, j] over rows with codes[r] = k,
//              for k < K (overwritten; absent categories get 0); one invocation per
//              (k, j), looping over the B rows; dispatch grid(K * n_out, 256).
//
// Bindings (in order): codes (read, B u32), w (read, (base + K) x n_out), y (read_write,
// B x n_out), dy (read, B x n_out), dw (read_write, (base + K) x n_out), params (uniform).

struct Params {
    b: u32,
    n_out: u32,
    base: u32,
    k: u32,
}

@group(0) @binding(0) var<storage, read> codes: array<u32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.b * params.n_out) {
        return;
    }
    let r = i / params.n_out;
    let j = i % params.n_out;
    y[i] += w[(params.base + codes[r]) * params.n_out + j];
}

@compute @workgroup_size(256)
fn grad_main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.k * params.n_out) {
        return;
    }
    let k = i / params.n_out;
    let j = i % params.n_out;
    var acc = 0.0;
    for (var r = 0u; r < params.b; r++) {
        if (codes[r] == k) {
            acc += dy[r * params.n_out + j];
        }
    }
    dw[(params.base + k) * params.n_out + j] = acc;
}
