// linear_backward: gradients of y = x W + bias given dy, three entry points:
//   dx    = dy W^T        (B x n_in),  dispatch (ceil(n_in / 16), ceil(B / 16), 1)
//   dw    = x^T dy        (n_in x n_out), dispatch (ceil(n_out / 16), ceil(n_in / 16), 1)
//   dbias = colsum(dy)    (n_out), dispatch (ceil(n_out / 256), 1, 1)
// All row-major f32, outputs overwritten. CPU twin: `backend::cpu::linear::backward`.
// Test: tests/gpu_kernels.rs. dx and dw are tiled products as in linear_forward.wgsl.
//
// Bindings (in order): x (read), w (read), dy (read), dx (write), dw (write),
// dbias (write), params (uniform). Each entry point uses only some of them (its
// pipeline's derived layout holds those): dx: w, dy, dx, params; dw: x, dy, dw, params;
// dbias: dy, dbias, params.

struct Params {
    // Mirrors `backend::gpu::kernels::LinearParams` (#[repr(C)]).
    b: u32,
    n_in: u32,
    n_out: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

const TILE: u32 = 16u;

var<workgroup> a_tile: array<array<f32, 16>, 16>;
var<workgroup> b_tile: array<array<f32, 16>, 16>;

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
        dx[row * params.n_in + col] = acc;
    }
}

// dw[i, o] = sum_r x[r, i] dy[r, o].
@compute @workgroup_size(16, 16)
fn dw_main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y; // i < n_in
    let col = wg.x * TILE + lid.x; // o < n_out
    let n_tiles = (params.b + TILE - 1u) / TILE;
    var acc = 0.0;
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
        workgroupBarrier();
    }
    if (row < params.n_in && col < params.n_out) {
        dw[row * params.n_out + col] = acc;
    }
}

// dbias[o] = sum_r dy[r, o]: one invocation per column.
@compute @workgroup_size(256)
fn dbias_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= params.n_out) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < params.b; r++) {
        acc += dy[r * params.n_out + col];
    }
    dbias[col] = acc;
}
