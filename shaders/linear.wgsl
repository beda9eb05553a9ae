// linear: a fully connected layer y = x W + bias and its gradients given dy, one module
// with three entry points (CPU twins `backend::cpu::linear::{forward, backward}`; tests
// tests/gpu_kernels/linear.rs):
//   main    y     = x W + bias  (B x n_out),  dispatch (ceil(n_out / 64), ceil(B / 64), 1)
//   dx_main dx    = dy W^T      (B x n_in),   dispatch (ceil(n_in / 64), ceil(B / 64), 1);
//                   with params.accumulate = 1, dx += dy W^T (two heads' gradients summed
//                   into one buffer without a copy)
//   dw_main dw    = x^T dy      (n_in x n_out), dispatch (ceil(n_out / 64), ceil(n_in / 64), 1)
//           dbias = colsum(dy)  (n_out), fused: the first row of invocations of the first
//                   row of workgroups sums the dy tiles it stages anyway (rows in order,
//                   as the CPU twin)
// All row-major f32, outputs overwritten. The products are tiled for real GPUs: each
// workgroup of 16 x 16 = 256 invocations computes a 64 x 64 tile of its output, each
// invocation a 4 x 4 block of it in registers, staging 64 x 16 tiles of the left operand
// and 16 x 64 of the right in workgroup memory (8 KiB) with coalesced loads; every
// output sums its products in order of k.
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

// Output tile side, the k-slice staged per step, and each invocation's block side.
const TILE: u32 = 64u;
const TK: u32 = 16u;
const R: u32 = 4u;

// a_tile[k * TILE + r]: the left operand's 64 rows x 16 k; b_tile[k * TILE + c]: the
// right operand's 16 k x 64 columns (k-major, so a block reads 4 neighbours).
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

// One k-slice of products into the invocation's 4 x 4 block: acc[i][j] += a[r0 + i, k] *
// b[k, c0 + j], k in order.
fn multiply_slice(acc: ptr<function, array<vec4<f32>, 4>>, lid: vec3<u32>) {
    for (var k = 0u; k < TK; k++) {
        let ab = k * TILE + lid.y * R;
        let bb = k * TILE + lid.x * R;
        let bv = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
        for (var i = 0u; i < R; i++) {
            (*acc)[i] += a_tile[ab + i] * bv;
        }
    }
}

// y[r, o] = sum_i x[r, i] W[i, o] + bias[o].
@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let rows = wg.y * TILE;
    let cols = wg.x * TILE;
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < params.n_in; k0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let e = li + l * 256u;
            // x: 64 rows x 16 k, consecutive invocations along k (one row of x).
            let r = e / TK;
            let k = e % TK;
            var xv = 0.0;
            if (rows + r < params.b && k0 + k < params.n_in) {
                xv = x[(rows + r) * params.n_in + k0 + k];
            }
            a_tile[k * TILE + r] = xv;
            // W: 16 k x 64 columns, consecutive invocations along a row of W.
            let kw = e / TILE;
            let c = e % TILE;
            var wv = 0.0;
            if (k0 + kw < params.n_in && cols + c < params.n_out) {
                wv = w[(k0 + kw) * params.n_out + cols + c];
            }
            b_tile[kw * TILE + c] = wv;
        }
        workgroupBarrier();
        multiply_slice(&acc, lid);
        workgroupBarrier();
    }
    for (var i = 0u; i < R; i++) {
        let row = rows + lid.y * R + i;
        for (var j = 0u; j < R; j++) {
            let col = cols + lid.x * R + j;
            if (row < params.b && col < params.n_out) {
                y[row * params.n_out + col] = acc[i][j] + bias[col];
            }
        }
    }
}

// dx[r, i] = sum_o dy[r, o] W[i, o].
@compute @workgroup_size(16, 16)
fn dx_main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let rows = wg.y * TILE; // r < B
    let cols = wg.x * TILE; // i < n_in
    var acc: array<vec4<f32>, 4>;
    for (var k0 = 0u; k0 < params.n_out; k0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let e = li + l * 256u;
            let r = e / TK;
            let k = e % TK;
            // dy: 64 rows x 16 k (along a row of dy).
            var av = 0.0;
            if (rows + r < params.b && k0 + k < params.n_out) {
                av = dy[(rows + r) * params.n_out + k0 + k];
            }
            a_tile[k * TILE + r] = av;
            // b[k][c] = W[cols + c, k0 + k]: consecutive invocations along a row of W.
            var bv = 0.0;
            if (cols + r < params.n_in && k0 + k < params.n_out) {
                bv = w[(cols + r) * params.n_out + k0 + k];
            }
            b_tile[k * TILE + r] = bv;
        }
        workgroupBarrier();
        multiply_slice(&acc, lid);
        workgroupBarrier();
    }
    for (var i = 0u; i < R; i++) {
        let row = rows + lid.y * R + i;
        for (var j = 0u; j < R; j++) {
            let col = cols + lid.x * R + j;
            if (row < params.b && col < params.n_in) {
                let o = row * params.n_in + col;
                if (params.accumulate == 1u) {
                    dx[o] = dx[o] + acc[i][j];
                } else {
                    dx[o] = acc[i][j];
                }
            }
        }
    }
}

// dw[i, o] = sum_r x[r, i] dy[r, o]; dbias[o] = sum_r dy[r, o].
@compute @workgroup_size(16, 16)
fn dw_main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let rows = wg.y * TILE; // i < n_in
    let cols = wg.x * TILE; // o < n_out
    // The bias gradient: the first row of invocations of the first row of workgroups
    // sums its 4 columns of dy from the staged tiles (every invocation keeps to the
    // barriers; only these keep the sums).
    let sums_bias = wg.y == 0u && lid.y == 0u;
    var acc: array<vec4<f32>, 4>;
    var acc_bias = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < params.b; k0 += TK) {
        for (var l = 0u; l < 4u; l++) {
            let e = li + l * 256u;
            // a[k][r] = x[k0 + k, rows + r]: consecutive invocations along a row of x.
            let k = e / TILE;
            let c = e % TILE;
            var av = 0.0;
            if (k0 + k < params.b && rows + c < params.n_in) {
                av = x[(k0 + k) * params.n_in + rows + c];
            }
            a_tile[k * TILE + c] = av;
            // b[k][c] = dy[k0 + k, cols + c].
            var bv = 0.0;
            if (k0 + k < params.b && cols + c < params.n_out) {
                bv = dy[(k0 + k) * params.n_out + cols + c];
            }
            b_tile[k * TILE + c] = bv;
        }
        workgroupBarrier();
        multiply_slice(&acc, lid);
        if (sums_bias) {
            for (var k = 0u; k < TK; k++) {
                let bb = k * TILE + lid.x * R;
                acc_bias += vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < R; i++) {
        let row = rows + lid.y * R + i;
        for (var j = 0u; j < R; j++) {
            let col = cols + lid.x * R + j;
            if (row < params.n_in && col < params.n_out) {
                dw[row * params.n_out + col] = acc[i][j];
            }
        }
    }
    if (sums_bias) {
        for (var j = 0u; j < R; j++) {
            let col = cols + lid.x * R + j;
            if (col < params.n_out) {
                dbias[col] = acc_bias[j];
            }
        }
    }
}
