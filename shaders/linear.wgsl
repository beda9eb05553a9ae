// linear: a fully connected layer y = x W + bias and its gradients given dy, one module
// with three entry points (CPU twins `backend::cpu::linear::{forward, backward}`; tests
// tests/gpu_kernels/linear.rs):
//   main    y     = x W + bias  (B x n_out),  dispatch (ceil(n_out / 16), ceil(B / 16), 1)
//   dx_main dx    = dy W^T      (B x n_in),   dispatch (ceil(n_in / 16), ceil(B / 16), 1);
//                   with params.accumulate = 1, dx += dy W^T (two heads' gradients summed
//                   into one buffer without a copy)
//   dw_main dw    = x^T dy      (n_in x n_out), dispatch (ceil(n_out / 16), ceil(n_in / 16), 1)
//           dbias = colsum(dy)  (n_out), fused: the first row of workgroups sums the dy
//                   tiles it stages anyway (rows in order, as the CPU twin)
// All row-major f32, outputs overwritten. The products are tiled: each 16 x 16 workgroup
// computes a 16 x 16 tile of its output (one value per invocation), staging 16 x 16
// tiles of the operands in workgroup memory.
//
// Bindings: x (0, read), w (1, read), dy (2, read), dx (3, write), dw (4, write),
// dbias (5, write), params (6, uniform); the forward's bias and y share bindings 2 and 3
// with dy and dx (WGSL allows it: no entry point uses both of a pair). Each entry point
// uses only some of them (its pipeline's derived layout holds those): main: x, w, bias,
// y, params; dx: w, dy, dx, params; dw: x, dy, dw, dbias, params.

struct Params {
    // Mirrors `backend::gpu::kernels::LinearParams` (#[repr(C)]).
    b: u32,
    n_in: u32,
    n_out: u32,
    // dx_main: 1 adds to dx, 0 overwrites it.
    accumulate: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
// The forward's own bindings (see the header).
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const TILE: u32 = 16u;

var<workgroup> a_tile: array<array<f32, 16>, 16>;
var<workgroup> b_tile: array<array<f32, 16>, 16>;

// y[r, o] = sum_i x[r, i] W[i, o] + bias[o], with a_tile holding x and b_tile W.
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y;
    let col = wg.x * TILE + lid.x;
    let n_tiles = (params.n_in + TILE - 1u) / TILE;
    var acc = 0.0;
    for (var t = 0u; t < n_tiles; t++) {
        let k0 = t * TILE;
        // a_tile[r][k] = x[row, k0 + k]; b_tile[k][c] = W[k0 + k, col].
        let kx = k0 + lid.x;
        var xv = 0.0;
        if (row < params.b && kx < params.n_in) {
            xv = x[row * params.n_in + kx];
        }
        a_tile[lid.y][lid.x] = xv;
        let kw = k0 + lid.y;
        var wv = 0.0;
        if (kw < params.n_in && col < params.n_out) {
            wv = w[kw * params.n_out + col];
        }
        b_tile[lid.y][lid.x] = wv;
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += a_tile[lid.y][k] * b_tile[k][lid.x];
        }
        workgroupBarrier();
    }
    if (row < params.b && col < params.n_out) {
        y[row * params.n_out + col] = acc + bias[col];
    }
}

// dx[r, i] = sum_o dy[r, o] W[i, o].
@compute @workgroup_size(16, 16)
fn dx_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y; // r < B
    let col = wg.x * TILE + lid.x; // i < n_in
    let n_tiles = (params.n_out + TILE - 1u) / TILE;
    var acc = 0.0;
    for (var t = 0u; t < n_tiles; t++) {
        let k0 = t * TILE;
        let ka = k0 + lid.x;
        var av = 0.0;
        if (row < params.b && ka < params.n_out) {
            av = dy[row * params.n_out + ka];
        }
        a_tile[lid.y][lid.x] = av;
        // b_tile[k][c] = W[col, k0 + k]: load transposed so that consecutive invocations
        // read consecutive addresses of W's row.
        let c_load = wg.x * TILE + lid.y;
        let kb = k0 + lid.x;
        var bv = 0.0;
        if (c_load < params.n_in && kb < params.n_out) {
            bv = w[c_load * params.n_out + kb];
        }
        b_tile[lid.x][lid.y] = bv;
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += a_tile[lid.y][k] * b_tile[k][lid.x];
        }
        workgroupBarrier();
    }
    if (row < params.b && col < params.n_in) {
        let i = row * params.n_in + col;
        if (params.accumulate == 1u) {
            dx[i] = dx[i] + acc;
        } else {
            dx[i] = acc;
        }
    }
}

// dw[i, o] = sum_r x[r, i] dy[r, o].
@compute @workgroup_size(16, 16)
fn dw_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y; // i < n_in
    let col = wg.x * TILE + lid.x; // o < n_out
    let n_tiles = (params.b + TILE - 1u) / TILE;
    // The bias gradient: the first row of invocations of the first row of workgroups
    // sums column `col` of dy from the staged tiles (uniform control flow kept: every
    // invocation runs the loop, only these keep the sum).
    let sums_bias = wg.y == 0u && lid.y == 0u;
    var acc = 0.0;
    var acc_bias = 0.0;
    for (var t = 0u; t < n_tiles; t++) {
        let k0 = t * TILE;
        // a_tile[i][k] = x[k0 + k, row]: load transposed (consecutive invocations read
        // consecutive addresses of x's row k0 + lid.y).
        let r_load = wg.y * TILE + lid.x;
        let ka = k0 + lid.y;
        var av = 0.0;
        if (r_load < params.n_in && ka < params.b) {
            av = x[ka * params.n_in + r_load];
        }
        a_tile[lid.x][lid.y] = av;
        let kb = k0 + lid.y;
        var bv = 0.0;
        if (kb < params.b && col < params.n_out) {
            bv = dy[kb * params.n_out + col];
        }
        b_tile[lid.y][lid.x] = bv;
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += a_tile[lid.y][k] * b_tile[k][lid.x];
        }
        if (sums_bias) {
            for (var k = 0u; k < TILE; k++) {
                acc_bias += b_tile[k][lid.x];
            }
        }
        workgroupBarrier();
    }
    if (row < params.n_in && col < params.n_out) {
        dw[row * params.n_out + col] = acc;
    }
    if (sums_bias && col < params.n_out) {
        dbias[col] = acc_bias;
    }
}
