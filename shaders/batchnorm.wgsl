// batchnorm: batch normalisation over the minibatch with PyTorch BatchNorm1d semantics
// (scvi-tools: eps 1e-3, momentum 0.01). x, y, xhat, dy, dx are B x n row-major f32;
// gamma, beta, running_mean, running_var, dgamma, dbeta are n; `stats` is 2n: the batch
// mean (0..n) then 1 / sqrt(biased variance + eps) (n..2n), the GPU's `BnCache`.
// CPU twins: `backend::cpu::batchnorm::{forward_train, forward_eval, backward}` (which
// sum in f64; here two-pass f32 sums). Test: tests/gpu_kernels/batchnorm.rs.
//
// Epilogue (params.act = 1): ReLU then inverted dropout fused into the output, as
// shaders/relu_dropout.wgsl computes it (Philox draw for element i = r * n + j; no draw
// when p_drop <= 0), so a hidden layer's batch norm and activation are one dispatch; the
// backward then gates dy by the fused forward's output y_fwd (dy * scale where
// y_fwd > 0, else 0) before the batch-norm gradient. CPU twins of the fused forms:
// `backend::cpu::batchnorm::{forward_train_act, forward_eval_act, backward_act}` (the
// composition with `cpu::relu_dropout`).
//
// Entry points:
//   train_main    one invocation per feature, looping over the B rows: stats, running
//                 statistics (unbiased variance; biased when B = 1), xhat and y.
//                 Dispatch (ceil(n / 64), 1, 1). Needs B >= 1.
//   eval_main     one invocation per element: y = gamma (x - rm) / sqrt(rv + eps) + beta.
//                 Dispatch grid(B * n, 256) (i = gid.x + gid.y * num_workgroups.x * 256).
//   backward_main one invocation per feature: dbeta = sum dy, dgamma = sum dy xhat,
//                 dx = gamma inv_std / B (B dy - dbeta - xhat dgamma).
//                 Dispatch (ceil(n / 64), 1, 1).
//
// Bindings (in order): x (read), gamma (read), beta (read), running_mean (read_write),
// running_var (read_write), y (write), xhat (read_write), stats (read_write), dy (read),
// dx (write), dgamma (write), dbeta (write), params (uniform), y_fwd (13, read). train_main
// uses 0-7 and params (8 storage buffers, WebGPU's limit); eval_main 0-5; backward_main
// gamma, xhat, stats, dy, dx, dgamma, dbeta, y_fwd (8). `Params` mirrors
// `backend::gpu::kernels::BnParams`; shaders/lib/philox.wgsl is prepended.

struct Params {
    b: u32,
    n: u32,
    eps: f32,
    momentum: f32,
    // The epilogue: 0 none, 1 ReLU + dropout (the rest as relu_dropout.wgsl's Params).
    act: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    stream: u32,
    p_drop: f32,
    scale: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<storage, read_write> xhat: array<f32>;
@group(0) @binding(7) var<storage, read_write> stats: array<f32>;
@group(0) @binding(8) var<storage, read> dy: array<f32>;
@group(0) @binding(9) var<storage, read_write> dx: array<f32>;
@group(0) @binding(10) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(11) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(12) var<uniform> params: Params;
@group(0) @binding(13) var<storage, read> y_fwd: array<f32>;

// The epilogue on output element i (see the header).
fn act_forward(e: f32, i: u32) -> f32 {
    if (params.act == 0u) {
        return e;
    }
    if (params.p_drop <= 0.0) {
        return max(e, 0.0);
    }
    var out = 0.0;
    if (e > 0.0) {
        let block = philox4x32(
            vec4<u32>(i, params.step, params.stream, 0u),
            vec2<u32>(params.seed_lo, params.seed_hi),
        );
        if (unit_f32(block.x) >= params.p_drop) {
            out = e * params.scale;
        }
    }
    return out;
}

// dy through the epilogue's backward, given the fused forward's output.
fn act_backward(i: u32) -> f32 {
    if (params.act == 0u) {
        return dy[i];
    }
    if (y_fwd[i] > 0.0) {
        return dy[i] * params.scale;
    }
    return 0.0;
}

@compute @workgroup_size(64)
fn train_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = params.n;
    if (j >= n || params.b == 0u) {
        return;
    }
    let bf = f32(params.b);
    var s = 0.0;
    for (var r = 0u; r < params.b; r++) {
        s += x[r * n + j];
    }
    let mean = s / bf;
    var ss = 0.0;
    for (var r = 0u; r < params.b; r++) {
        let d = x[r * n + j] - mean;
        ss += d * d;
    }
    let var_ = ss / bf;
    var unbiased = var_;
    if (params.b > 1u) {
        unbiased = ss / (bf - 1.0);
    }
    let inv_std = 1.0 / sqrt(var_ + params.eps);
    stats[j] = mean;
    stats[n + j] = inv_std;
    let m = params.momentum;
    running_mean[j] = (1.0 - m) * running_mean[j] + m * mean;
    running_var[j] = (1.0 - m) * running_var[j] + m * unbiased;
    let g = gamma[j];
    let bt = beta[j];
    for (var r = 0u; r < params.b; r++) {
        let i = r * n + j;
        let xh = (x[i] - mean) * inv_std;
        xhat[i] = xh;
        y[i] = act_forward(g * xh + bt, i);
    }
}

@compute @workgroup_size(256)
fn eval_main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.b * params.n) {
        return;
    }
    let j = i % params.n;
    let s = gamma[j] / sqrt(running_var[j] + params.eps);
    y[i] = act_forward((x[i] - running_mean[j]) * s + beta[j], i);
}

@compute @workgroup_size(64)
fn backward_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = params.n;
    if (j >= n) {
        return;
    }
    var sb = 0.0;
    var sg = 0.0;
    for (var r = 0u; r < params.b; r++) {
        let g = act_backward(r * n + j);
        sb += g;
        sg += g * xhat[r * n + j];
    }
    dbeta[j] = sb;
    dgamma[j] = sg;
    if (params.b == 0u) {
        return;
    }
    let bf = f32(params.b);
    let k = gamma[j] * stats[n + j] / bf;
    for (var r = 0u; r < params.b; r++) {
        let i = r * n + j;
        dx[i] = k * (bf * act_backward(i) - sb - xhat[i] * sg);
    }
}
