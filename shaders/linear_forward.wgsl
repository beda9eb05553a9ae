// linear_forward: a fully connected layer, y = x W + bias.
// x is B x n_in, W is n_in x n_out, bias n_out, y B x n_out, all row-major f32; y is
// overwritten. CPU twin: `backend::cpu::linear::forward`. Test: tests/gpu_kernels.rs.
//
// Tiled matrix product: each 16 x 16 workgroup computes a 16 x 16 tile of y (one output
// per invocation), staging 16 x 16 tiles of x and W in workgroup memory. Dispatch
// (ceil(n_out / 16), ceil(B / 16), 1) workgroups.
//
// Bindings (in order): x (read), w (read), bias (read), y (write), params (uniform).

struct Params {
    // Mirrors `backend::gpu::kernels::LinearParams` (#[repr(C)]).
    b: u32,
    n_in: u32,
    n_out: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const TILE: u32 = 16u;

var<workgroup> x_tile: array<array<f32, 16>, 16>;
var<workgroup> w_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = wg.y * TILE + lid.y;
    let col = wg.x * TILE + lid.x;
    let n_tiles = (params.n_in + TILE - 1u) / TILE;
    var acc = 0.0;
    for (var t = 0u; t < n_tiles; t++) {
        let k0 = t * TILE;
        // x_tile[r][k] = x[row, k0 + k]; w_tile[k][c] = W[k0 + k, col].
        let kx = k0 + lid.x;
        var xv = 0.0;
        if (row < params.b && kx < params.n_in) {
            xv = x[row * params.n_in + kx];
        }
        x_tile[lid.y][lid.x] = xv;
        let kw = k0 + lid.y;
        var wv = 0.0;
        if (kw < params.n_in && col < params.n_out) {
            wv = w[kw * params.n_out + col];
        }
        w_tile[lid.y][lid.x] = wv;
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            acc += x_tile[lid.y][k] * w_tile[k][lid.x];
        }
        workgroupBarrier();
    }
    if (row < params.b && col < params.n_out) {
        y[row * params.n_out + col] = acc + bias[col];
    }
}
